"""Runs on several processes: normreg launches the ranks itself, rank 0's synced values are the run's, a rank
that dies fails the run within a bounded wait, and the values equal a plain Lightning loop's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from normreg.execution.ddp import popen_strategy
from normreg.execution.executor import Job
from normreg.execution.worker import run_one
from normreg.pipeline import run_suites
from normreg.suite.model import world_size
from normreg.suite.spec import load_suite

SUITES = Path(__file__).parents[1] / "data" / "suites"
DDP = SUITES / "ddp.yaml"


@pytest.mark.parametrize(("trainer", "n"), [({}, 1), ({"devices": 1}, 1), ({"devices": 2}, 2), ({"devices": "4"}, 4),
                                            ({"devices": [0, 3]}, 2), ({"devices": "auto"}, 1), ({"devices": -1}, 1),
                                            ({"devices": 2, "num_nodes": 2}, 4)])
def test_world_size_counts_the_processes_asked_for(trainer: dict, n: int) -> None:
    assert world_size(trainer) == n


@pytest.mark.parametrize(("asked", "ran"), [("ddp", "ddp"), ("ddp_spawn", "ddp"), ("ddp_fork", "ddp"),
                                            ("ddp_notebook", "ddp"), (None, "ddp"), ("auto", "ddp"),
                                            ("ddp_spawn_find_unused_parameters_true",
                                             "ddp_find_unused_parameters_true"), ("fsdp", "fsdp")])
def test_spawn_strategies_run_as_their_popen_twin(asked: str | None, ran: str) -> None:
    assert popen_strategy(asked) == ran


def _plain(tmp_path: Path, seed: int, strategy: str = "ddp", sync: bool = False) -> dict[str, float]:
    """The same model trained by a plain script, launched by Lightning's own DDP launcher."""
    out = tmp_path / f"plain-{strategy}-{seed}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NORMREG_DDP_RANK")}
    subprocess.run([sys.executable, "ddp_plain.py", str(seed), strategy, "1" if sync else "0", str(out)],
                   cwd=SUITES, env=env, check=True, timeout=600, capture_output=True)
    return json.loads(out.read_text())


def test_a_two_process_run_in_a_worker_equals_the_plain_lightning_loop(tmp_path: Path, local_executor: Any) -> None:
    """Launched from inside normreg's (daemonic) worker process, beside a one-process run of the same suite."""
    suite = load_suite(DDP, ["variants={ddp: {model: ddp_models:Net, trainer: {devices: 2, strategy: ddp}}, "
                             "one: {model: ddp_models:Net}}", "seeds=[3]"])
    report = run_suites([suite], out=tmp_path / "run", baselines=tmp_path / "b", executor=local_executor(workers=2))
    by = {r.variant: r for r in report.runs}
    assert by["ddp"].ok and by["one"].ok, (by["ddp"].error, by["one"].error)
    assert by["ddp"].metrics == _plain(tmp_path, 3)  # rank 0's values after sync_dist, bit for bit
    assert by["ddp"].metrics != by["one"].metrics  # two processes really trained (half the batches each)
    assert len(by["ddp"].history["train_loss"]) == 2 and by["ddp"].device == "cpu"


def test_a_rank_that_dies_fails_the_run_and_never_hangs_it() -> None:
    start = time.monotonic()
    result = run_one(Job(load_suite(DDP), "dies", 0))
    assert time.monotonic() - start < 300  # rank 0 would otherwise wait on rank 1 for gloo's 30 minutes
    assert result.status == "failed"
    assert result.error.startswith("RankDied: rank 1 of 2 ended abruptly (killed by SIGKILL")


@pytest.mark.slow
def test_ddp_spawn_equals_the_plain_loop(tmp_path: Path) -> None:
    result = run_one(Job(load_suite(DDP), "spawn", 1))
    assert result.ok, result.error
    assert result.metrics == _plain(tmp_path, 1, "ddp_spawn")


@pytest.mark.slow
def test_sync_batchnorm_on_the_cpu_fails_the_run_with_torchs_reason() -> None:
    """torch's SyncBatchNorm refuses CPU modules: the run fails with that message, it does not hang."""
    result = run_one(Job(load_suite(DDP), "sync", 1))
    assert result.status == "failed" and "SyncBatchNorm layers only work with GPU modules" in result.error
