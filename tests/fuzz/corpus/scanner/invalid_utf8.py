def test_ÿş(): pass
