"""Project module read at import time by test modules: its values become parametrize ids."""
import os

SIZES = [1, 2, 3]
FLAVOUR = os.environ.get("SELECTION_FLAVOUR", "vanilla")
