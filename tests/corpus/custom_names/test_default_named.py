def test_must_not_be_collected():
    raise AssertionError("test_*.py does not match python_files here")


def check_must_not_be_collected():
    raise AssertionError("file is not collected at all")
