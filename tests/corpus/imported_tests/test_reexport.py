from helpers_tests import TestImported, test_helper_one  # noqa: F401
from helpers_tests import plain_function as test_renamed_helper  # noqa: F401
from helpers_tests import test_helper_one as test_alias  # noqa: F401


def test_local():
    assert test_alias is test_helper_one
