"""normreg/judge/designs/__init__.py: the registry of statistical tests, the one source of every choice of design."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from normreg import cli
from normreg.choices import DESIGNS
from normreg.errors import InputError
from normreg.judge.designs import get, names


def test_every_choice_comes_from_the_registry():
    assert set(DESIGNS) == set(names()) and DESIGNS[0] == "welch"
    assert "permutation" in names()
    with pytest.raises(InputError, match=r"unknown design 'permutaton'. Did you mean 'permutation'\?"):
        get("permutaton")
    helps = [CliRunner().invoke(cli.app, [c, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"}).output
             for c in ("compare", "calibrate")]
    assert all("permutation" in h for h in helps)
