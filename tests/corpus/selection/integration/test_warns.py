import warnings

warnings.warn("imported: this module warns at import", UserWarning)


def test_warns_once():
    pass
