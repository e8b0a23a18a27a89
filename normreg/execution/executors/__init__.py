"""The executors, one module each; every module here registers itself (see normreg/execution/executor.py)."""
