"""Lightning's own chatter stays out of normreg's output in both flavours; the user's prints and warnings do not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROJECT = Path(__file__).parents[1] / "data" / "suites" / "userproj"
ROOT = Path(__file__).parents[2]

CHATTY = '''
import warnings

from {module} import WineNet


class Chatty(WineNet):
    def training_step(self, batch, batch_idx):
        if batch_idx == 0 and self.current_epoch == 0:
            print("user print: first step")
            warnings.warn("user warning: check the learning rate")
        return super().training_step(batch, batch_idx)
'''


@pytest.mark.parametrize("flavour", ["lightning.pytorch", "pytorch_lightning"])
def test_a_fresh_worker_prints_only_the_users_output(flavour: str, tmp_path: Path) -> None:
    """One run in a fresh process, as in a worker: the flavour is first imported when the user's module is."""
    module = "wine" if flavour == "lightning.pytorch" else "wine_classic"
    source = (PROJECT / "wine.py").read_text().replace("import lightning.pytorch as pl\n", f"import {flavour} as pl\n")
    (tmp_path / f"{module}.py").write_text(source)
    (tmp_path / "chatty.py").write_text(CHATTY.format(module=module))
    suite = (PROJECT / "wine.yaml").read_text().replace("wine:", f"{module}:")
    (tmp_path / "wine.yaml").write_text(suite + "  chatty: {model: chatty:Chatty, data: " + module + ":WineData}\n")
    script = textwrap.dedent(f"""
        from normreg.execution.executor import Job
        from normreg.execution.worker import run_one
        from normreg.suite.spec import load_suite
        result = run_one(Job(load_suite({str(tmp_path / 'wine.yaml')!r}), "chatty", 0))
        print("status:", result.status, result.error)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    text = out.stdout + out.stderr
    assert "status: ok None" in out.stdout, text
    for noise in ("GPU available", "TPU available", "Tip:", "litlogger", "`Trainer.fit` stopped"):
        assert noise not in text, text
    assert "user print: first step" in out.stdout
    assert "UserWarning: user warning: check the learning rate" in out.stderr
