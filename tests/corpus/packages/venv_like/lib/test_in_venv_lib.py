def test_in_venv_lib():
    raise AssertionError("inside a virtualenv: never collected")
