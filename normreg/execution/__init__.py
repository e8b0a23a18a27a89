"""Running: jobs, the executors that train them (executor.py, executors/), the worker code, and the run directory.

Calling this package, `normreg.run(...)`, is the public API's `normreg.api.run`.
"""

from normreg._callable import make_callable

make_callable(__name__, "run")
