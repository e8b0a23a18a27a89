"""Real Lightning training on a tiny suite: seeding, determinism, failure capture, results on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from normreg.pipeline import run_suites
from normreg.run.runner import Job, LightningRunner, default_workers, describe_error, plan_jobs, run_one
from normreg.suite.spec import load_suite

TINY = Path(__file__).parent / "data" / "suites" / "tiny.yaml"


def test_real_end_to_end_run(tmp_path: Path) -> None:
    """Two copies of one implementation give identical per-seed values; the broken variant fails alone."""
    seen = []
    report = run_suites([TINY], out=tmp_path / "run", baselines=tmp_path / "b", workers=2,
                        progress=lambda p: seen.append((p.done, p.total)))
    by = {(r.variant, r.seed): r for r in report.runs}
    assert by[("a", 0)].ok and by[("b", 0)].ok
    assert by[("a", 0)].metrics["acc"] == by[("b", 0)].metrics["acc"]  # same seed -> same weights, same order
    assert by[("a", 1)].metrics["acc"] == by[("b", 1)].metrics["acc"]
    assert by[("a", 0)].metrics["acc"] != by[("a", 1)].metrics["acc"]  # the seed matters
    assert not by[("broken", 0)].ok and "broken on purpose" in by[("broken", 0)].error
    assert "tiny_models.py" in by[("broken", 0)].error
    assert report.exit_code == 3
    assert [d for d, _ in seen] == list(range(1, 7)) and {t for _, t in seen} == {6}
    lines = (tmp_path / "run" / "tiny" / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(x)["suite"] == "tiny" for x in lines)
    assert not list(tmp_path.rglob("*.ckpt")) and not list(Path.cwd().glob("lightning_logs"))
    assert len(by[("a", 0)].history["train_loss"]) == 2  # per-epoch values, one per epoch


def test_missing_metric_and_nan_fail_the_run(tmp_path: Path) -> None:
    suite = load_suite(TINY, ["metrics={nope: {goal: max}}", "variants={a: {model: tiny_models:Classifier}}",
                              "seeds=1"])
    result = run_one(Job(suite, "a", 0))
    assert result.status == "failed"
    assert result.error.startswith("MissingMetric: the model logged acc in its test_step, but not nope")


def test_runs_reproduce_exactly() -> None:
    suite = load_suite(TINY, ["variants={a: {model: tiny_models:Classifier}}", "seeds=1"])
    first, second = run_one(Job(suite, "a", 0)), run_one(Job(suite, "a", 0))
    assert first.ok and first.metrics == second.metrics


def test_worker_default() -> None:
    assert default_workers(n_jobs=10, gpus=0, cores=2) == 2
    assert default_workers(n_jobs=1, gpus=0, cores=8) == 1
    assert default_workers(n_jobs=10, gpus=4, cores=64) == 4


def test_describe_error_names_the_user_frame() -> None:
    def user_code() -> None:
        raise ValueError("Expected more than 1 value per channel when training\nmore")

    try:
        user_code()
    except ValueError as e:
        text = describe_error(e)
    assert text.startswith("ValueError: Expected more than 1 value per channel when training (at test_runner.py:")
    assert "in user_code" in text


def test_plan_is_seed_major() -> None:
    suite = load_suite(TINY)
    assert [(j.variant, j.seed) for j in plan_jobs(suite)] == [
        ("a", 0), ("b", 0), ("broken", 0), ("a", 1), ("b", 1), ("broken", 1)]


@pytest.mark.gpu
def test_gpu_runner_uses_the_device(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    report = run_suites([TINY], out=tmp_path, baselines=tmp_path / "b", runner=LightningRunner())
    assert report.environment["device"].startswith("cuda")
