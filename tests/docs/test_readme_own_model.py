"""The tutorial (docs/tutorial.md, "Your own model"), end to end: its two files as written, then its two commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normreg import cli as cli_module

TUTORIAL = (Path(__file__).resolve().parents[2] / "docs" / "tutorial.md").read_text(encoding="utf-8")
SECTION = TUTORIAL[TUTORIAL.index("# Tutorial: your own model") : TUTORIAL.index("## Seeding, exactly")]


def _block(language: str, first_line: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", SECTION, flags=re.S)
    return next(b for b in blocks if b.startswith(first_line))


def test_your_own_model_section_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = _block("python", "# my_models.py")
    assert "import lightning.pytorch as pl" in models  # the flavour Lightning's own documentation uses
    (tmp_path / "my_models.py").write_text(models)
    (tmp_path / "my_suite.yaml").write_text(_block("yaml", "# my_suite.yaml"))
    commands = [line.split("#")[0].split() for line in _block("bash", "normreg run").splitlines() if line.strip()]
    assert commands == [["normreg", "run", "my_suite.yaml", "--update-baseline"], ["normreg", "run", "my_suite.yaml"]]
    monkeypatch.chdir(tmp_path)
    fast = ["--workers", "0", "--set", "seeds=2", "--set", "trainer.max_epochs=1"]  # the default test run stays fast
    for n, command in enumerate(commands):
        result = CliRunner().invoke(cli_module.app, [*command[1:], *fast, "--out", f"runs/{n}"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "baselines" / "my_suite.json").read_text())["suite"] == "my_suite"
    report = json.loads((tmp_path / "runs" / "1" / "report.json").read_text())
    kinds = sorted(c["kind"] for c in report["comparisons"])
    assert kinds == ["baseline", "baseline", "pair"] and all(r["status"] == "ok" for r in report["runs"])
    pair = next(c for c in report["comparisons"] if c["kind"] == "pair")
    assert pair["mean_a"] == pair["mean_b"]  # the refactor is the same computation, seed for seed
