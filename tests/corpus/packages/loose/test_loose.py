def test_loose():
    # Rootdir-level folder without __init__.py: imported as a top-level module.
    assert __name__ == "test_loose"
