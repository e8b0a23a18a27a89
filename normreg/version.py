"""The version of normreg, on its own so the modules that write it into reports need not import the package
root (whose lazy API functions import the library: that would be an import cycle)."""

__version__ = "0.1.0"
