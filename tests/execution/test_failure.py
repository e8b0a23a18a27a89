"""Where a failed run failed: the user's innermost frame relative to the suite, else the library's with its
package; the full traceback kept in the run directory, the report, and printed with --debug."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from normreg.execution.failure import describe_error, describe_failure, frame_location

SITE = "/venv/lib/python3.11/site-packages"


def _raise_from_library() -> BaseException:
    """An exception whose every frame lies in a package file (as when Lightning itself raises)."""
    code = compile("def is_overridden(method, instance=None, parent=None):\n"
                   "    raise ValueError('Expected a parent')\n",
                   f"{SITE}/lightning/pytorch/utilities/model_helpers.py", "exec")
    namespace: dict[str, object] = {}
    exec(code, namespace)
    try:
        namespace["is_overridden"]("test_step")  # type: ignore[operator]
    except ValueError as e:
        return e.with_traceback(e.__traceback__.tb_next)  # drop this test's own frame
    raise AssertionError("did not raise")


def test_user_frame_is_named_relative_to_the_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "project" / "models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text("def step():\n    raise ValueError('Expected more than 1 value\\nmore')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "project"))
    sys.modules.pop("models", None)
    nets = importlib.import_module("models.nets")
    try:
        nets.step()
    except ValueError as e:
        assert describe_error(e, tmp_path / "project") == \
            "ValueError: Expected more than 1 value (at models/nets.py:2 in step)"
        failure = describe_failure(e, tmp_path / "project")
    assert failure.traceback.startswith("Traceback (most recent call last)")
    assert "models/nets.py\", line 2, in step" in failure.traceback and failure.traceback.endswith("more\n")
    sys.modules.pop("models", None)
    sys.modules.pop("models.nets", None)


def test_without_a_user_frame_the_library_frame_names_its_package() -> None:
    text = describe_error(_raise_from_library())
    assert text == "ValueError: Expected a parent (at lightning/pytorch/utilities/model_helpers.py:2 in is_overridden)"


@pytest.mark.parametrize(("filename", "where"), [
    (f"{SITE}/lightning/pytorch/trainer/trainer.py", "lightning/pytorch/trainer/trainer.py"),
    ("/usr/lib/python3/dist-packages/torch/nn/functional.py", "torch/nn/functional.py"),
    (str(Path(__file__).parents[2] / "normreg" / "execution" / "worker.py"), "normreg/execution/worker.py"),
    ("<frozen runpy>", "<frozen runpy>"),
], ids=["site-packages", "dist-packages", "normreg", "frozen"])
def test_library_locations(filename: str, where: str) -> None:
    assert frame_location(filename) == where


def test_failed_runs_keep_their_traceback(tmp_path: Path, write_suite, cli) -> None:  # type: ignore[no-untyped-def]
    """With the fake runner: the failures folder, the report's `traceback`, and --debug printing it."""
    suite = write_suite(seeds=2)
    script = {"merged": {"acc": [0.9, 0.91], "loss": [0.3, 0.31]},
              "twin": {"acc": [0.9, RuntimeError("loss is NaN at epoch 3")], "loss": [0.3, 0.31]}}
    out = tmp_path / "run"
    result = cli("--debug", "run", suite, "--out", out, "--baselines", tmp_path / "b", script=script)
    assert result.exit_code == 3
    kept = (out / "pair" / "failures" / "twin-seed1.txt").read_text()
    assert kept.startswith("pair/twin seed 1: RuntimeError: loss is NaN at epoch 3 (at ")
    assert "Traceback (most recent call last)" in kept and kept.endswith("RuntimeError: loss is NaN at epoch 3\n")
    runs = json.loads((out / "report.json").read_text())["runs"]
    failed = [r for r in runs if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["traceback"] in kept
    assert all(r["traceback"] is None for r in runs if r["status"] == "ok")
    assert f"Tracebacks of the failed runs: {out / 'pair' / 'failures'}" in result.output
    quiet = cli("run", suite, "--out", tmp_path / "run2", "--baselines", tmp_path / "b", script=script)
    assert quiet.exit_code == 3
    # --debug prints each failed run's traceback as the run fails, below its line; without it, only the line
    line = "pair/twin seed 1: FAILED RuntimeError: loss is NaN at epoch 3"
    assert line in result.output and line in quiet.output
    live = result.output[result.output.index(line):result.output.index("Run directory:")]
    assert "Traceback (most recent call last)" in live and "RuntimeError: loss is NaN at epoch 3\n" in live
    assert "Traceback (most recent call last)" not in quiet.output


def test_describe_exit_names_signals_it_knows_and_numbers_it_does_not() -> None:
    from normreg.execution.failure import describe_exit

    assert describe_exit(None) == "still running" and describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3" and describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-200) == "killed by signal 200"  # no such signal: named by number, never a ValueError
