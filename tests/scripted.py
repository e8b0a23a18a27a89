"""Scripted reports: the real harness (`run_suites`) with a FakeRunner, nothing trained; volatile fields fixed."""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from normreg.execution.executor import Job
from normreg.execution.fake import FakeRunner
from normreg.execution.results import RunResult
from normreg.pipeline import run_suites

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"
_WHERE = re.compile(r" \(at [^()]*:\d+ in [^()]*\)")  # where an error was raised: moves when code moves
REPORT_SUITES = DATA / "reports"

# Fixed stand-ins for everything that differs between machines and runs (dates, versions, hosts, commits).
FIXED_ENV = {"normreg": "0.1.0", "python": "3.11.7", "torch": "2.13.0", "pytorch_lightning": "2.6.0",
             "platform": "Linux-x86_64", "device": "fake", "git_commit": "0123456789abcdef0123456789abcdef01234567",
             "date": "2025-03-01T03:00:00+00:00"}


class CurvesFakeRunner(FakeRunner):
    """A FakeRunner whose runs also carry per-epoch `history`, as Lightning runs do."""

    def __init__(self, script: Any, curves: Callable[[str, int], Mapping[str, Sequence[float]]]) -> None:
        super().__init__(script)
        self.curves = curves

    def run(self, jobs: Sequence[Job], on_result: Callable[[RunResult], None], on_start: Any = None) -> None:
        def add(r: RunResult) -> None:
            on_result(replace(r, history=dict(self.curves(r.variant, r.seed))) if r.ok else r)

        super().run(jobs, add, on_start)


def _curves(variant: str, seed: int) -> dict[str, list[float]]:
    """Smooth learning curves with a little seed-to-seed noise; the 'twin' variant plateaus lower."""
    floor = 0.5 if variant == "twin" else 0.3
    wobble = [0.01 * math.sin(1.7 * seed + e) for e in range(4)]
    return {"train_loss": [floor + 0.9 * math.exp(-0.8 * e) + w for e, w in enumerate(wobble)],
            "val_acc": [0.95 - floor / 2 - 0.4 * math.exp(-0.9 * e) + w for e, w in enumerate(wobble)]}


PAIRS = {
    "merged": {"acc": [0.912, 0.905, 0.918, 0.909, 0.914], "loss": [0.31, 0.33, 0.29, 0.32, 0.30]},
    "copy": {"acc": [0.910, 0.915, 0.907, 0.913, 0.911], "loss": [0.305, 0.318, 0.30, 0.312, 0.309]},
    "twin": {"acc": [0.842, 0.851, 0.838, 0.846, 0.849], "loss": [0.52, 0.49, 0.55, 0.50, 0.53]},
    "crash": RuntimeError("CUDA error: an illegal memory access was encountered"),
}


def drift_script(night: int, regressed_from: int = 2) -> dict[str, Any]:
    """Night `night` of the drift suite: variant b regresses from night `regressed_from` on; c crashes on seed 2."""
    shift = -0.045 if night >= regressed_from else 0.0
    a = [0.80 + 0.002 * night, 0.81, 0.79, 0.805]
    return {"a": {"acc": a},
            "b": {"acc": [0.802 + shift, 0.795 + shift, 0.808 + shift, 0.80 + shift]},
            "c": {"acc": [0.79, 0.81, ValueError("loss is NaN at epoch 3") if night >= regressed_from else 0.80,
                          0.806 if night >= regressed_from else 0.80]}}


def normalise(data: dict[str, Any], created: str = FIXED_ENV["date"]) -> dict[str, Any]:
    """Replace the volatile fields (times, hosts, versions, temporary paths) with fixed values."""
    data = json.loads(json.dumps(data))
    data["created"] = created
    data["environment"] = {**FIXED_ENV, "date": created}
    for r in data["runs"]:
        r["duration_s"] = 12.5
        if r.get("error"):
            r["error"] = _WHERE.sub("", r["error"])
    for p in data["problems"]:
        p["message"] = _WHERE.sub("", p["message"])
    for s in data["suites"]:
        s["run_dir"] = f"runs/nightly/{s['name']}"
        s["path"] = f"suites/{s['name']}.yaml"
        if s.get("baseline"):
            s["baseline"] = f"baselines/{s['name']}.json"
            s["baseline_environment"] = {**FIXED_ENV, "device": "cuda:0", "date": "2025-02-01T03:00:00+00:00"}
    return data


def make_report(tmp: Path, night: int = 2, regressed_from: int = 2, created: str = FIXED_ENV["date"],
                curves: bool = True) -> dict[str, Any]:
    """Run both scripted suites through the real harness: night 1 stores the drift baseline (made on another
    device), night `night` is judged against it. Returns the normalised report JSON."""
    suites = tmp / "suites"
    if not suites.exists():
        shutil.copytree(REPORT_SUITES, suites)
    baselines = tmp / "baselines"
    if not (baselines / "drift.json").exists():
        run_suites([suites / "drift.yaml"], out=tmp / "runs" / "baseline", baselines=baselines, update_baseline=True,
                   executor=FakeRunner(drift_script(1, regressed_from)))
        stored = json.loads((baselines / "drift.json").read_text())
        stored["environment"]["device"] = "cuda:0"  # the baseline was made on a GPU, tonight's run is not
        (baselines / "drift.json").write_text(json.dumps(stored))
    script = {**PAIRS, **drift_script(night, regressed_from)}
    runner = CurvesFakeRunner(script, _curves) if curves else FakeRunner(script)
    (tmp / "runs").mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f"night{night}-", dir=tmp / "runs"))  # a run directory is never reused
    report = run_suites([suites], out=out, baselines=baselines, executor=runner)
    return normalise(report.to_json(), created)


NIGHT_DATES = ["2025-03-01T03:00:00+00:00", "2025-03-02T03:00:00+00:00", "2025-03-03T03:00:00+00:00",
               "2025-03-04T03:00:00+00:00", "2025-03-05T03:00:00+00:00"]


def flagship(variant: str, seed: int) -> dict[str, float]:
    """merged and same: 0.984 ± 0.005; twin: 0.937 ± 0.018 (the twin-tower gap)."""
    rng = np.random.default_rng([seed, {"merged": 1, "twin": 2, "same": 3}[variant]])
    mean, sd = {"merged": (0.984, 0.005), "twin": (0.937, 0.018), "same": (0.984, 0.005)}[variant]
    return {"acc": float(rng.normal(mean, sd)), "loss": float(rng.normal(1.0, 0.01))}
