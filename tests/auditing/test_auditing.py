"""normreg/auditing/__init__.py: the audit's names from one place, with run.py (which loads suites and builds
models) imported only when one of its names is first asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

import normreg.auditing as auditing
from normreg.auditing import findings, run


def test_every_exported_name_is_the_defining_modules():
    for name in auditing.__all__:
        home = run if hasattr(run, name) else findings
        assert getattr(auditing, name) is getattr(home, name), name


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="module 'normreg.auditing' has no attribute 'audit_sweet'"):
        auditing.audit_sweet  # noqa: B018


def test_reading_findings_loads_neither_the_runner_nor_the_suite_loader():
    code = ("import sys, normreg.auditing.findings, normreg.auditing as a\n"
            "print(sorted(m for m in ('normreg.auditing.run', 'normreg.suite.spec', 'yaml') if m in sys.modules))\n"
            "a.audit_suite\n"
            "print('normreg.auditing.run' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
