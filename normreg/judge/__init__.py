"""Judging: statistical tests, sequential seeds, planning, baselines and comparisons."""
