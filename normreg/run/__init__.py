"""Running: jobs, the runners that train them, and the run directory they fill."""
