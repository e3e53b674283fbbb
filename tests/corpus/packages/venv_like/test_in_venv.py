def test_in_venv():
    raise AssertionError("directory with pyvenv.cfg is a virtualenv: never collected")
