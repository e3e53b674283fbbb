def test_in__hidden():
    raise AssertionError(".hidden/ is in the default norecursedirs: never collected")
