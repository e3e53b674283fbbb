def test_dynamic_ignored():
    raise AssertionError("appended to collect_ignore at conftest import time")
