import warnings

warnings.warn("pkg.util pending", PendingDeprecationWarning, stacklevel=1)
VALUE = 1
