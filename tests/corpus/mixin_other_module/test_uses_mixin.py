import abc

from mixins import Checks
from mixins import Checks as Base


class TestThing(Checks):
    pass


class TestAliasedBase(Base):
    expected = 2

    def value(self):
        return 2

    def test_own_method(self):
        assert self.expected == 2

    def test_value_positive(self):
        # Overrides the inherited test: collected once, in the subclass position.
        assert self.value() == 2


class TestAbstract(Checks, abc.ABC):
    """Abstract classes are not collected."""

    @abc.abstractmethod
    def value(self):
        raise NotImplementedError


class TestConcrete(TestAbstract):
    def value(self):
        return 1
