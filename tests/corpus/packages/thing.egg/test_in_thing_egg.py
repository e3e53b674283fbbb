def test_in_thing_egg():
    raise AssertionError("thing.egg/ is in the default norecursedirs: never collected")
