def test_in_dist():
    raise AssertionError("dist/ is in the default norecursedirs: never collected")
