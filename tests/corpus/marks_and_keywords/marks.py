"""Not test-shaped: holds mark aliases that test modules import."""
import pytest

slow = pytest.mark.slow
owned_by_alice = pytest.mark.owner(name="alice")
