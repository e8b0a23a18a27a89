"""A user's project in both Lightning flavours: `import lightning.pytorch as pl` (what Lightning's documentation
uses today) and `import pytorch_lightning as pl`. Every core path runs each: a run, a staged run, the audit, a
validation-only model and a model that brings its own dataloaders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from normreg.auditing.run import audit_suite
from normreg.pipeline import run_suites

PROJECT = Path(__file__).parents[1] / "data" / "suites" / "userproj"
FLAVOURS = {"lightning.pytorch": "wine", "pytorch_lightning": "wine_classic"}


@pytest.fixture(params=sorted(FLAVOURS))
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The user's project copied into tmp_path, its import line in the flavour under test; returns the suite."""
    flavour, module = request.param, FLAVOURS[request.param]
    folder = tmp_path / "project"
    folder.mkdir()
    source = (PROJECT / "wine.py").read_text()
    line = "import lightning.pytorch as pl\n"
    assert line in source
    (folder / f"{module}.py").write_text(source.replace(line, f"import {flavour} as pl\n"))
    suite = (PROJECT / "wine.yaml").read_text().replace("wine:", f"{module}:")
    (folder / "wine.yaml").write_text(suite)
    return folder / "wine.yaml"


def test_run_in_both_flavours(project: Path, tmp_path: Path, local_executor: Any) -> None:
    """Every variant trains and is evaluated with its own flavour's Trainer: test_step, validation_step alone,
    and the model's own dataloaders. Same seed, same weights, same data order: the same values (the
    validation-only model's validation loop runs during fit too, and so draws its own loader seeds)."""
    report = run_suites([project], executor=local_executor(workers=0), out=tmp_path / "run",
                        baselines=tmp_path / "b")
    assert [(r.variant, r.seed, r.error) for r in report.runs if not r.ok] == []
    by = {(r.variant, r.seed): r for r in report.runs}
    for seed in (0, 1):
        assert by[("base", seed)].metrics["test_acc"] == by[("own_loaders", seed)].metrics["test_acc"]
        assert 0.5 < by[("validated", seed)].metrics["test_acc"] <= 1
    assert by[("base", 0)].metrics["test_acc"] != by[("base", 1)].metrics["test_acc"]
    assert len(by[("base", 0)].history["train_loss"]) == 2  # normreg's callback ran inside the user's Trainer
    assert report.exit_code == 0


def test_staged_run_in_both_flavours(project: Path, tmp_path: Path, local_executor: Any) -> None:
    report = run_suites([project], executor=local_executor(workers=0), out=tmp_path / "run", baselines=tmp_path / "b",
                        overrides=["seeds={min: 3, max: 5}"])
    assert report.suites[0].seed_plan is not None
    assert report.runs and all(r.ok for r in report.runs)
    assert {r.seed for r in report.runs} >= {0, 1, 2}


def test_audit_in_both_flavours(project: Path) -> None:
    audit = audit_suite(project)
    assert audit.notes == ()
    assert [p.variant for p in audit.pairs] == ["validated", "own_loaders"]
    assert all(m.identical for p in audit.pairs for m in p.modes)
    assert not [f for f in audit.findings if f.severity == "error"]
