# -*- coding: latin-1 -*-
GREETING = "café naïve ©"


def test_latin1_literal():
    assert GREETING == "caf\u00e9 na\u00efve \u00a9"


def test_été_is_not_ascii_in_source():
    assert len(GREETING) == 12
