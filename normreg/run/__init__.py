"""Running: jobs, the executors that train them (executor.py, executors/), the worker code, and the run directory."""
