"""Faults in user code and on disk: nothing is lost, nothing is mixed, nothing is green by accident."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SUITES = Path(__file__).parent / "data" / "suites"
ROOT = Path(__file__).resolve().parents[1]

QUITTERS = '''
import sys

from tiny_models import Classifier


class Quits(Classifier):
    """User code that ends the process from inside a run."""

    def __init__(self, how: str = "exit") -> None:
        super().__init__()
        self.how = how

    def training_step(self, batch, batch_idx):
        if self.how == "exit":
            sys.exit(0)
        raise KeyboardInterrupt
'''


def normreg(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "normreg.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _suite(tmp_path: Path, variants: str, module: str = QUITTERS, name: str = "quitters", seeds: int = 2) -> Path:
    shutil.copy(SUITES / "tiny_models.py", tmp_path / "tiny_models.py")
    (tmp_path / f"{name}.py").write_text(module)
    path = tmp_path / "quit.yaml"
    header = textwrap.dedent(f"""\
        name: quit
        data: {{target: tiny_models:Blobs, args: {{n: 64, batch_size: 32}}}}
        trainer: {{max_epochs: 1}}
        seeds: {seeds}
        metrics: {{acc: {{goal: max, min_effect: 0.05}}}}
        variants:
        """)
    path.write_text(header + textwrap.indent(textwrap.dedent(variants).strip() + "\n", "  "))
    return path


@pytest.mark.parametrize("workers", ["0", "2"])
def test_user_code_that_exits_fails_its_run_not_the_whole_process(cli, tmp_path: Path, workers: str) -> None:
    suite = _suite(tmp_path, """
        a: {model: tiny_models:Classifier}
        exits: {model: {target: quitters:Quits, args: {how: exit}}}
        interrupts: {model: {target: quitters:Quits, args: {how: interrupt}}}
        """, seeds=2 if workers == "0" else 1)  # fewer runs where each worker process imports Lightning
    seeds = (0, 1) if workers == "0" else (0,)
    handler = signal.getsignal(signal.SIGINT)
    res = cli("run", suite, "--workers", workers, "--out", tmp_path / "run", "--baselines", tmp_path / "b")
    assert res.exit_code == 3, res.output
    assert signal.getsignal(signal.SIGINT) == handler  # Lightning's SIG_IGN after a KeyboardInterrupt is undone
    runs = json.loads((tmp_path / "run" / "report.json").read_text())["runs"]
    assert len(runs) == 3 * len(seeds)  # every run ran and was recorded
    status = {(r["variant"], r["seed"]): (r["status"], r["error"] or "") for r in runs}
    for seed in seeds:
        assert status[("a", seed)][0] == "ok"
        assert status[("exits", seed)][0] == "failed" and status[("exits", seed)][1].startswith("SystemExit: 0")
        assert "quitters.py" in status[("exits", seed)][1]
        # Lightning turns a KeyboardInterrupt in training_step into sys.exit(1)
        assert status[("interrupts", seed)][0] == "failed"
        assert status[("interrupts", seed)][1].startswith(("KeyboardInterrupt", "SystemExit: 1"))
    assert "Outcome: ERROR (exit 3)" in res.output


def test_a_module_that_exits_on_import_is_refused_before_training(cli, tmp_path: Path) -> None:
    suite = _suite(tmp_path, """
        a: {model: tiny_models:Classifier}
        b: {model: quits_on_import:Quits}
        """, module="import sys\nsys.exit(0)\n", name="quits_on_import")
    res = cli("run", suite, "--out", tmp_path / "run", "--baselines", tmp_path / "b")
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines() == [
        f"SuiteError: {suite}:8: variants.b.model.target: importing 'quits_on_import' raised SystemExit: 0"]
    assert not (tmp_path / "run" / "quit" / "results.csv").exists()
