"""Imported by the tests: warns when first imported (an unregistered marker, a deprecation, a repeat)."""
import warnings

import pytest

slowish = pytest.mark.slowish  # PytestUnknownMarkWarning in a configured pytest
warnings.warn("helpers is deprecated", DeprecationWarning)
for _ in range(3):
    warnings.warn("said three times, shown once per location", UserWarning)
