import pytest


def pytest_collection_modifyitems(config, items):
    # marks that exist only after collection: -m db must see them (recorded, never guessed)
    for item in items:
        if "database" in item.name:
            item.add_marker(pytest.mark.db)
