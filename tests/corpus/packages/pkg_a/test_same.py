def test_same_in_a():
    assert __name__ == "pkg_a.test_same"
