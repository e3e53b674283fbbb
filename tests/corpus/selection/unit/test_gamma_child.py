from test_gamma_base import GammaBase


class TestGammaChild(GammaBase):
    def test_child_only(self):
        pass
