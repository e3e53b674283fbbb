def test_never_collected():
    s = "ÿþ invalid utf-8, no coding cookie"
    assert s
