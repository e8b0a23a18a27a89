"""`normreg repro`: one run as a standalone script (no normreg import) that prints the values normreg recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from normreg.execution.executor import Job
from normreg.execution.worker import run_one
from normreg.suite.spec import load_suite

WINE = Path(__file__).parents[1] / "data" / "suites" / "userproj" / "wine.yaml"


def test_the_script_prints_the_values_of_the_run(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """The validation-only model: datamodule, the second seeding, validate; run where normreg cannot be imported."""
    script = tmp_path / "repro.py"
    result = cli("repro", WINE, "--variant", "validated", "--seed", "1", "-o", script)
    assert result.exit_code == 0, result.output
    text = script.read_text()
    assert "import normreg" not in text and "from normreg" not in text
    assert text.count("pl.seed_everything(SEED, workers=True, verbose=False)") == 2
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    printed = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    run = run_one(Job(load_suite(WINE), "validated", 1))
    assert run.ok and printed == {k: repr(v) for k, v in run.metrics.items()}


def test_a_model_without_a_datamodule_and_the_default_variant(cli) -> None:  # type: ignore[no-untyped-def]
    own = cli("repro", WINE, "--variant", "own_loaders")
    assert own.exit_code == 0 and "'data': None" in own.output and "'seed': 0" in own.output
    assert "'evaluate': 'test'" in own.output
    reference = cli("repro", WINE, "--seed", "3", "--set", "trainer.max_epochs=5")
    assert "{'target': 'wine:WineNet', 'args': {}}" in reference.output and "'max_epochs': 5" in reference.output
    assert "'seed': 3" in reference.output


def test_an_unknown_variant_is_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("repro", WINE, "--variant", "validate")
    assert result.exit_code == 2
    assert "unknown variant 'validate'. Did you mean 'validated'?" in result.output
