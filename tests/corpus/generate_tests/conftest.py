def pytest_generate_tests(metafunc):
    if "number" in metafunc.fixturenames:
        metafunc.parametrize("number", [1, 2, 3])
    marker = metafunc.definition.get_closest_marker("scenarios")
    if marker is not None:
        names = list(marker.args)
        metafunc.parametrize("scenario", names, ids=[n.upper() for n in names])
