"""Checkpoints inside a run (`checkpoint:` in a suite) and `--resume` continuing a killed run from the last one.

The model (tests/data/suites/resumable_models.py) is a user's own: `lightning.pytorch`, its own dataloaders
shuffled by the global generator, dropout, momentum and a learning-rate schedule stepped every epoch. It writes
each epoch it trains to a file, so the tests count the epochs a resumed run trained, not the time it took.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from normreg.errors import InputError, SuiteError
from normreg.execution.executor import Job
from normreg.execution.results import RunResult, tidy_rows
from normreg.execution.rundir import FINISHED_MARK, RunDir, checkpoint_dir, checkpointed, last_checkpoint
from normreg.execution.worker import run_one
from normreg.suite.model import CheckpointConfig
from normreg.suite.spec import load_suite

SUITES = Path(__file__).parents[1] / "data" / "suites"
RESUMABLE = SUITES / "resumable.yaml"


def _suite(*overrides: str):  # noqa: ANN202
    return load_suite(RESUMABLE, list(overrides))


def _epochs(log: Path) -> list[int]:
    return [int(line.split()[1]) for line in log.read_text().splitlines()] if log.exists() else []


# ----------------------------------------------------------------------------------------------- the key


def test_checkpoint_key_is_parsed_and_left_out_of_the_digest() -> None:
    suite = _suite()
    assert suite.checkpoint == CheckpointConfig(every_n_epochs=2, keep=False)
    assert _suite("checkpoint={every_n_epochs: 3, keep: true}").checkpoint == CheckpointConfig(3, True)
    without = _suite("checkpoint=null")
    assert without.checkpoint is None
    assert without.digest == suite.digest  # turning checkpoints on does not change what the suite computes


@pytest.mark.parametrize(("text", "match"), [
    ("checkpoint: {every_n_epochs: 0}", r"s\.yaml:3: checkpoint\.every_n_epochs: .*1 or more.*found a number \(0\)"),
    ("checkpoint: {every_n_epochs: -2}", r"checkpoint\.every_n_epochs.*found .*-2"),
    ("checkpoint: {every_n_epochs: 2.5}", r"checkpoint\.every_n_epochs.*whole number.*found .*2\.5"),
    ("checkpoint: {every_n_epochs: '5'}", r"checkpoint\.every_n_epochs.*found"),
    ("checkpoint: {every_n_epochs: true}", r"checkpoint\.every_n_epochs.*found .*true"),
    ("checkpoint: {}", r"checkpoint.*every_n_epochs"),
    ("checkpoint: {every_n_epochs: 5, kep: true}", r"checkpoint\.kep.*Did you mean.*keep"),
    ("checkpoint: {every_n_epochs: 5, keep: 'yes'}", r"checkpoint\.keep.*true or false"),
    ("checkpoint: 5", r"checkpoint.*mapping"),
], ids=["zero", "negative", "float", "string", "bool", "missing", "unknown-key", "keep-not-bool", "not-a-mapping"])
def test_bad_checkpoint_values_are_refused_naming_file_line_and_key(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"metrics: {{acc: {{goal: max}}}}\nvariants: {{a: {{model: m:M}}}}\n{text}\n")
    with pytest.raises(SuiteError, match=match) as e:
        load_suite(path)
    assert str(path) in str(e.value)


def test_checkpoints_are_refused_for_a_run_of_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("metrics: {acc: {goal: max}}\ncheckpoint: {every_n_epochs: 1}\nvariants:\n"
                    "  a: {model: m:M}\n  wide: {model: m:M, trainer: {devices: 2, strategy: ddp}}\n")
    with pytest.raises(SuiteError, match=r"s\.yaml:2.*checkpoint.*variant wide trains in 2 processes"):
        load_suite(path)


# ------------------------------------------------------------------------------------- results and run dirs


def test_resumed_from_epoch_travels_in_run_records_and_old_records_still_load() -> None:
    run = RunResult("s", "a", 0, "ok", {"acc": 0.5}, resumed_from_epoch=4)
    assert RunResult.from_json(json.loads(json.dumps(run.to_json()))) == run
    assert [r["resumed_from_epoch"] for r in tidy_rows(run)] == [4]
    plain = RunResult("s", "a", 0, "ok", {"acc": 0.5})
    assert "resumed_from_epoch" not in plain.to_json()  # reports written before this key read the same
    assert RunResult.from_json(plain.to_json()).resumed_from_epoch is None
    assert tidy_rows(plain)[0]["resumed_from_epoch"] == ""


def test_a_directory_holding_checkpoints_is_resumed_never_reused(tmp_path: Path) -> None:
    folder = checkpoint_dir(tmp_path / "run" / "s", "a", 0)
    folder.mkdir(parents=True)
    (folder / "epoch3.ckpt").write_bytes(b"x")
    (folder / "epoch1.ckpt").write_bytes(b"x")
    assert last_checkpoint(folder) == (folder / "epoch3.ckpt", 4)
    assert checkpointed(tmp_path / "run" / "s") == {("a", 0): 4}
    with pytest.raises(InputError, match=r"already holds the results of an earlier run \(s/\).*--resume"):
        RunDir.open(tmp_path / "run")
    (folder / FINISHED_MARK).touch()  # a kept, finished run's checkpoints resume nothing
    assert last_checkpoint(folder) is None
    RunDir.open(tmp_path / "run").close()


def test_a_stop_names_the_checkpoints_it_leaves_not_only_finished_runs(tmp_path: Path) -> None:
    from normreg.execution.executor import Interrupted
    from normreg.execution.rundir import kept_in

    run = tmp_path / "run"
    folder = checkpoint_dir(run / "s", "a", 0)
    folder.mkdir(parents=True)
    (folder / "epoch1.ckpt").write_bytes(b"x")
    assert kept_in(run) == f"checkpoints of unfinished runs are in {run}"
    assert str(Interrupted(signal.SIGTERM, run)) == f"stopped by SIGTERM; checkpoints of unfinished runs are in {run}"
    (run / "s" / "runs.jsonl").write_text('{"variant": "b"}\n')
    assert kept_in(run) == f"finished runs, and checkpoints of unfinished ones, are in {run}"
    (folder / FINISHED_MARK).touch()
    assert kept_in(run) == f"finished runs are in {run}"


def test_a_run_that_finishes_without_its_worker_loses_its_checkpoints_too(cli, write_suite, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose result comes back without its worker cleaning up (a time limit, a worker that died; here the
    fake runner, which never touches files) still has its checkpoints removed once its result is recorded."""
    from normreg import cli as cli_module
    from normreg.execution.fake import FakeRunner
    from tests.conftest import REGRESSION

    suite, out = write_suite(extra="checkpoint: {every_n_epochs: 1}"), tmp_path / "run"
    flaky = {"merged": REGRESSION["merged"],
             "twin": {"acc": [0.937, RuntimeError("ended"), 0.952, 0.930, 0.941], "loss": REGRESSION["twin"]["loss"]}}
    assert cli("run", suite, "--out", out, "--baselines", tmp_path / "b", script=flaky).exit_code == 3
    folder = checkpoint_dir(out / "pair", "twin", 1)  # what the killed run of twin seed 1 had saved
    folder.mkdir(parents=True)
    (folder / "epoch2.ckpt").write_bytes(b"x")
    again = FakeRunner(REGRESSION)
    monkeypatch.setattr(cli_module, "make_executor", lambda *a, **k: again)
    res = cli("run", suite, "--resume", out, "--baselines", tmp_path / "b")
    assert f"Resuming {out}: 9 finished runs reused, 1 unfinished continue from their checkpoints" in res.output
    assert [(j.variant, j.seed) for j in again.jobs] == [("twin", 1)]
    assert not (out / "pair" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------ in one process


def test_a_stopped_run_resumes_from_its_checkpoint_and_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    """Stopped at the start of epoch 3 (0-based) of 4 with a checkpoint every 2 epochs: the resumed run trains
    epochs 2 and 3 only, and its value and curves equal the uninterrupted run's exactly. The uninterrupted run keeps
    its checkpoints (`keep: true`), marked finished; the resumed one's are removed once it has finished."""
    whole = run_one(Job(_suite("checkpoint={every_n_epochs: 2, keep: true}",
                               f"variants.a.model.args={{epochs_log: {tmp_path / 'whole.log'}}}"), "a", 0,
                        tmp_path / "whole"))
    assert whole.ok and whole.resumed_from_epoch is None and _epochs(tmp_path / "whole.log") == [0, 1, 2, 3]
    kept = checkpoint_dir(tmp_path / "whole", "a", 0)
    assert sorted(p.name for p in kept.iterdir()) == ["epoch3.ckpt", FINISHED_MARK]
    assert last_checkpoint(kept) is None  # a finished run's checkpoints resume nothing

    stopped = _suite(f"variants.a.model.args={{epochs_log: {tmp_path / 'first.log'}, stop_at_epoch: 3}}")
    with pytest.raises(KeyboardInterrupt):
        run_one(Job(stopped, "a", 0, tmp_path / "run"))
    assert _epochs(tmp_path / "first.log") == [0, 1, 2]
    folder = checkpoint_dir(tmp_path / "run", "a", 0)
    assert last_checkpoint(folder) == (folder / "epoch1.ckpt", 2)  # epoch 2's work is lost: saved every 2

    resumed = run_one(Job(_suite(f"variants.a.model.args={{epochs_log: {tmp_path / 'second.log'}}}"), "a", 0,
                          tmp_path / "run"))
    assert resumed.ok and resumed.resumed_from_epoch == 2
    assert _epochs(tmp_path / "second.log") == [2, 3]  # only the remaining epochs
    assert resumed.metrics == whole.metrics  # bit for bit
    assert resumed.history == whole.history and len(resumed.history["val_loss"]) == 4
    assert not (tmp_path / "run" / "checkpoints").exists()  # removed once the run finished


# ------------------------------------------------------------------------------ a real kill -9, end to end


def _normreg(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "normreg", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]


@pytest.mark.slow
@pytest.mark.parametrize("keep", [False, True])
def test_kill_9_in_the_middle_of_a_run_then_resume(tmp_path: Path, keep: bool) -> None:
    epochs = 8
    log = tmp_path / "epochs.log"
    args = [str(RESUMABLE), "--workers", "1", "--baselines", str(tmp_path / "b"),
            "--set", f"trainer.max_epochs={epochs}",
            "--set", f"checkpoint={{every_n_epochs: 2, keep: {str(keep).lower()}}}",
            "--set", f"variants.a.model.args={{epochs_log: {log}, epoch_seconds: 0.4}}"]
    run = tmp_path / "run"
    killed = _normreg(*args, "--out", str(run), start_new_session=True)
    folder = checkpoint_dir(run / "resumable", "a", 0)
    deadline = time.monotonic() + 240
    while last_checkpoint(folder) is None:
        assert killed.poll() is None, killed.stdout.read().decode() if killed.stdout else ""
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)  # the whole process group: normreg, its working process, the worker
    killed.wait()
    trained_before = len(_epochs(log))
    _, saved = last_checkpoint(folder) or (None, 0)
    assert 0 < saved < epochs and trained_before < epochs

    resumed = _normreg(*args, "--resume", str(run))
    out = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, out
    (record,) = [json.loads(line) for line in (run / "resumable" / "runs.jsonl").read_text().splitlines()]
    assert record["resumed_from_epoch"] == saved
    assert _epochs(log)[trained_before:] == list(range(saved, epochs))  # only the remaining epochs trained
    assert "resumed from epoch" in out and "0 finished runs reused, 1 unfinished continue from their checkpoints" in out
    assert (folder.is_dir() and (folder / FINISHED_MARK).exists()) if keep else not (run / "resumable" /
                                                                                      "checkpoints").exists()

    whole = _normreg(*args, "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=300) == 0
    (plain,) = [json.loads(x) for x in (tmp_path / "whole" / "resumable" / "runs.jsonl").read_text().splitlines()]
    assert record["metrics"] == plain["metrics"] and record["history"] == plain["history"]
    assert "resumed_from_epoch" not in plain


def test_every_report_format_marks_a_resumed_run(report_json: dict) -> None:
    from dataclasses import replace

    from normreg.render.html import render_html
    from normreg.render.markdown import render_markdown
    from normreg.render.terminal import render
    from normreg.report.file import report_from_json

    report = report_from_json(report_json).report
    first = next(r for r in report.runs if r.ok)
    assert "resumed from epoch" not in render(report) + render_markdown(report)
    runs = tuple(replace(r, resumed_from_epoch=4) if r is first else r for r in report.runs)
    marked = replace(report, runs=runs)
    line = f"{first.variant} seed {first.seed} resumed from epoch 4"
    assert f"  {first.suite}: runs continued from a checkpoint by --resume: {line}" in render(marked)
    assert line in render_markdown(marked) and line in render_html(marked)
    again = report_from_json(json.loads(json.dumps(marked.to_json()))).report  # through the report file
    assert [r.resumed_from_epoch for r in again.runs] == [r.resumed_from_epoch for r in runs]
