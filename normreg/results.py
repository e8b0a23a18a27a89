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

from normreg.errors import ResultsError, did_you_mean
from normreg.suite import MetricSpec

TIDY_COLUMNS = ("suite", "variant", "seed", "metric", "value", "status", "duration_s", "error")


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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "variant": self.variant, "seed": self.seed, "status": self.status,
                "metrics": dict(self.metrics), "duration_s": round(self.duration_s, 3), "error": self.error,
                "history": {k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunResult:
        return cls(suite=d["suite"], variant=d["variant"], seed=int(d["seed"]), status=d["status"],
                   metrics={k: float(v) for k, v in (d.get("metrics") or {}).items()},
                   duration_s=float(d.get("duration_s") or 0.0), error=d.get("error"),
                   history={k: [float(x) for x in v] for k, v in (d.get("history") or {}).items()})


def tidy_rows(run: RunResult) -> list[dict[str, Any]]:
    """The tidy-table rows of one run: one per metric, or one row without a metric for a failed run."""
    common = {"suite": run.suite, "variant": run.variant, "seed": run.seed, "status": run.status,
              "duration_s": round(run.duration_s, 3), "error": run.error or ""}
    if not run.ok or not run.metrics:
        return [{**common, "metric": "", "value": ""}]
    return [{**common, "metric": m, "value": repr(float(v))} for m, v in sorted(run.metrics.items())]


class RunLog:
    """Appends finished runs to `results.csv` (and the full record to `runs.jsonl`), flushed to disk at once."""

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

    def add(self, run: RunResult) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=TIDY_COLUMNS, lineterminator="\n")
        for row in tidy_rows(run):
            w.writerow(row)
        self._append(self.jsonl_path, json.dumps(run.to_json(), sort_keys=True) + "\n")
        self._append(self.csv_path, buf.getvalue())


# ------------------------------------------------------------------------------------------ result sets


@dataclass(frozen=True)
class ResultSet:
    """Per-seed values read from a report, run directory, baseline or tidy CSV, ready to be compared.

    `values[variant][metric]` maps seed -> value; `specs` holds the metric directions the file declares.
    """

    source: str
    values: Mapping[str, Mapping[str, Mapping[int, float]]]
    specs: Mapping[str, MetricSpec]
    alpha: float | None = None

    def select(self, variant: str) -> ResultSet:
        if variant in self.values:
            return ResultSet(self.source + "#" + variant, {variant: self.values[variant]}, self.specs, self.alpha)
        matches = [k for k in self.values if k.split("/")[-1] == variant]
        if len(matches) == 1:
            return ResultSet(self.source + "#" + variant, {variant: self.values[matches[0]]}, self.specs,
                             self.alpha)

        hint = did_you_mean(variant, list(self.values))
        what = "is ambiguous" if matches else "is not in it"
        raise ResultsError(f"{self.source}: variant '{variant}' {what}.{hint} "
                           f"Available: {', '.join(sorted(self.values)) or 'none'}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None


def _specs_from(raw: Mapping[str, Any]) -> dict[str, MetricSpec]:
    return {name: MetricSpec(name=name, goal=s.get("goal", "max"), min_effect=float(s.get("min_effect", 0.0)))
            for name, s in raw.items()}


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


def _from_report(path: Path, data: Mapping[str, Any]) -> ResultSet:
    from normreg.report import check_schema

    check_schema(path, data, "normreg.report/1")
    runs = [RunResult.from_json(r) for r in data.get("runs", [])]
    suites = data.get("suites", [])
    specs: dict[str, MetricSpec] = {}
    for s in suites:
        specs.update(_specs_from(s.get("metrics", {})))
    alpha = suites[0].get("alpha") if len(suites) == 1 else None
    return ResultSet(str(path), values_from_runs(runs, qualify=len({r.suite for r in runs}) > 1), specs, alpha)


def _from_baseline(path: Path, data: Mapping[str, Any]) -> ResultSet:
    from normreg.baseline import Baseline

    b = Baseline.from_json(path, data)
    return ResultSet(str(path), {v: {m: dict(sv) for m, sv in ms.items()} for v, ms in b.values.items()},
                     {m.name: m for m in b.metrics}, None)


def _from_rundir(path: Path) -> ResultSet:
    meta_path = path / "run.json"
    csv_path = path / "results.csv"
    if not csv_path.exists():
        subdirs = sorted(p for p in path.iterdir() if (p / "results.csv").exists())
        if not subdirs:
            raise ResultsError(f"{path}: not a run directory (no results.csv in it or in its sub-folders)")
        sets = [_from_rundir(p) for p in subdirs]
        values: dict[str, dict[str, dict[int, float]]] = {}
        specs: dict[str, MetricSpec] = {}
        for p, s in zip(subdirs, sets):
            for v, ms in s.values.items():
                values[f"{p.name}/{v}" if len(sets) > 1 else v] = dict(ms)
            specs.update(s.specs)
        return ResultSet(str(path), values, specs, sets[0].alpha if len(sets) == 1 else None)
    meta = _read_json(meta_path) if meta_path.exists() else {}
    rs = _from_csv(csv_path)
    return ResultSet(str(path), rs.values, _specs_from(meta.get("metrics", {})) or rs.specs, meta.get("alpha"))


def _from_csv(path: Path) -> ResultSet:
    """A tidy CSV (variant, seed, metric, value; optional suite and status). Read with the csv module: pandas
    would add half a second to `compare`'s start-up."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            columns = set(reader.fieldnames or ())
            missing = {"variant", "seed", "metric", "value"} - columns
            if missing:
                raise ResultsError(f"{path}: expected a tidy CSV with columns variant, seed, metric, value; "
                                   f"missing {', '.join(sorted(missing))}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ResultsError(f"{path}: cannot read as CSV: {e}") from None
    qualify = "suite" in columns and len({r.get("suite") for r in rows}) > 1
    values: dict[str, dict[str, dict[int, float]]] = {}
    for line, row in enumerate(rows, start=2):
        if (row.get("status") or "ok") != "ok" or not row.get("metric") or not (row.get("value") or "").strip():
            continue
        try:
            seed, value = int(row["seed"]), float(row["value"])
        except (TypeError, ValueError):
            raise ResultsError(f"{path}:{line}: seed must be an integer and value a number, found seed "
                               f"{row.get('seed')!r} and value {row.get('value')!r}") from None
        key = f"{row['suite']}/{row['variant']}" if qualify else str(row["variant"])
        values.setdefault(key, {}).setdefault(str(row["metric"]), {})[seed] = value
    return ResultSet(str(path), values, {}, None)


def load_result_set(spec: str) -> ResultSet:
    """Read `PATH` or `PATH#variant`: a report JSON, a baseline JSON, a run directory or a tidy CSV."""
    path_text, _, variant = spec.partition("#")
    path = Path(path_text)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory (expected a report, a baseline, a run "
                           "directory or a tidy CSV, optionally followed by #variant)")
    if path.is_dir():
        rs = _from_rundir(path)
    elif path.suffix.lower() == ".csv":
        rs = _from_csv(path)
    else:
        data = _read_json(path)
        schema = data.get("schema") if isinstance(data, dict) else None
        if isinstance(schema, str) and schema.startswith("normreg.baseline/"):
            rs = _from_baseline(path, data)
        elif isinstance(schema, str) and schema.startswith("normreg.report/"):
            rs = _from_report(path, data)
        else:
            raise ResultsError(f"{path}: not a normreg report or baseline (its 'schema' field is "
                               f"{schema!r}; expected 'normreg.report/1' or 'normreg.baseline/1')")
    if not rs.values:
        raise ResultsError(f"{path}: holds no successful run results to compare")
    return rs.select(variant) if variant else rs
