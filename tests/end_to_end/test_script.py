"""The Python API from a plain script, as a user writes one: `import normreg; normreg.run(...)` at the top level,
with and without an `if __name__ == "__main__":` guard, with worker processes and without."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = Path(__file__).parents[1] / "data" / "suites"

SUITE = """\
name: s
data: {target: tiny_models:Blobs, args: {n: 64, batch_size: 32}}
trainer: {max_epochs: 1}
seeds: 1
metrics: {acc: {goal: max, min_effect: 0.05}}
reference: a
variants:
  a: {model: tiny_models:Classifier}
  b: {model: tiny_models:Classifier}
"""


@pytest.mark.parametrize("guard, workers", [pytest.param(False, 0, marks=pytest.mark.slow), (False, 2),
                                           pytest.param(True, 2, marks=pytest.mark.slow)],
                         ids=["bare-workers0", "bare-workers2", "guarded-workers2"])
def test_a_script_runs_a_suite_with_and_without_out(tmp_path: Path, guard: bool, workers: int) -> None:
    shutil.copy(SUITES / "tiny_models.py", tmp_path / "tiny_models.py")
    (tmp_path / "s.yaml").write_text(SUITE)
    body = textwrap.dedent(f"""\
        report = normreg.run("s.yaml", workers={workers}, out="mine")
        print("first", report.exit_code, len(report.runs))
        report = normreg.run("s.yaml", workers={workers})
        print("second", report.exit_code, len(report.runs))
        """)
    if guard:
        body = 'if __name__ == "__main__":\n' + textwrap.indent(body, "    ")
    (tmp_path / "go.py").write_text("import normreg\n\n" + body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "go.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines() == ["first 0 2", "second 0 2"], res.stdout + res.stderr
    assert "RuntimeError" not in res.stderr and "bootstrapping" not in res.stderr, res.stderr
    report = json.loads((tmp_path / "mine" / "report.json").read_text())
    assert [r["status"] for r in report["runs"]] == ["ok", "ok"]
    made = list((tmp_path / "runs").iterdir())  # one run directory for the one run without out=, nothing else
    assert len(made) == 1 and (made[0] / "report.json").exists(), made
