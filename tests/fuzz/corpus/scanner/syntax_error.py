def test_(:
  x = [[[[
