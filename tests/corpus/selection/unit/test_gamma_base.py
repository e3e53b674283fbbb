class GammaBase:
    def test_inherited(self):
        pass


class TestGammaPlain(GammaBase):
    pass
