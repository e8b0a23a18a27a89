"""normreg/execution/fake.py: the executor that trains nothing says so, and runs exactly what it is scripted to."""

from __future__ import annotations

from pathlib import Path

import pytest

from normreg.execution.executor import Job
from normreg.execution.fake import FakeRunner
from normreg.execution.results import RunResult
from normreg.suite.spec import load_suite

SUITE = load_suite(Path(__file__).parents[1] / "data" / "suites" / "tiny.yaml")  # seeds 0 and 1; a, b, broken


def run(runner: FakeRunner, jobs: list[Job]) -> list[RunResult]:
    results: list[RunResult] = []
    runner.run(jobs, results.append)
    return results


def test_it_says_it_is_a_fake_that_trains_nothing():
    runner = FakeRunner({"a": {"acc": [0.5, 0.6]}})
    (result,) = run(runner, [Job(SUITE, "a", 1)])
    assert (runner.name, runner.trains, result.device) == ("fake", False, "fake")
    assert (result.status, result.metrics["acc"]) == ("ok", 0.6)
    assert FakeRunner({"a": {"acc": [0.5, 0.6]}}, device="cuda:NVIDIA H200").worker(Job(SUITE, "a", 0), "gpu").device \
        == "cuda:NVIDIA H200"


def test_a_list_is_indexed_by_seed_position_a_mapping_by_seed_and_a_callable_called():
    jobs = [Job(SUITE, "a", 0), Job(SUITE, "a", 1)]
    assert [r.metrics["acc"] for r in run(FakeRunner({"a": {"acc": [0.1, 0.2]}}), jobs)] == [0.1, 0.2]
    assert [r.metrics["acc"] for r in run(FakeRunner({"a": {"acc": {1: 0.9, 0: 0.8}}}), jobs)] == [0.8, 0.9]
    called = FakeRunner(lambda variant, seed: {"acc": 0.5 + seed / 10})
    assert [r.metrics["acc"] for r in run(called, jobs)] == [0.5, 0.6]
    assert [j.key for j in called.jobs] == [("tiny", "a", 0), ("tiny", "a", 1)]


def test_an_exception_in_the_script_fails_that_run_only_with_its_message():
    runner = FakeRunner({"a": {"acc": [0.5, RuntimeError("diverged at step 3")]}, "broken": ValueError("no model")})
    ok, seed_failed, variant_failed = run(runner, [Job(SUITE, "a", 0), Job(SUITE, "a", 1), Job(SUITE, "broken", 0)])
    assert ok.status == "ok"
    assert seed_failed.status == variant_failed.status == "failed"
    assert "RuntimeError: diverged at step 3" in seed_failed.error and "ValueError: no model" in variant_failed.error


def test_after_cancel_no_further_job_starts():
    started: list[Job] = []
    results: list[RunResult] = []
    runner = FakeRunner({"a": {"acc": [0.5, 0.6]}})
    runner.run([Job(SUITE, "a", 0)], results.append, started.append)
    runner.cancel()
    runner.run([Job(SUITE, "a", 1)], results.append, started.append)
    assert [j.seed for j in started] == [0] and len(results) == 1 and len(runner.jobs) == 1
    runner.close()
    assert runner.closed


@pytest.mark.parametrize("script", [{"b": {"acc": [0.5, 0.6]}}, {"a": {"acc": [0.5]}}], ids=["no-variant", "no-seed"])
def test_a_job_the_script_does_not_cover_is_a_failed_run_not_a_crash(script):
    (result,) = run(FakeRunner(script), [Job(SUITE, "a", 1)])
    assert result.status == "failed"
