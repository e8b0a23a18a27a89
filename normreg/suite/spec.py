"""The suite schema and its loader: YAML text in, a frozen `Suite` out, or one `SuiteError`.

Validation happens here, once. Every error names the file, the line and the key path, and offers a
did-you-mean for misspelt keys. Nothing here imports torch: loading a suite is cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from normreg.choices import CORRECTIONS, DESIGNS, EXPECTATIONS, GOALS, SPENDING, Goal, choice_problem, describe_value
from normreg.environment import BASELINE_KEYS
from normreg.errors import SuiteError, did_you_mean

# Trainer settings normreg chooses unless the suite says otherwise: no files, no console noise.
TRAINER_DEFAULTS: Mapping[str, Any] = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


@dataclass(frozen=True)
class Target:
    """`package.module:callable` and the keyword arguments it is called with."""

    spec: str
    args: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""  # key path in the suite, e.g. "variants.twin.model", for error messages
    line: int | None = None

    @property
    def module(self) -> str:
        return self.spec.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.spec.partition(":")[2]


@dataclass(frozen=True)
class MetricSpec:
    """A metric the model logs, the direction that is better, and the smallest difference that matters."""

    name: str
    goal: Goal = "max"
    min_effect: float = 0.0

    def worse(self, diff: float) -> bool:
        """True when `diff` (candidate minus reference) points in the bad direction."""
        return diff < 0 if self.goal == "max" else diff > 0


def metrics_to_json(metrics: Sequence[MetricSpec]) -> dict[str, dict[str, Any]]:
    """`{name: {goal, min_effect}}`: how run directories, reports and baselines store a suite's metrics."""
    return {m.name: {"goal": m.goal, "min_effect": m.min_effect} for m in metrics}


def metrics_from_json(raw: Mapping[str, Mapping[str, Any]]) -> tuple[MetricSpec, ...]:
    """The metrics `metrics_to_json` wrote; a missing goal is "max", a missing min_effect 0."""
    return tuple(MetricSpec(name=str(n), goal=s.get("goal", "max"), min_effect=float(s.get("min_effect", 0.0)))
                 for n, s in raw.items())


@dataclass(frozen=True)
class StatsConfig:
    """`stats:` in a suite. `correction` applies across every check of the suite; `spending` only to staged seeds."""

    alpha: float = 0.05
    design: str = "welch"  # "welch": unpaired; "paired": a paired t-test on per-seed differences
    correction: str = "holm"
    spending: str = "pocock"


@dataclass(frozen=True)
class SeedPlan:
    """`seeds: {min, max}`: run `min` seeds per variant, then more in stages until each verdict is decisive."""

    min: int = 3
    max: int = 20

    @property
    def stages(self) -> tuple[int, ...]:
        return stage_sizes(self.min, self.max)


Seeds = int | Literal["auto"] | None
"""`--seeds`: N (seeds 0..N-1 instead of the suite's), "auto" (staged: the suite's own plan, else 3 to 20), or None
(the suite's own seeds)."""


def stage_sizes(lo: int, hi: int) -> tuple[int, ...]:
    """Seeds per variant after each stage: `lo`, then about half as many again each time, ending at `hi`.

    Growing geometrically keeps the number of looks (each of which costs some of the error rate) small, while
    a clear difference still stops at the first or second stage.
    """
    if lo >= hi:
        return (hi,)
    sizes = [lo]
    while sizes[-1] < hi:
        nxt = max(sizes[-1] + 2, math.ceil(sizes[-1] * 1.5))
        if nxt > hi or hi - nxt < 2:
            nxt = hi
        sizes.append(nxt)
    return tuple(sizes)


@dataclass(frozen=True)
class Variant:
    """One implementation: its model, its data (suite default unless overridden), its trainer settings."""

    name: str
    model: Target
    data: Target | None
    trainer: Mapping[str, Any]


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    variants: tuple[Variant, ...]
    reference: str
    metrics: tuple[MetricSpec, ...]
    seeds: tuple[int, ...]  # every seed that may run; with a seed plan, 0..max-1
    stats: StatsConfig
    expect: Mapping[str, Mapping[str, str]]  # variant -> metric -> expected verdict ("*" = every metric)
    digest: str  # sha256 of the validated content: comments and key order do not change it
    seed_plan: SeedPlan | None = None  # staged (sequential) seeding; None: run every seed at once
    baseline_key: str | None = None  # keep one baseline per this key's value (e.g. "device"); None: one baseline

    @property
    def directory(self) -> Path:
        return self.path.parent

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def expected(self, variant: str, metric: str) -> str | None:
        """The declared outcome of `variant`'s pair check on `metric`, if any."""
        e = self.expect.get(variant, {})
        return e.get(metric, e.get("*"))


# ---------------------------------------------------------------------------------------------- loading


class _Doc:
    """Parsed YAML plus the line of every key path, so errors can point at the text."""

    def __init__(self, path: Path, data: Any, lines: dict[tuple[str, ...], int],
                 overridden: set[tuple[str, ...]]) -> None:
        self.path = path
        self.data = data
        self.lines = lines
        self.overridden = overridden

    def error(self, keys: Sequence[str], message: str) -> SuiteError:
        keys = tuple(keys)
        if any(keys[: i + 1] in self.overridden for i in range(len(keys))):
            return SuiteError(f"{message} (set on the command line with --set)", path=str(self.path),
                              key=".".join(keys))
        probe = keys
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return SuiteError(message, path=str(self.path), line=self.lines.get(probe, 1),
                          key=".".join(keys) or None)


def _index_lines(node: yaml.Node, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = str(k.value)
            out[prefix + (key,)] = k.start_mark.line + 1
            _index_lines(v, prefix + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _index_lines(v, prefix + (str(i),), out)


def _parse_yaml(path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError("no such suite file; give the path of a .yaml suite or of a folder of them",
                         path=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"cannot read the file: {e}", path=str(path)) from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise SuiteError(f"invalid YAML: {e.problem or e}", path=str(path), line=line) from None
    except yaml.YAMLError as e:
        raise SuiteError(f"invalid YAML: {e}", path=str(path)) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """`trainer.max_epochs=2` -> (("trainer", "max_epochs"), 2); the value is read as YAML."""
    key, sep, value = text.partition("=")
    keys = tuple(k for k in key.strip().split("."))
    if not sep or not all(keys):
        raise SuiteError(f"expected --set KEY.PATH=VALUE (e.g. trainer.max_epochs=2), got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:
        raise SuiteError(f"the value of --set {key} is not valid YAML: {e}") from None
    return keys, parsed


def _apply_override(doc: _Doc, keys: tuple[str, ...], value: Any) -> None:
    node = doc.data
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k) if isinstance(node, dict) else None
        if nxt is None:
            nxt = {}
            node[k] = nxt
        if not isinstance(nxt, dict):
            raise doc.error(keys[: i + 1], f"--set {'.'.join(keys)} needs a mapping here, "
                                           f"but found {type(nxt).__name__}")
        node = nxt
    node[keys[-1]] = value
    doc.overridden.add(keys)


def load_suite(path: str | Path, overrides: Sequence[str] = ()) -> Suite:
    """Read and validate one suite file; `overrides` are `KEY.PATH=VALUE` strings applied first."""
    path = Path(path)
    data, lines = _parse_yaml(path)
    if data is None:
        data = {}
    doc = _Doc(path, data, lines, set())
    if not isinstance(data, dict):
        raise doc.error((), f"expected a mapping of suite keys at the top level, but found {_kind(data)}")
    for text in overrides:
        keys, value = parse_override(text)
        _apply_override(doc, keys, value)
    return _build_suite(doc)


_kind = describe_value


def _check_keys(doc: _Doc, keys: tuple[str, ...], value: Mapping[str, Any], allowed: Sequence[str],
                required: Sequence[str] = ()) -> None:
    for k in value:
        if not isinstance(k, str):
            raise doc.error(keys, f"keys must be strings, but found {_kind(k)}")
        if k not in allowed:
            hint = did_you_mean(k, allowed)
            raise doc.error(keys + (k,), f"unknown key '{k}'.{hint} Allowed here: {', '.join(allowed)}")
    for k in required:
        if k not in value:
            where = "at the top level" if not keys else f"under '{'.'.join(keys)}'"
            raise doc.error(keys, f"missing required key '{k}' {where}")


def _mapping(doc: _Doc, keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(keys, f"expected a mapping, but found {_kind(value)}")
    return value


def _number(doc: _Doc, keys: tuple[str, ...], value: Any, *, low: float, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise doc.error(keys, f"expected a number, but found {_kind(value)}")
    bad_low = value <= low if low_open else value < low
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high or value != value:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise doc.error(keys, f"expected a number in {lo}{low}, {high if high is not None else 'inf'}{hi}, "
                              f"but found {value}")
    return float(value)


def _target(doc: _Doc, keys: tuple[str, ...], value: Any) -> Target:
    if isinstance(value, str):
        value = {"target": value}
    m = _mapping(doc, keys, value)
    _check_keys(doc, keys, m, ("target", "args"), required=("target",))
    spec = m["target"]
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise doc.error(keys + ("target",), f"expected 'package.module:callable', but found {_kind(spec)}")
    args = m.get("args") or {}
    args = _mapping(doc, keys + ("args",), args)
    for k in args:
        if not isinstance(k, str) or not k.isidentifier():
            raise doc.error(keys + ("args",), f"argument names must be identifiers, but found {k!r}")
    return Target(spec=spec, args=args, key=".".join(keys), line=doc.lines.get(keys + ("target",)))


def _seed_plan(doc: _Doc, keys: tuple[str, ...], value: dict[str, Any]) -> SeedPlan:
    _check_keys(doc, keys, value, ("min", "max"), required=("max",))
    bounds = {}
    for k, default in (("min", 3), ("max", None)):
        x = value.get(k, default)
        if isinstance(x, bool) or not isinstance(x, int):
            raise doc.error(keys + (k,), f"expected a whole number of seeds, but found {_kind(x)}")
        if x < 2:
            raise doc.error(keys + (k,), f"expected at least 2 seeds (a t-test needs two values per side), "
                                         f"but found {x}")
        bounds[k] = x
    if bounds["min"] > bounds["max"]:
        raise doc.error(keys + ("min",), f"min ({bounds['min']}) is above max ({bounds['max']}); "
                                         "lower min or raise max")
    return SeedPlan(min=bounds["min"], max=bounds["max"])


def _seeds(doc: _Doc, keys: tuple[str, ...], value: Any) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise doc.error(keys, f"expected a count of seeds or a list of seeds, but found {_kind(value)}")
    if isinstance(value, int):
        if value < 1:
            raise doc.error(keys, f"expected at least 1 seed, but found {value}")
        return tuple(range(value))
    if isinstance(value, list) and value:
        for i, s in enumerate(value):
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise doc.error(keys + (str(i),), f"expected a non-negative integer seed, but found {_kind(s)}")
        if len(set(value)) != len(value):
            raise doc.error(keys, f"seeds must be distinct, but found {value}")
        return tuple(value)
    raise doc.error(keys, f"expected a count of seeds, a non-empty list of seeds or {{min: 3, max: 20}}, "
                          f"but found {_kind(value)}")


def _trainer(doc: _Doc, keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    m = _mapping(doc, keys, value if value is not None else {})
    for k in m:
        if not isinstance(k, str) or not k.isidentifier():
            raise doc.error(keys, f"trainer options must be identifiers, but found {k!r}")
    return m


def _build_suite(doc: _Doc) -> Suite:
    top = doc.data
    _check_keys(doc, (), top, ("name", "description", "data", "trainer", "seeds", "metrics", "reference",
                               "variants", "stats", "expect", "baseline_key"), required=("metrics", "variants"))
    name = top.get("name", doc.path.stem)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\#") or name.startswith("."):
        raise doc.error(("name",), f"expected a plain name (no '/', '\\' or '#'), but found {_kind(name)}")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise doc.error(("description",), f"expected a string, but found {_kind(description)}")

    data = _target(doc, ("data",), top["data"]) if top.get("data") is not None else None
    trainer = _trainer(doc, ("trainer",), top.get("trainer"))
    raw_seeds = top.get("seeds", 5)
    seed_plan = _seed_plan(doc, ("seeds",), raw_seeds) if isinstance(raw_seeds, dict) else None
    seeds = tuple(range(seed_plan.max)) if seed_plan else _seeds(doc, ("seeds",), raw_seeds)

    raw_metrics = _mapping(doc, ("metrics",), top["metrics"])
    if not raw_metrics:
        raise doc.error(("metrics",), "expected at least one metric, e.g. test_acc: {goal: max, min_effect: 0.01}")
    metrics = []
    for mname, spec in raw_metrics.items():
        keys = ("metrics", str(mname))
        spec = _mapping(doc, keys, spec if spec is not None else {})
        _check_keys(doc, keys, spec, ("goal", "min_effect"))
        goal = spec.get("goal", "max")
        if goal not in GOALS:
            raise doc.error(keys + ("goal",), f"expected 'max' or 'min', but found {_kind(goal)}")
        min_effect = _number(doc, keys + ("min_effect",), spec.get("min_effect", 0.0), low=0.0)
        metrics.append(MetricSpec(name=str(mname), goal=goal, min_effect=min_effect))

    raw_variants = _mapping(doc, ("variants",), top["variants"])
    if not raw_variants:
        raise doc.error(("variants",), "expected at least one variant")
    variants = []
    for vname, spec in raw_variants.items():
        keys = ("variants", str(vname))
        if not isinstance(vname, str) or not vname or any(c in vname for c in "/\\#"):
            raise doc.error(keys, f"variant names must be plain strings without '/', '\\' or '#', got {vname!r}")
        spec = _mapping(doc, keys, spec)
        _check_keys(doc, keys, spec, ("model", "data", "trainer"), required=("model",))
        model = _target(doc, keys + ("model",), spec["model"])
        vdata = _target(doc, keys + ("data",), spec["data"]) if spec.get("data") is not None else data
        vtrainer = {**TRAINER_DEFAULTS, **trainer, **_trainer(doc, keys + ("trainer",), spec.get("trainer"))}
        variants.append(Variant(name=vname, model=model, data=vdata, trainer=vtrainer))
    names = [v.name for v in variants]

    reference = top.get("reference", names[0])
    if reference not in names:
        hint = did_you_mean(str(reference), names)
        raise doc.error(("reference",), f"'{reference}' is not a variant.{hint} Variants: {', '.join(names)}")

    stats_raw = _mapping(doc, ("stats",), top.get("stats") or {})
    _check_keys(doc, ("stats",), stats_raw, ("alpha", "design", "correction", "spending"))
    alpha = _number(doc, ("stats", "alpha"), stats_raw.get("alpha", 0.05), low=0.0, high=0.5,
                    low_open=True, high_open=True)
    choices = {}
    for key, allowed in (("design", DESIGNS), ("correction", CORRECTIONS), ("spending", SPENDING)):
        choice = stats_raw.get(key, allowed[0])
        problem = choice_problem(choice, allowed)
        if problem is not None:
            raise doc.error(("stats", key), problem)
        choices[key] = choice

    expect = _expect(doc, top.get("expect"), names, reference, [m.name for m in metrics])
    baseline_key = top.get("baseline_key", "none")
    if baseline_key not in ("none", *BASELINE_KEYS):
        allowed = ("none", *BASELINE_KEYS)
        raise doc.error(("baseline_key",), f"expected one of {', '.join(allowed)}, but found {_kind(baseline_key)}."
                        f"{did_you_mean(str(baseline_key), allowed)}")
    # where baselines are kept does not change results: left out of the digest
    content = {k: v for k, v in doc.data.items() if k != "baseline_key"}
    canonical = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return Suite(
        name=name, path=doc.path, description=description, variants=tuple(variants), reference=reference,
        metrics=tuple(metrics), seeds=seeds, stats=StatsConfig(alpha=alpha, **choices), expect=expect,
        digest=hashlib.sha256(canonical.encode()).hexdigest(), seed_plan=seed_plan,
        baseline_key=None if baseline_key == "none" else baseline_key,
    )


def _expect(doc: _Doc, raw: Any, variants: list[str], reference: str,
            metrics: list[str]) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    raw = _mapping(doc, ("expect",), raw)
    out: dict[str, dict[str, str]] = {}
    for vname, value in raw.items():
        keys = ("expect", str(vname))
        if vname not in variants:
            hint = did_you_mean(str(vname), variants)
            raise doc.error(keys, f"'{vname}' is not a variant.{hint} Variants: {', '.join(variants)}")
        per_metric = value if isinstance(value, dict) else {"*": value}
        if isinstance(value, dict):
            _check_keys(doc, keys, value, metrics)
        for mname, verdict in per_metric.items():
            vkeys = keys if mname == "*" else keys + (mname,)
            problem = choice_problem(verdict, EXPECTATIONS)
            if problem is not None:
                raise doc.error(vkeys, problem)
            if vname == reference and verdict != "failed":
                raise doc.error(vkeys, f"'{vname}' is the reference: its pair check does not exist; only "
                                       "'failed' can be expected of it")
            if verdict == "failed" and mname != "*":
                raise doc.error(vkeys, "'failed' applies to a whole variant: write "
                                       f"'{vname}: failed', not per metric")
        out[vname] = dict(per_metric)
    return out


def discover(paths: Sequence[str | Path]) -> list[Path]:
    """Expand folders into the suite files they hold (`*.yaml`, `*.yml`, sorted); keep files as given."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not files:
                raise SuiteError("this folder holds no .yaml suite files", path=str(p))
            found.extend(files)
        else:
            found.append(p)
    return found
