"""PYTEST_DONT_REWRITE: pytest-fastcollect: faster pytest collection with pytest as the referee."""

__version__ = "0.1.0"
