# __init__.py does not match python_files: this test is not collected.
def test_in_package_init():
    raise AssertionError("never collected")
