"""Runs across several processes: a variant whose `trainer` asks for `devices: N` (N > 1) with a DDP strategy.

Lightning's own launchers cannot be used inside normreg: its default DDP launcher re-runs the current command
line (normreg's, not a training script) and its spawn launcher starts processes from a daemonic worker, which
multiprocessing forbids. So normreg launches the N processes itself, the way a cluster scheduler does: each rank
is a fresh `python -m normreg.execution.ddp_rank` with MASTER_ADDR, MASTER_PORT (a free port), WORLD_SIZE, RANK,
LOCAL_RANK and NODE_RANK set, which Lightning takes as "processes created externally" and joins as they are. Every rank
runs the same `run_one` (same seeding, same Trainer options) and writes its RunResult to a file; the run's
result is rank 0's, whose metrics are the values every rank agrees on after `sync_dist`.

The spawn-family strategies (`ddp_spawn`, `ddp_fork`, `ddp_notebook`) differ from `ddp` only in how the
processes start, not in what they compute, so their ranks run with the matching popen strategy.

A rank that dies or fails ends the run: the others are killed at once (they would wait on the dead rank in the
next collective until the backend's half-hour timeout), and the run is failed with the rank's own message. The
ranks die with the process that launched them (parent-death signal), so a cancelled worker leaves no rank behind.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normreg.execution.failure import describe_exit
from normreg.suite.model import world_size

if TYPE_CHECKING:
    from normreg.execution.executor import Job
    from normreg.execution.results import RunResult

__all__ = ["RANK_ENV", "launch", "popen_strategy"]

RANK_ENV = "NORMREG_DDP_RANK"  # set in a rank: run_one trains here instead of launching again
_POLL_S = 0.1
_GRACE_S = 60.0  # how long the other ranks may take to finish after rank 0 has its result


def popen_strategy(strategy: Any) -> Any:
    """The strategy a rank runs: spawn-family DDP names become their popen twin (`ddp_spawn` -> `ddp`,
    `ddp_spawn_find_unused_parameters_true` -> `ddp_find_unused_parameters_true`); `auto` becomes `ddp`."""
    if strategy is None or strategy == "auto":
        return "ddp"
    if isinstance(strategy, str) and strategy.startswith("ddp"):
        for start in ("_spawn", "_fork", "_notebook"):
            strategy = strategy.replace(start, "")
    return strategy


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(job: Job, accelerator: str, *, gpus: Sequence[str] | None = None) -> RunResult:
    """Train `job` in `world_size` rank processes and return rank 0's result (a failed one when any rank
    failed or died). `gpus`: the GPUs the ranks see, as CUDA_VISIBLE_DEVICES names them (None: this process's).
    A run past its suite's `run_timeout` is ended from outside, as any run is (the executor stops the worker, or
    `time_limit` raises `RunTimedOut` here; the ranks are killed either way) and named by `worker.timed_out`."""
    import torch

    from normreg.execution.results import RunResult

    variant = job.suite.variant(job.variant)
    n = world_size(variant.trainer)
    start = time.perf_counter()
    threads = max(1, torch.get_num_threads() // n)
    with tempfile.TemporaryDirectory(prefix="normreg-ddp-") as tmp:
        spec = Path(tmp) / "job.pkl"
        spec.write_bytes(pickle.dumps((job, accelerator)))
        port = _free_port()
        ranks = []
        for rank in range(n):
            env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(n),
                   "RANK": str(rank), "LOCAL_RANK": str(rank), "NODE_RANK": "0", RANK_ENV: str(rank),
                   "OMP_NUM_THREADS": str(threads)}
            if gpus is not None:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
            command = [sys.executable, "-m", "normreg.execution.ddp_rank", tmp, str(rank), str(threads)]
            ranks.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL))
        failure = _wait(ranks, Path(tmp))
        result = _read(Path(tmp), 0)
    elapsed = time.perf_counter() - start
    if failure is not None:
        device = result.device if result is not None else ""
        return RunResult(job.suite.name, job.variant, job.seed, "failed", {}, elapsed, failure[0],
                         result.history if result is not None else {}, device, failure[1], threads)
    assert result is not None
    return replace(result, duration_s=elapsed)


def _read(tmp: Path, rank: int) -> RunResult | None:
    path = tmp / f"rank{rank}.pkl"
    try:
        return pickle.loads(path.read_bytes())  # type: ignore[no-any-return]
    except (OSError, EOFError, pickle.UnpicklingError):
        return None


def _wait(ranks: list[subprocess.Popen[bytes]], tmp: Path) -> tuple[str, str | None] | None:
    """Wait for every rank; on the first rank that fails or dies, kill the others and say why (message, trace)."""
    n = len(ranks)
    done_at: float | None = None
    try:
        while True:
            for rank, p in enumerate(ranks):
                code = p.poll()
                if code is None:
                    continue
                result = _read(tmp, rank)
                if code != 0 or result is None:
                    return (f"RankDied: rank {rank} of {n} ended abruptly ({describe_exit(code)}: killed, out of "
                            "memory, or a crash in native code); the other ranks were stopped", None)
                if not result.ok:
                    return (f"rank {rank} of {n}: {result.error}", result.traceback)
            if all(p.poll() is not None for p in ranks):
                return None
            now = time.perf_counter()
            if ranks[0].poll() is not None:
                done_at = done_at or now
                if now - done_at > _GRACE_S:
                    late = [r for r, p in enumerate(ranks) if p.poll() is None]
                    return (f"RankTimeout: rank(s) {', '.join(map(str, late))} of {n} still running {_GRACE_S:.0f} "
                            "s after rank 0 finished; they were stopped", None)
            time.sleep(_POLL_S)
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
        for p in ranks:
            p.wait()
