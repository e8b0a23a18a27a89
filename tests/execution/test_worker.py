"""Real Lightning training on a tiny suite: seeding, determinism, failure capture, results on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from normreg.execution.executor import Job, plan_jobs
from normreg.execution.worker import run_one
from normreg.pipeline import run_suites
from normreg.suite.spec import load_suite

TINY = Path(__file__).parents[1] / "data" / "suites" / "tiny.yaml"


def test_real_end_to_end_run(tmp_path: Path, local_executor: Any) -> None:
    """Two copies of one implementation give identical per-seed values; the broken variant fails alone."""
    seen = []
    report = run_suites([TINY], out=tmp_path / "run", baselines=tmp_path / "b", executor=local_executor(workers=2),
                        progress=lambda p: p.finished and seen.append((p.done, p.total)))
    by = {(r.variant, r.seed): r for r in report.runs}
    assert by[("a", 0)].ok and by[("b", 0)].ok
    assert by[("a", 0)].metrics["acc"] == by[("b", 0)].metrics["acc"]  # same seed -> same weights, same order
    assert by[("a", 1)].metrics["acc"] == by[("b", 1)].metrics["acc"]
    assert by[("a", 0)].metrics["acc"] != by[("a", 1)].metrics["acc"]  # the seed matters
    assert not by[("broken", 0)].ok and "broken on purpose" in by[("broken", 0)].error
    assert by[("broken", 0)].error.endswith("(at tiny_models.py:37 in training_step)")  # relative to the suite
    kept = (tmp_path / "run" / "tiny" / "failures" / "broken-seed0.txt").read_text()  # sent back from a worker
    assert "Traceback (most recent call last)" in kept and 'raise RuntimeError("this variant is broken' in kept
    assert by[("broken", 0)].traceback in kept and by[("a", 0)].traceback is None
    assert sorted(p.name for p in (tmp_path / "run" / "tiny" / "failures").iterdir()) == [
        "broken-seed0.txt", "broken-seed1.txt"]
    assert report.exit_code == 3
    assert [d for d, _ in seen] == list(range(1, 7)) and {t for _, t in seen} == {6}
    lines = (tmp_path / "run" / "tiny" / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(x)["suite"] == "tiny" for x in lines)
    assert not list(tmp_path.rglob("*.ckpt")) and not list(Path.cwd().glob("lightning_logs"))
    assert len(by[("a", 0)].history["train_loss"]) == 2  # per-epoch values, one per epoch
    assert {r.device for r in report.runs} == {"cpu"} and report.environment["devices"] == ["cpu"]
    assert json.loads((tmp_path / "run" / "report.json").read_text())["runs"][0]["device"] == "cpu"


def test_missing_metric_and_nan_fail_the_run(tmp_path: Path) -> None:
    suite = load_suite(TINY, ["metrics={nope: {goal: max}}", "variants={a: {model: tiny_models:Classifier}}",
                              "seeds=1"])
    result = run_one(Job(suite, "a", 0))
    assert result.status == "failed"
    assert result.error.startswith("MissingMetric: the model logged acc in its test_step, but not nope")


def test_runs_reproduce_exactly_and_record_their_thread_count() -> None:
    import torch

    suite = load_suite(TINY, ["variants={a: {model: tiny_models:Classifier}}", "seeds=1"])
    first, second = run_one(Job(suite, "a", 0)), run_one(Job(suite, "a", 0))
    assert first.ok and first.metrics == second.metrics
    assert first.threads == torch.get_num_threads() and first.to_json()["threads"] == first.threads


def test_plan_is_seed_major() -> None:
    suite = load_suite(TINY)
    assert [(j.variant, j.seed) for j in plan_jobs(suite)] == [
        ("a", 0), ("b", 0), ("broken", 0), ("a", 1), ("b", 1), ("broken", 1)]


@pytest.mark.gpu
def test_gpu_runner_uses_the_device(tmp_path: Path, local_executor: Any) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    report = run_suites([TINY], out=tmp_path, baselines=tmp_path / "b", executor=local_executor())
    name = torch.cuda.get_device_name(0)
    assert {r.device for r in report.runs} == {f"cuda:0 ({name})"}
    assert report.environment["device"] == f"cuda ({name})"
    # the values are those of the same runs on the GPU in this process
    (a0,) = [r for r in report.runs if (r.variant, r.seed) == ("a", 0)]
    assert a0.metrics == run_one(Job(load_suite(TINY), "a", 0), "gpu").metrics


@pytest.mark.gpu
def test_gpu_out_of_memory_fails_only_its_run(tmp_path: Path, local_executor: Any) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    report = run_suites([TINY], out=tmp_path, baselines=tmp_path / "b", executor=local_executor(runs_per_gpu=2),
                        overrides=["variants.broken.model.args={broken: false, hog_gib: 100000}"])
    by = {(r.variant, r.seed): r for r in report.runs}
    assert all(by[("a", s)].ok and by[("b", s)].ok for s in (0, 1))
    assert "OutOfMemoryError" in by[("broken", 0)].error and "OutOfMemoryError" in by[("broken", 1)].error


@pytest.mark.gpu
def test_cpu_variant_stays_on_the_cpu_beside_a_gpu(tmp_path: Path, local_executor: Any) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    report = run_suites([TINY], out=tmp_path, baselines=tmp_path / "b", executor=local_executor(),
                        overrides=["variants.b.trainer={accelerator: cpu}"])
    devices = {r.variant: r.device for r in report.runs}
    assert devices["a"].startswith("cuda:0") and devices["b"] == "cpu"
