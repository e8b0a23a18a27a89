"""Stored baselines: per variant, per metric, the per-seed values of a trusted run, with its environment.

`baselines/<suite>.json`, schema `normreg.baseline/1`. Written only when asked, atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normreg.errors import ResultsError
from normreg.fileio import check_schema, read_json, write_json_atomic
from normreg.run.results import RunResult, values_from_runs
from normreg.suite.spec import MetricSpec, Suite

SCHEMA = "normreg.baseline/1"


@dataclass(frozen=True)
class Baseline:
    suite: str
    suite_digest: str
    environment: Mapping[str, Any]
    metrics: tuple[MetricSpec, ...]
    values: Mapping[str, Mapping[str, Mapping[int, float]]]  # variant -> metric -> seed -> value

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "suite": self.suite,
            "suite_digest": self.suite_digest,
            "environment": dict(self.environment),
            "metrics": {m.name: {"goal": m.goal, "min_effect": m.min_effect} for m in self.metrics},
            "variants": {
                v: {m: {"seeds": sorted(sv), "values": [sv[s] for s in sorted(sv)]} for m, sv in ms.items()}
                for v, ms in self.values.items()
            },
        }

    @classmethod
    def from_json(cls, path: Path, data: Any) -> Baseline:
        check_schema(path, data, SCHEMA)
        try:
            values: dict[str, dict[str, dict[int, float]]] = {}
            for v, ms in data["variants"].items():
                for m, rec in ms.items():
                    seeds, vals = rec["seeds"], rec["values"]
                    if len(seeds) != len(vals):
                        raise ValueError(f"variants.{v}.{m}: {len(seeds)} seeds but {len(vals)} values")
                    values.setdefault(v, {})[m] = {int(s): float(x) for s, x in zip(seeds, vals)}
            metrics = tuple(MetricSpec(name=n, goal=s["goal"], min_effect=float(s["min_effect"]))
                            for n, s in data["metrics"].items())
            return cls(suite=data["suite"], suite_digest=data.get("suite_digest", ""),
                       environment=data.get("environment", {}), metrics=metrics, values=values)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ResultsError(f"{path}: malformed baseline ({type(e).__name__}: {e}); regenerate it with "
                               "'normreg run SUITE --update-baseline'") from None


def baseline_path(directory: Path, suite: str) -> Path:
    return directory / f"{suite}.json"


def load_baseline(directory: Path, suite: str) -> Baseline | None:
    """The stored baseline of `suite`, or None when there is none."""
    path = baseline_path(directory, suite)
    if not path.exists():
        return None
    return Baseline.from_json(path, read_json(path))


def make_baseline(suite: Suite, runs: Iterable[RunResult], environment: Mapping[str, Any]) -> Baseline:
    declared = {m.name for m in suite.metrics}
    values = values_from_runs([r for r in runs if r.suite == suite.name], qualify=False)
    return Baseline(suite=suite.name, suite_digest=suite.digest, environment=environment, metrics=suite.metrics,
                    values={v: {m: sv for m, sv in ms.items() if m in declared} for v, ms in values.items()})


def save_baseline(directory: Path, baseline: Baseline) -> Path:
    path = baseline_path(directory, baseline.suite)
    write_json_atomic(path, baseline.to_json())
    return path
