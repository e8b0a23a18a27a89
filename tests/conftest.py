"""Shared fixtures: suite files written on the fly, the fake runner wired into the CLI, a CLI invoker."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.scripted import NIGHT_DATES, make_report

DATA = Path(__file__).parent / "data"

PAIR_SUITE = """
name: {name}
seeds: {seeds}
metrics:
  acc: {{goal: max, min_effect: 0.01}}
  loss: {{goal: min, min_effect: 0.05}}
reference: merged
variants:
  merged: {{model: {{target: tiny_models:Classifier}}}}
  twin: {{model: {{target: tiny_models:Classifier}}}}
{extra}
"""


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[..., Path]:
    """Write a suite file into tmp_path; defaults give the merged/twin pair on metrics acc and loss."""

    def write(text: str | None = None, *, name: str = "pair", seeds: int = 5, extra: str = "",
              filename: str | None = None) -> Path:
        body = textwrap.dedent(text) if text is not None else PAIR_SUITE.format(name=name, seeds=seeds,
                                                                                extra=textwrap.dedent(extra))
        path = tmp_path / (filename or f"{name}.yaml")
        path.write_text(body)
        return path

    return write


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Invoke the CLI in-process; `script=` makes `run` use a FakeRunner with those per-seed metrics."""
    from normreg import cli as cli_module
    from normreg.execution.fake import FakeRunner

    def invoke(*args: str, script: object = None) -> object:
        if script is not None:
            monkeypatch.setattr(cli_module, "make_executor", lambda *a, **k: FakeRunner(script))  # type: ignore[arg-type]
        return CliRunner().invoke(cli_module.app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def local_executor() -> Any:
    """Make local executors (`local_executor(workers=0)`) that are closed, their workers ended, after the test."""
    from normreg.execution.executors.local import LocalExecutor, LocalOptions

    made: list[LocalExecutor] = []

    def make(**options: Any) -> LocalExecutor:
        made.append(LocalExecutor(LocalOptions(**options)))
        return made[-1]

    yield make
    for ex in made:
        ex.close()


# Scripted values: twin is clearly worse on acc, equal on loss.
REGRESSION = {
    "merged": {"acc": [0.984, 0.979, 0.988, 0.983, 0.986], "loss": [0.30, 0.31, 0.29, 0.30, 0.30]},
    "twin": {"acc": [0.937, 0.915, 0.952, 0.930, 0.941], "loss": [0.30, 0.30, 0.31, 0.29, 0.30]},
}
SAME = {
    "merged": {"acc": [0.984, 0.979, 0.988, 0.983, 0.986], "loss": [0.30, 0.31, 0.29, 0.30, 0.30]},
    "twin": {"acc": [0.984, 0.979, 0.988, 0.983, 0.986], "loss": [0.30, 0.31, 0.29, 0.30, 0.30]},
}

# Scripted nightly reports for the report formats and history (see tests/scripted.py).

@pytest.fixture(scope="session")
def report_json(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The normalised JSON of one scripted nightly report (both suites, baseline checks, failures of each kind)."""
    return make_report(tmp_path_factory.mktemp("nightly"))


@pytest.fixture(scope="session")
def report_path(tmp_path_factory: pytest.TempPathFactory, report_json: dict[str, Any]) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.json"
    path.write_text(json.dumps(report_json, indent=2, sort_keys=True) + "\n")
    return path


@pytest.fixture(scope="session")
def nights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five nightly reports of the scripted suites in nested folders (written in scrambled order); the drift
    suite's variant b regresses from the fourth night on. A baseline JSON beside them is not a report."""
    work = tmp_path_factory.mktemp("nights-work")
    out = tmp_path_factory.mktemp("nights")
    for night in (3, 1, 5, 2, 4):
        data = make_report(work, night=night, regressed_from=4, created=NIGHT_DATES[night - 1], curves=False)
        folder = out / f"nightly-{night * 7919 % 100:02d}"  # folder names do not sort by date
        folder.mkdir()
        (folder / "report.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    shutil.copy(work / "baselines" / "drift.json", out / "drift-baseline.json")
    return out
