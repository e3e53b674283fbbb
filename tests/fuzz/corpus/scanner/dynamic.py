from mod import *
globals()["test_x"] = lambda: None
if True:
    try:
        def test_in_try(): pass
    except ImportError:
        pass
def pytest_generate_tests(metafunc): ...
exec("def test_y(): pass")
