"""normreg: regression tests for machine-learning implementations that should be equivalent."""

__version__ = "0.1.0"
