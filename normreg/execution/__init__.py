"""Running: jobs, the executors that train them (executor.py, executors/), the worker code, and the run directory.

The stage after `suite/` (suite -> execution -> judge -> report -> render). The public API's `normreg.run(...)`
(normreg/api.py) drives it; this package is named apart so the two never clash.
"""
