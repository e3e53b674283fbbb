def check_helper():
    raise AssertionError("spec_helpers.py matches neither check_*.py nor *_spec.py")
