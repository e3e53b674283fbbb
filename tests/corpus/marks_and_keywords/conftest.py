import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "db" in item.name:
            item.add_marker(pytest.mark.db)
