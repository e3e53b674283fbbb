import sys

# Paths are relative to this conftest's directory.
collect_ignore = ["test_ignored.py"]
collect_ignore_glob = ["*_skipme.py"]

# Computed at import time: a static reader of the literal list misses this.
if sys.version_info >= (3,):
    collect_ignore.append("test_dynamic_ignored.py")
