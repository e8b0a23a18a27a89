"""Run results: one (variant, seed) run, the tidy table on disk, and result sets read back for comparison.

A run directory holds `run.json` (what was run) and `results.csv`, the tidy table
(suite, variant, seed, metric, value, status, duration_s, error) appended and flushed as each run finishes,
so a crash loses nothing that finished.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normreg.fileio import write_text_atomic

# `resumed_from_epoch` is empty unless the run continued from a checkpoint (the epochs it had finished then).
TIDY_COLUMNS = ("suite", "variant", "seed", "metric", "value", "status", "duration_s", "error",
                "resumed_from_epoch")


@dataclass(frozen=True)
class RunResult:
    """The outcome of training one variant with one seed. `status` is "ok" or "failed"."""

    suite: str
    variant: str
    seed: int
    status: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    error: str | None = None
    history: Mapping[str, Sequence[float]] = field(default_factory=dict)  # per-epoch values, when logged
    device: str = ""  # where it ran: "cpu", "cuda:0 (NVIDIA H200)", "... on host" for a cluster; "fake" for scripted
    traceback: str | None = None  # a failed run's full traceback, when it raised
    # torch's CPU threads in the run: on the CPU, values are bit-identical for a seed only at the same count
    threads: int | None = None
    # the epochs the run had finished when `--resume` continued it from a checkpoint; None: trained from epoch 0
    resumed_from_epoch: int | None = None

    @property
    def failure_name(self) -> str:
        """The file its traceback is kept in, inside the suite's run directory."""
        return f"failures/{self.variant}-seed{self.seed}.txt"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "variant": self.variant, "seed": self.seed, "status": self.status,
                "metrics": dict(self.metrics), "duration_s": round(self.duration_s, 3), "error": self.error,
                "history": {k: list(v) for k, v in self.history.items()}, "device": self.device,
                "traceback": self.traceback, "threads": self.threads,
                **({"resumed_from_epoch": self.resumed_from_epoch} if self.resumed_from_epoch is not None else {})}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunResult:
        return cls(suite=d["suite"], variant=d["variant"], seed=int(d["seed"]), status=d["status"],
                   metrics={k: float(v) for k, v in (d.get("metrics") or {}).items()},
                   duration_s=float(d.get("duration_s") or 0.0), error=d.get("error"),
                   history={k: [float(x) for x in v] for k, v in (d.get("history") or {}).items()},
                   device=str(d.get("device") or ""), traceback=d.get("traceback"),
                   threads=int(d["threads"]) if d.get("threads") is not None else None,
                   resumed_from_epoch=int(d["resumed_from_epoch"]) if d.get("resumed_from_epoch") is not None
                   else None)


def tidy_rows(run: RunResult) -> list[dict[str, Any]]:
    """The tidy-table rows of one run: one per metric, or one row without a metric for a failed run."""
    common = {"suite": run.suite, "variant": run.variant, "seed": run.seed, "status": run.status,
              "duration_s": round(run.duration_s, 3), "error": run.error or "",
              "resumed_from_epoch": "" if run.resumed_from_epoch is None else run.resumed_from_epoch}
    if not run.ok or not run.metrics:
        return [{**common, "metric": "", "value": ""}]
    return [{**common, "metric": m, "value": repr(float(v))} for m, v in sorted(run.metrics.items())]


class RunLog:
    """Appends finished runs to `results.csv` (and the full record to `runs.jsonl`), flushed to disk at once;
    a failed run's traceback goes to `failures/<variant>-seed<N>.txt`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.csv_path = directory / "results.csv"
        self.jsonl_path = directory / "runs.jsonl"
        if not self.csv_path.exists():
            self._append(self.csv_path, ",".join(TIDY_COLUMNS) + "\n")

    @staticmethod
    def _append(path: Path, text: str) -> None:
        with open(path, "a", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def _csv_text(runs: Iterable[RunResult]) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=TIDY_COLUMNS, lineterminator="\n")
        for run in runs:
            for row in tidy_rows(run):
                w.writerow(row)
        return buf.getvalue()

    def add(self, run: RunResult) -> None:
        if run.traceback:
            path = self.directory / run.failure_name
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"{run.suite}/{run.variant} seed {run.seed}: {run.error}\n\n{run.traceback}",
                            encoding="utf-8")
        self._append(self.jsonl_path, json.dumps(run.to_json(), sort_keys=True) + "\n")
        self._append(self.csv_path, self._csv_text([run]))

    def restart(self, kept: Sequence[RunResult]) -> None:
        """Rewrite both tables (atomically) with exactly `kept`: a resumed run drops the failed and torn records,
        so each (variant, seed) appears once however often it was retried."""
        write_text_atomic(self.jsonl_path, "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in kept))
        write_text_atomic(self.csv_path, ",".join(TIDY_COLUMNS) + "\n" + self._csv_text(kept))


def check_run_json(source: str, where: str, run: Any) -> None:
    """Refuse a run record (from a report or runs.jsonl) whose fields have the wrong type, naming file and field.
    Metrics and history may hold null: JSON's stand-in for a non-finite value, which fails its run."""
    from normreg.fileio import check_fields

    fixed = run
    if isinstance(run, dict):
        fixed = dict(run)
        for key in ("metrics", "history"):
            value = run.get(key)
            if isinstance(value, dict):
                fixed[key] = {k: ([0.0 if x is None else x for x in v] if isinstance(v, list)
                                  else 0.0 if v is None else v) for k, v in value.items()}
    check_fields(source, where, fixed, RunResult)


# ------------------------------------------------------------------------------------------ result sets


def values_from_runs(runs: Iterable[RunResult], qualify: bool) -> dict[str, dict[str, dict[int, float]]]:
    out: dict[str, dict[str, dict[int, float]]] = {}
    for r in runs:
        if not r.ok:
            continue
        key = f"{r.suite}/{r.variant}" if qualify else r.variant
        for m, v in r.metrics.items():
            if math.isfinite(v):
                out.setdefault(key, {}).setdefault(m, {})[r.seed] = v
    return out


