"""normreg/version.py: the version that reports and baselines carry is the project's."""

from __future__ import annotations

import re
from pathlib import Path

import normreg
from normreg.version import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_the_one_pyproject_declares_and_the_package_exports():
    declared = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert declared and __version__ == declared[1]
    assert normreg.__version__ is __version__
