"""The differential parity referee: the same pytest run with and without pytest-fastcollect, diffed."""
