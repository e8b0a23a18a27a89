"""Stored baselines: per variant, per metric, the per-seed values of a trusted run, with its environment.

`baselines/<suite>.json`, schema `normreg.baseline/1`. Written only when asked, atomically. With a baseline key
(`--baseline-key device`, or `baseline_key: device` in the suite), one baseline per device class:
`baselines/<suite>@<device-class>.json`; reading falls back to the plain file, and says so, when the keyed one
does not exist yet.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normreg.choices import GOALS
from normreg.environment import BASELINE_KEYS
from normreg.errors import InputError, ResultsError, did_you_mean, printable
from normreg.execution.results import RunResult, values_from_runs
from normreg.fileio import MAX_ABS_VALUE, check_schema, describe_value, finite_number, read_json, write_json_atomic
from normreg.names import name_problem
from normreg.suite.diff import content_changes
from normreg.suite.model import MAX_SEED_VALUE, MetricSpec, Suite, metrics_to_json

SCHEMA = "normreg.baseline/1"


@dataclass(frozen=True)
class Baseline:
    suite: str
    suite_digest: str
    environment: Mapping[str, Any]
    metrics: tuple[MetricSpec, ...]
    values: Mapping[str, Mapping[str, Mapping[int, float]]]  # variant -> metric -> seed -> value
    # the suite's content when the baseline was made (`Suite.content`); None in baselines made before it was kept
    suite_content: Mapping[str, Any] | None = None

    def changes(self, suite: Suite) -> tuple[str, ...]:
        """How `suite` differs from the suite this baseline was made of: the key paths that changed; () when it
        is the same suite."""
        if not self.suite_digest or self.suite_digest == suite.digest:
            return ()
        if self.suite_content is None:
            return (f"digest {self.suite_digest[:12]} -> {suite.digest[:12]}; which keys changed is not known, as "
                    "this baseline was stored before normreg kept the suite's content",)
        return tuple(content_changes(self.suite_content, suite.content)) or \
            (f"digest {self.suite_digest[:12]} -> {suite.digest[:12]}",)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "suite": self.suite,
            "suite_digest": self.suite_digest,
            **({"suite_content": dict(self.suite_content)} if self.suite_content is not None else {}),
            "environment": dict(self.environment),
            "metrics": metrics_to_json(self.metrics),
            "variants": {
                v: {m: {"seeds": sorted(sv), "values": [sv[s] for s in sorted(sv)]} for m, sv in ms.items()}
                for v, ms in self.values.items()
            },
        }

    @classmethod
    def from_json(cls, path: Path, data: Any) -> Baseline:
        """Validate every field (types, seeds, finite values) and build the baseline; errors name the field."""
        check_schema(path, data, SCHEMA)

        def bad(key: str, message: str) -> ResultsError:
            return ResultsError(f"{path}: {key}: {message}; regenerate it with 'normreg run SUITE --update-baseline'")

        for key, kind, what in (("suite", str, "a string"), ("metrics", dict, "an object"),
                                ("variants", dict, "an object")):
            if not isinstance(data.get(key), kind):
                raise bad(key, f"expected {what}, found {describe_value(data.get(key))}")
        if not isinstance(data.get("suite_digest", ""), str) or not isinstance(data.get("environment", {}), dict):
            raise bad("suite_digest/environment", "expected a string and an object")
        if not isinstance(data.get("suite_content", {}), dict):
            raise bad("suite_content", f"expected an object, found {describe_value(data.get('suite_content'))}")
        metrics = tuple(metric_specs(str(path), "metrics", data["metrics"]).values())
        values: dict[str, dict[str, dict[int, float]]] = {}
        problem = name_problem(data["suite"], "suite")
        if problem:
            raise bad("suite", problem)
        for v, ms in data["variants"].items():
            problem = name_problem(v, "variant")
            if problem:
                raise bad(f"variants.{printable(v)}", problem)
            if not isinstance(ms, dict):
                raise bad(f"variants.{v}", f"expected an object of metrics, found {describe_value(ms)}")
            for m, rec in ms.items():
                key = f"variants.{v}.{m}"
                if not isinstance(rec, dict) or not isinstance(rec.get("seeds"), list) \
                        or not isinstance(rec.get("values"), list):
                    raise bad(key, "expected {seeds: [...], values: [...]}")
                seeds, vals = rec["seeds"], rec["values"]
                if len(seeds) != len(vals):
                    raise bad(key, f"{len(seeds)} seeds but {len(vals)} values")
                for i, s in enumerate(seeds):
                    if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED_VALUE:
                        raise bad(f"{key}.seeds[{i}]", f"expected a whole-number seed from 0 to {MAX_SEED_VALUE}, "
                                                       f"found {describe_value(s)}")
                if len(set(seeds)) != len(seeds):
                    twice = sorted({s for s in seeds if seeds.count(s) > 1})
                    raise bad(f"{key}.seeds", f"seed {twice[0]} appears more than once")
                for i, x in enumerate(vals):
                    if not finite_number(x):
                        raise bad(f"{key}.values[{i}]", f"expected a finite number within ±{MAX_ABS_VALUE:g}, "
                                                        f"found {describe_value(x)}")
                values.setdefault(v, {})[m] = {s: float(x) for s, x in zip(seeds, vals)}
        return cls(suite=data["suite"], suite_digest=data.get("suite_digest", ""),
                   environment=data.get("environment", {}), metrics=metrics, values=values,
                   suite_content=data.get("suite_content"))


def metric_specs(source: str, where: str, raw: Any) -> dict[str, MetricSpec]:
    """`{name: {goal, min_effect}}` from a report, baseline or run.json, checked: errors name file and field."""
    if not isinstance(raw, dict):
        raise ResultsError(f"{source}: {where}: expected an object of metrics, found {describe_value(raw)}")
    specs = {}
    for name, spec in raw.items():
        problem = name_problem(name, "metric")
        if problem:
            raise ResultsError(f"{source}: {where}.{printable(name)}: {problem}")
        if not isinstance(spec, dict):
            raise ResultsError(f"{source}: {where}.{name}: expected {{goal, min_effect}}, found "
                               f"{describe_value(spec)}")
        goal, min_effect = spec.get("goal", "max"), spec.get("min_effect", 0.0)
        if goal not in GOALS:
            raise ResultsError(f"{source}: {where}.{name}.goal: expected 'max' or 'min', found {describe_value(goal)}")
        if not finite_number(min_effect) or min_effect < 0:
            raise ResultsError(f"{source}: {where}.{name}.min_effect: expected a finite number >= 0, found "
                               f"{describe_value(min_effect)}")
        specs[name] = MetricSpec(name=name, goal=goal, min_effect=float(min_effect))
    return specs


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
        return BaselineChoice(_read(plain, suite), plain if _present(plain) else None, plain)
    mine = baseline_path(directory, suite, keyed)
    if _present(mine):
        return BaselineChoice(_read(mine, suite), mine, mine, keyed=True)
    if _present(plain):
        return BaselineChoice(_read(plain, suite), plain, mine, f"no baseline for {key} {keyed} ({mine}); compared "
                              f"with the plain baseline {plain} instead; --update-baseline writes {mine.name}", True)
    return BaselineChoice(None, None, mine, f"no baseline for {key} {keyed} ({mine}) and no plain one; "
                          f"--update-baseline writes {mine.name}", True)


def _present(path: Path) -> bool:
    """Whether anything is at `path`: a symlink loop, a dangling link or a folder is there, and is refused when
    read, never taken for "no baseline" (which would let the run pass unchecked)."""
    return os.path.lexists(path)


def _read(path: Path, suite: str) -> Baseline | None:
    """The baseline stored at `path`, None when there is none; refused when it is another suite's."""
    if not _present(path):
        return None
    baseline = Baseline.from_json(path, read_json(path, what="a baseline file"))
    if baseline.suite != suite:
        raise ResultsError(f"{path}: suite: this baseline is of suite '{baseline.suite}', not '{suite}'; "
                           "move it or regenerate it with 'normreg run SUITE --update-baseline'")
    return baseline


def make_baseline(suite: Suite, runs: Iterable[RunResult], environment: Mapping[str, Any]) -> Baseline:
    declared = {m.name for m in suite.metrics}
    values = values_from_runs([r for r in runs if r.suite == suite.name], qualify=False)
    return Baseline(suite=suite.name, suite_digest=suite.digest, environment=environment, metrics=suite.metrics,
                    suite_content=suite.content,
                    values={v: {m: sv for m, sv in ms.items() if m in declared} for v, ms in values.items()})


def save_baseline(directory: Path, baseline: Baseline, path: Path | None = None) -> Path:
    """Write `baseline` to `path` (default: the plain `<directory>/<suite>.json`), atomically."""
    path = path or baseline_path(directory, baseline.suite)
    write_json_atomic(path, baseline.to_json())
    return path
