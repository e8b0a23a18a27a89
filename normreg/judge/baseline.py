"""Stored baselines: per variant, per metric, the per-seed values of a trusted run, with its environment.

`baselines/<suite>.json`, schema `normreg.baseline/1`. Written only when asked, atomically. With a baseline key
(`--baseline-key device`, or `baseline_key: device` in the suite), one baseline per device class:
`baselines/<suite>@<device-class>.json`; reading falls back to the plain file, and says so, when the keyed one
does not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normreg.environment import BASELINE_KEYS
from normreg.errors import InputError, ResultsError, did_you_mean
from normreg.fileio import check_schema, read_json, write_json_atomic
from normreg.run.results import RunResult, values_from_runs
from normreg.suite.spec import MetricSpec, Suite, metrics_to_json

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
            "metrics": metrics_to_json(self.metrics),
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


def baseline_path(directory: Path, suite: str, keyed: str | None = None) -> Path:
    """`<directory>/<suite>.json`, or `<directory>/<suite>@<keyed>.json` for a keyed baseline."""
    return directory / (f"{suite}@{keyed}.json" if keyed else f"{suite}.json")


def key_value(key: str | None, environment: Mapping[str, Any]) -> str | None:
    """The file-name part of baseline key `key` in this environment (None without a key)."""
    if key is None or key == "none":
        return None
    if key not in BASELINE_KEYS:
        raise InputError(f"unknown baseline key {key!r}; expected one of {', '.join(['none', *BASELINE_KEYS])}."
                         f"{did_you_mean(key, BASELINE_KEYS)}")
    return BASELINE_KEYS[key](environment)


@dataclass(frozen=True)
class BaselineChoice:
    """Which baseline file a suite reads and writes under a baseline key, and what was found there.

    `path` is the file read (None when neither exists); `write_path` the file `--update-baseline` writes; `note`
    says when the keyed file was missing and the plain one was used instead.
    """

    baseline: Baseline | None
    path: Path | None
    write_path: Path
    note: str | None = None
    keyed: bool = False  # a baseline key is in use


def choose_baseline(directory: Path, suite: str, key: str | None = None,
                    environment: Mapping[str, Any] | None = None) -> BaselineChoice:
    """The baseline of `suite` for this environment: the keyed one when it exists, else the plain one."""
    keyed = key_value(key, environment or {})
    plain = baseline_path(directory, suite)
    if keyed is None:
        return BaselineChoice(_read(plain), plain if plain.exists() else None, plain)
    mine = baseline_path(directory, suite, keyed)
    if mine.exists():
        return BaselineChoice(_read(mine), mine, mine, keyed=True)
    if plain.exists():
        return BaselineChoice(_read(plain), plain, mine, f"no baseline for {key} {keyed} ({mine}); compared with "
                              f"the plain baseline {plain} instead; --update-baseline writes {mine.name}", True)
    return BaselineChoice(None, None, mine, f"no baseline for {key} {keyed} ({mine}) and no plain one; "
                          f"--update-baseline writes {mine.name}", True)


def _read(path: Path) -> Baseline | None:
    return Baseline.from_json(path, read_json(path)) if path.exists() else None


def load_baseline(directory: Path, suite: str) -> Baseline | None:
    """The stored plain baseline of `suite`, or None when there is none."""
    return _read(baseline_path(directory, suite))


def make_baseline(suite: Suite, runs: Iterable[RunResult], environment: Mapping[str, Any]) -> Baseline:
    declared = {m.name for m in suite.metrics}
    values = values_from_runs([r for r in runs if r.suite == suite.name], qualify=False)
    return Baseline(suite=suite.name, suite_digest=suite.digest, environment=environment, metrics=suite.metrics,
                    values={v: {m: sv for m, sv in ms.items() if m in declared} for v, ms in values.items()})


def save_baseline(directory: Path, baseline: Baseline, path: Path | None = None) -> Path:
    """Write `baseline` to `path` (default: the plain `<directory>/<suite>.json`), atomically."""
    path = path or baseline_path(directory, baseline.suite)
    write_json_atomic(path, baseline.to_json())
    return path
