# A UTF-8 byte order mark precedes this comment.
def test_after_bom():
    assert "é" == "\u00e9"
