"""Result sets read back for comparison: a report, a baseline, a run directory or a tidy CSV, as per-seed values.

`compare` and `plan` take any of these; `PATH#variant` selects one variant.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normreg.choices import ALPHA_HIGH, ALPHA_LOW, is_alpha
from normreg.errors import InputError, ResultsError, did_you_mean
from normreg.execution.results import RunResult, check_run_json, values_from_runs
from normreg.execution.rundir import read_runs
from normreg.fileio import MAX_ABS_VALUE, check_schema, describe_value, read_json, read_text_bounded
from normreg.judge.baseline import Baseline, metric_specs
from normreg.names import name_problem
from normreg.suite.model import MetricSpec

REPORT_SCHEMA = "normreg.report/1"


@dataclass(frozen=True)
class ResultSet:
    """Per-seed values read from a report, run directory, baseline or tidy CSV, ready to be compared.

    `values[variant][metric]` maps seed -> value; `specs` holds the metric directions the file declares.
    """

    source: str
    values: Mapping[str, Mapping[str, Mapping[int, float]]]
    specs: Mapping[str, MetricSpec]
    alpha: float | None = None
    # variant -> metric -> "line 7: seed 3 is nan" for each non-finite value read and left out of `values`
    left_out: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    suite: str | None = None  # the one suite every value comes from, when the file names it
    # variant -> metric -> seed -> per-epoch values, from the runs of a report or run directory
    histories: Mapping[str, Mapping[str, Mapping[int, tuple[float, ...]]]] = field(default_factory=dict)
    curve_specs: Mapping[str, MetricSpec] = field(default_factory=dict)  # the curves the file's suites declare

    def suite_of(self, variant: str) -> str | None:
        """The suite `variant`'s values come from: the prefix of a qualified `suite/variant`, else the file's."""
        prefix, slash, _ = variant.rpartition("/")
        return prefix if slash and self.suite is None else self.suite

    def refuse_non_finite(self, metrics: Iterable[str], variants: Iterable[str] | None = None) -> None:
        """An `InputError` naming the lines when a variant (default: any) had non-finite values of one of
        `metrics`: a comparison, plan or calibration uses every value, so none is dropped without a word."""
        wanted = set(metrics)
        for v in (self.left_out if variants is None else variants):
            for m, bad in self.left_out.get(v, {}).items():
                if m in wanted and bad:
                    raise InputError(f"{self.source.partition('#')[0]}: variant {v}, metric {m}: non-finite values "
                                     f"({'; '.join(bad)}); remove those rows or mark them status failed")

    def select(self, variant: str) -> ResultSet:
        matches = [variant] if variant in self.values else [k for k in self.values if k.split("/")[-1] == variant]
        if len(matches) == 1:
            return ResultSet(self.source + "#" + variant, {variant: self.values[matches[0]]}, self.specs,
                             self.alpha, {variant: self.left_out.get(matches[0], {})}, self.suite_of(matches[0]),
                             histories={variant: self.histories.get(matches[0], {})}, curve_specs=self.curve_specs)

        hint = did_you_mean(variant, list(self.values))
        what = "is ambiguous" if matches else "is not in it"
        raise ResultsError(f"{self.source}: variant '{variant}' {what}.{hint} "
                           f"Available: {', '.join(sorted(self.values)) or 'none'}")


def histories_from_runs(runs: Iterable[RunResult], qualify: bool) -> dict[str, dict[str, dict[int, tuple]]]:
    """variant (suite/variant when `qualify`) -> metric -> seed -> per-epoch values, over the successful runs."""
    out: dict[str, dict[str, dict[int, tuple]]] = {}
    for r in runs:
        if r.ok:
            key = f"{r.suite}/{r.variant}" if qualify else r.variant
            for m, seq in r.history.items():
                out.setdefault(key, {}).setdefault(m, {})[r.seed] = tuple(float(x) for x in seq)
    return out


def _alpha(source: str, where: str, value: Any) -> float | None:
    if not is_alpha(value):
        raise ResultsError(f"{source}: {where}: expected a number in ({ALPHA_LOW:g}, {ALPHA_HIGH:g}), found "
                           f"{describe_value(value)}")
    return value


def _from_report(path: Path, data: Mapping[str, Any]) -> ResultSet:
    check_schema(path, data, REPORT_SCHEMA)
    source = str(path)
    runs_raw, suites = data.get("runs", []), data.get("suites", [])
    for key, value in (("runs", runs_raw), ("suites", suites)):
        if not isinstance(value, list):
            raise ResultsError(f"{source}: {key}: expected a list, found {describe_value(value)}")
    for i, r in enumerate(runs_raw):
        check_run_json(source, f"runs[{i}]", r)
    runs = [RunResult.from_json({**r, "metrics": {k: v for k, v in (r.get("metrics") or {}).items()
                                                  if v is not None}}) for r in runs_raw]
    specs: dict[str, MetricSpec] = {}
    for i, s in enumerate(suites):
        if not isinstance(s, dict):
            raise ResultsError(f"{source}: suites[{i}]: expected an object, found {describe_value(s)}")
        specs.update(metric_specs(source, f"suites[{i}].metrics", s.get("metrics", {})))
        if "alpha" in s:
            _alpha(source, f"suites[{i}].alpha", s["alpha"])
    alpha = suites[0].get("alpha") if len(suites) == 1 else None
    names = {r.suite for r in runs}
    qualify = len(names) > 1
    curves = data.get("curves") if isinstance(data.get("curves"), list) else []
    curve_specs = metric_specs(source, "curves", {c["metric"]: {"goal": c.get("goal", "max"),
                                                                "min_effect": c.get("min_effect", 0.0)}
                                                  for c in curves if isinstance(c, dict) and "metric" in c})
    return ResultSet(str(path), values_from_runs(runs, qualify=qualify), specs, alpha,
                     suite=next(iter(names)) if len(names) == 1 else None,
                     histories=histories_from_runs(runs, qualify), curve_specs=curve_specs)


def _from_baseline(path: Path, data: Mapping[str, Any]) -> ResultSet:
    b = Baseline.from_json(path, data)
    return ResultSet(str(path), {v: {m: dict(sv) for m, sv in ms.items()} for v, ms in b.values.items()},
                     {m.name: m for m in b.metrics}, None, suite=b.suite)


def _from_rundir(path: Path) -> ResultSet:
    meta_path = path / "run.json"
    csv_path = path / "results.csv"
    if not csv_path.exists():
        subdirs = sorted(p for p in path.iterdir() if (p / "results.csv").exists())
        if not subdirs:
            raise ResultsError(f"{path}: not a run directory (no results.csv in it or in its sub-folders)")
        sets = [_from_rundir(p) for p in subdirs]
        values: dict[str, dict[str, dict[int, float]]] = {}
        left_out: dict[str, Mapping[str, tuple[str, ...]]] = {}
        histories: dict[str, Mapping[str, Mapping[int, tuple[float, ...]]]] = {}
        specs: dict[str, MetricSpec] = {}
        curve_specs: dict[str, MetricSpec] = {}
        for p, s in zip(subdirs, sets):
            prefix = f"{p.name}/" if len(sets) > 1 else ""  # several suites: their variants are suite/variant
            values.update({prefix + v: dict(ms) for v, ms in s.values.items()})
            left_out.update({prefix + v: ms for v, ms in s.left_out.items()})
            histories.update({prefix + v: hs for v, hs in s.histories.items()})
            specs.update(s.specs)
            curve_specs.update(s.curve_specs)
        return ResultSet(str(path), values, specs, sets[0].alpha if len(sets) == 1 else None, left_out,
                         sets[0].suite if len(sets) == 1 else None, histories=histories, curve_specs=curve_specs)
    meta = read_json(meta_path) if meta_path.exists() else {}
    if not isinstance(meta, dict):
        raise ResultsError(f"{meta_path}: expected a JSON object, found {describe_value(meta)}")
    rs = _from_csv(csv_path)
    specs = metric_specs(str(meta_path), "metrics", meta.get("metrics", {}))
    curve_specs = metric_specs(str(meta_path), "curves", meta.get("curves") or {})
    alpha = _alpha(str(meta_path), "alpha", meta["alpha"]) if "alpha" in meta else None
    name = meta.get("suite") if isinstance(meta.get("suite"), str) else None
    histories = histories_from_runs(read_runs(path / "runs.jsonl"), qualify=False)
    return ResultSet(str(path), rs.values, specs or rs.specs, alpha, rs.left_out, rs.suite or name,
                     histories=histories, curve_specs=curve_specs)


def _from_csv(path: Path) -> ResultSet:
    """A tidy CSV (variant, seed, metric, value; optional suite and status). Read with the csv module: pandas
    would add half a second to `compare`'s start-up."""
    text = read_text_bounded(path, what="a tidy CSV file")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = set(reader.fieldnames or ())
        missing = {"variant", "seed", "metric", "value"} - columns
        if missing:
            raise ResultsError(f"{path}: expected a tidy CSV with columns variant, seed, metric, value; "
                               f"missing {', '.join(sorted(missing))}")
        rows = list(reader)
    except csv.Error as e:
        raise ResultsError(f"{path}: cannot read as CSV: {e}") from None
    names = {r.get("suite") for r in rows} if "suite" in columns else set()
    qualify = len(names) > 1
    values: dict[str, dict[str, dict[int, float]]] = {}
    left_out: dict[str, dict[str, list[str]]] = {}
    first_line: dict[tuple[str, str, int], int] = {}
    for line, row in enumerate(rows, start=2):
        if (row.get("status") or "ok") != "ok" or not row.get("metric") or not (row.get("value") or "").strip():
            continue
        try:
            seed, value = int(row["seed"]), float(row["value"])
        except (TypeError, ValueError):
            raise ResultsError(f"{path}:{line}: seed must be an integer and value a number, found seed "
                               f"{row.get('seed')!r} and value {row.get('value')!r}") from None
        for column, role in (("suite", "suite"), ("variant", "variant"), ("metric", "metric")):
            if column in row and (column != "suite" or qualify):
                problem = name_problem(row[column], role)
                if problem:
                    raise ResultsError(f"{path}:{line}: {column} {str(row[column])[:80]!r}: {problem}")
        key = f"{row['suite']}/{row['variant']}" if qualify else str(row["variant"])
        metric = str(row["metric"])
        if (key, metric, seed) in first_line:
            raise ResultsError(f"{path}:{line}: variant {key}, seed {seed}, metric {metric} already has a value "
                               f"on line {first_line[(key, metric, seed)]}; a tidy table holds one value per "
                               "(variant, seed, metric): remove one of them")
        first_line[(key, metric, seed)] = line
        if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
            left_out.setdefault(key, {}).setdefault(metric, []).append(f"line {line}: seed {seed} is {value:g}")
            continue
        values.setdefault(key, {}).setdefault(metric, {})[seed] = value
    only = next(iter(names)) if len(names) == 1 else None
    return ResultSet(str(path), values, {}, None,
                     {k: {m: tuple(x) for m, x in ms.items()} for k, ms in left_out.items()}, only or None)


def load_result_set(spec: str, *, check_report: Callable[[Any, str], None] | None = None) -> ResultSet:
    """Read `PATH` or `PATH#variant`: a report JSON, a baseline JSON, a run directory or a tidy CSV.
    `check_report(data, source)` validates a report in full as it is read (the report layer's check; the judge
    layer reads only its runs and suites)."""
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
        data = read_json(path)
        schema = data.get("schema") if isinstance(data, dict) else None
        if isinstance(schema, str) and schema.startswith("normreg.baseline/"):
            rs = _from_baseline(path, data)
        elif isinstance(schema, str) and schema.startswith("normreg.report/"):
            if check_report is not None:
                check_report(data, str(path))
            rs = _from_report(path, data)
        else:
            raise ResultsError(f"{path}: not a normreg report or baseline (its 'schema' field is "
                               f"{schema!r}; expected 'normreg.report/1' or 'normreg.baseline/1')")
    if not rs.values:
        raise ResultsError(f"{path}: holds no successful run results to compare")
    return rs.select(variant) if variant else rs
