def test_in_build():
    raise AssertionError("build/ is in the default norecursedirs: never collected")
