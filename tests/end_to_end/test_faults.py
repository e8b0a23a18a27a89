"""Faults in user code and on disk: nothing is lost, nothing is mixed, nothing is green by accident."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normreg import fileio
from normreg.errors import InputError
from normreg.fileio import check_output_dir
from tests.conftest import REGRESSION, SAME

SUITES = Path(__file__).parents[1] / "data" / "suites"
ROOT = Path(__file__).resolve().parents[2]

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


@pytest.fixture(autouse=True)
def _forget_modules_imported_from_tmp(tmp_path: Path):  # type: ignore[no-untyped-def]
    """In-process runs put the suite's folder on the path and import its copies of the test models; forget both, so
    that a later test's suite with a module of the same name imports its own copy rather than this test's."""
    before, path = set(sys.modules), list(sys.path)
    yield
    sys.path[:] = path  # the suite's folder was put on the path to import its models
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


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


# ------------------------------------------------------------------------------------- the disk


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def test_out_naming_a_file_is_refused_before_training(cli, write_suite, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder\n")
    res = cli("run", write_suite(), "--out", tmp_path / "taken", "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "is a file" in lines[0]
    assert lines[0].startswith(f"InputError: --out {tmp_path / 'taken'}")


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
@pytest.mark.parametrize("where", ["out", "baselines"])
def test_unwritable_run_directory_or_baselines_is_found_before_training(cli, write_suite, tmp_path: Path,
                                                                        monkeypatch, code: int, where: str) -> None:
    import normreg.fileio

    target = tmp_path / where
    real = normreg.fileio.tempfile.mkstemp
    ran: list[str] = []

    def mkstemp(*args: object, dir: object = None, **kwargs: object) -> object:
        if Path(str(dir)) == target:
            raise _oserror(code)
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(normreg.fileio.tempfile, "mkstemp", mkstemp)
    if where == "baselines":
        target.mkdir()  # an existing folder, read-only or on a full disk (a missing one is probed in its parent)
    script = {v: {m: [_Counting(ran, x) for x in xs] for m, xs in ms.items()} for v, ms in SAME.items()}
    res = cli("run", write_suite(), "--out", tmp_path / "out", "--baselines", tmp_path / "baselines",
              "--update-baseline", script=script)
    assert res.exit_code == 2, res.output
    what = "the run directory" if where == "out" else "--baselines"
    assert res.output.strip().splitlines() == [
        f"InputError: {what} {target}: cannot write there ({os.strerror(code)}); free some space, fix the "
        "permissions or give another folder"]
    assert not ran and not (tmp_path / "out" / "pair" / "results.csv").exists()


class _Counting(float):
    """A scripted value that notes when it is used: nothing may train before the up-front checks pass."""

    def __new__(cls, ran: list[str], value: float) -> _Counting:
        x = super().__new__(cls, value)
        x.ran = ran  # type: ignore[attr-defined]
        return x

    def __float__(self) -> float:
        self.ran.append("trained")  # type: ignore[attr-defined]
        return super().__float__()


def test_a_report_that_cannot_be_written_at_the_end_keeps_the_verdicts(cli, write_suite, tmp_path: Path,
                                                                       monkeypatch) -> None:
    import normreg.report.model

    def full(path: Path, data: object) -> None:
        raise _oserror(errno.ENOSPC)

    monkeypatch.setattr(normreg.report.model, "write_json_atomic", full)
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--report", tmp_path / "r.json",
              "--baselines", tmp_path / "b", script=REGRESSION)
    assert res.exit_code == 3, res.output
    assert "regressed FAIL" in res.output and "Outcome: ERROR (exit 3)" in res.output  # the table, all the same
    assert (f"RunError: could not write {tmp_path / 'run' / 'report.json'}: No space left on device; could not write "
            f"{tmp_path / 'r.json'}: No space left on device; the verdicts above are complete") in res.output
    assert (tmp_path / "run" / "pair" / "results.csv").read_text().count("\n") == 21  # every run is on disk


def test_a_baseline_that_cannot_be_written_at_the_end_is_a_failure_with_its_path(cli, write_suite, tmp_path: Path,
                                                                                monkeypatch) -> None:
    import normreg.judge.baseline

    def full(path: Path, data: object) -> None:
        raise _oserror(errno.ENOSPC)

    monkeypatch.setattr(normreg.judge.baseline, "write_json_atomic", full)
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", "--update-baseline",
              script=SAME)
    assert res.exit_code == 3, res.output
    assert f"could not write the baseline {tmp_path / 'b' / 'pair.json'}: No space left on device" in res.output
    assert "Outcome: ERROR (exit 3)" in res.output


def test_a_start_that_failed_does_not_block_the_rerun(cli, write_suite, tmp_path: Path, monkeypatch) -> None:
    from normreg import cli as cli_module
    from normreg.errors import RunError
    from normreg.execution.fake import FakeRunner

    class Broken(FakeRunner):
        def run(self, *args: object, **kwargs: object) -> None:
            raise RunError("no worker could start")

    monkeypatch.setattr(cli_module, "make_executor", lambda *a, **k: Broken(SAME))
    suite, out = write_suite(), tmp_path / "run"
    res = CliRunner().invoke(cli_module.app, ["run", str(suite), "--out", str(out), "--baselines",
                                              str(tmp_path / "b")])
    assert res.exit_code == 3 and "no worker could start" in res.output
    assert cli("run", suite, "--out", out, "--baselines", tmp_path / "b", script=SAME).exit_code == 0


def test_a_disk_with_room_for_an_empty_file_but_not_for_data_counts_as_full(tmp_path: Path, monkeypatch) -> None:
    def write(fd: int, data: bytes) -> int:
        raise _oserror(errno.ENOSPC)

    monkeypatch.setattr(fileio.os, "write", write)
    with pytest.raises(InputError, match=r"^--out .*: cannot write there \(No space left on device\)"):
        check_output_dir(tmp_path / "run", "--out")
    assert list(tmp_path.iterdir()) == []  # neither the probe nor the folder is left behind
