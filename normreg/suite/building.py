"""Building a `Suite` from a parsed suite file: every key checked, defaults filled in, `--set` overrides applied.

Validation happens here, once. Every error names the file, the line and the key path, and offers a
did-you-mean for misspelt keys. Nothing here imports torch: loading a suite is cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from normreg.choices import ALPHA_HIGH, ALPHA_LOW, CORRECTIONS, DESIGNS, EXPECTATIONS, GOALS, SPENDING, choice_problem
from normreg.environment import BASELINE_KEYS
from normreg.errors import SuiteError, did_you_mean
from normreg.fileio import describe_value
from normreg.names import name_problem
from normreg.suite.loading import Document, load_bounded
from normreg.suite.model import (
    MAX_SEED_VALUE,
    MAX_SEEDS,
    CheckpointConfig,
    CurveConfig,
    MetricSpec,
    SeedPlan,
    StatsConfig,
    Suite,
    Target,
    Variant,
    world_size,
)

# Trainer settings normreg chooses unless the suite says otherwise: no files, no console noise.
TRAINER_DEFAULTS: Mapping[str, Any] = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


# Every top-level key a suite file may hold (the suite reference's table lists exactly these:
# tests/docs/test_readme.py).
SUITE_KEYS = ("name", "description", "data", "trainer", "seeds", "metrics", "reference", "variants", "stats",
              "expect", "baseline_key", "run_timeout", "curves", "checkpoint")


def build_suite(doc: Document, overrides: Sequence[str] = ()) -> Suite:
    """The suite `doc` holds, after applying `overrides` (`KEY.PATH=VALUE` strings) to it."""
    if not isinstance(doc.data, dict):
        raise doc.error((), f"expected a mapping of suite keys at the top level, but found {_kind(doc.data)}")
    for text in overrides:
        keys, value = parse_override(text)
        _apply_override(doc, keys, value)
    return _build_suite(doc)


def _build_suite(doc: Document) -> Suite:
    top = doc.data
    _check_keys(doc, (), top, SUITE_KEYS, required=("metrics", "variants"))
    name = top.get("name", doc.path.stem)
    problem = name_problem(name, "suite")
    if problem:
        raise doc.error(("name",), problem)
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
        metrics.append(_metric_spec(doc, ("metrics", str(mname)), mname, spec))

    raw_variants = _mapping(doc, ("variants",), top["variants"])
    if not raw_variants:
        raise doc.error(("variants",), "expected at least one variant")
    variants = []
    for vname, spec in raw_variants.items():
        keys = ("variants", str(vname))
        problem = name_problem(vname, "variant")
        if problem:
            raise doc.error(keys, problem)
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
    alpha = _number(doc, ("stats", "alpha"), stats_raw.get("alpha", 0.05), low=ALPHA_LOW, high=ALPHA_HIGH,
                    low_open=True, high_open=True)
    choices = {}
    for key, allowed in (("design", DESIGNS), ("correction", CORRECTIONS), ("spending", SPENDING)):
        choice = stats_raw.get(key, allowed[0])
        problem = choice_problem(choice, allowed)
        if problem is not None:
            raise doc.error(("stats", key), problem)
        choices[key] = choice

    expect = _expect(doc, top.get("expect"), names, reference, [m.name for m in metrics])
    curves = _curves(doc, top.get("curves"), {m.name: m for m in metrics})
    baseline_key = top.get("baseline_key", "none")
    if baseline_key not in ("none", *BASELINE_KEYS):
        allowed = ("none", *BASELINE_KEYS)
        raise doc.error(("baseline_key",), f"expected one of {', '.join(allowed)}, but found {_kind(baseline_key)}."
                        f"{did_you_mean(str(baseline_key), allowed)}")
    run_timeout = None
    if top.get("run_timeout") is not None:
        try:
            run_timeout = parse_duration(top["run_timeout"])
        except ValueError as e:
            raise doc.error(("run_timeout",), str(e)) from None
    # Where baselines are kept, how long a run may take and its checkpoints do not change results, and curve checks
    # add checks without changing a run or any other check: all four are left out of the digest, so declaring curves
    # neither marks the suite changed against its baseline nor sets its reports apart from earlier nights.
    content = {k: v for k, v in doc.data.items() if k not in ("baseline_key", "run_timeout", "curves", "checkpoint")}
    canonical = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return Suite(
        name=name, path=doc.path, description=description, variants=tuple(variants), reference=reference,
        metrics=tuple(metrics), seeds=seeds, stats=StatsConfig(alpha=alpha, **choices), expect=expect,
        digest=hashlib.sha256(canonical.encode()).hexdigest(), seed_plan=seed_plan, content=json.loads(canonical),
        curves=curves, checkpoint=_checkpoint(doc, top.get("checkpoint"), variants),
        baseline_key=None if baseline_key == "none" else baseline_key, run_timeout=run_timeout,
    )


def _checkpoint(doc: Document, raw: Any, variants: Sequence[Variant]) -> CheckpointConfig | None:
    """`checkpoint: {every_n_epochs: 5, keep: false}`. Refused for a variant that trains in several processes:
    each rank draws its own random numbers, and a checkpoint holds rank 0's alone."""
    if raw is None:
        return None
    keys: tuple[str, ...] = ("checkpoint",)
    raw = _mapping(doc, keys, raw)
    _check_keys(doc, keys, raw, ("every_n_epochs", "keep"), required=("every_n_epochs",))
    every = raw["every_n_epochs"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise doc.error(keys + ("every_n_epochs",), f"expected a whole number of epochs, 1 or more (e.g. 5: a "
                                                    f"checkpoint every 5 epochs), but found {_kind(every)}")
    keep = raw.get("keep", False)
    if not isinstance(keep, bool):
        raise doc.error(keys + ("keep",), f"expected true or false, but found {_kind(keep)}")
    for v in variants:
        n = world_size(v.trainer)
        if n > 1:
            raise doc.error(keys, f"variant {v.name} trains in {n} processes (its trainer's devices); checkpoints "
                                  "inside a run are supported only for runs in one process: remove 'checkpoint' "
                                  "or give that variant one device")
    return CheckpointConfig(every_n_epochs=every, keep=keep)


def _metric_spec(doc: Document, keys: tuple[str, ...], name: Any, spec: Any) -> MetricSpec:
    """`{goal, min_effect}` of the metric `name` (at `keys`), checked: under `metrics:` and in `curves:`."""
    problem = name_problem(name, "metric")
    if problem:
        raise doc.error(keys, problem)
    spec = _mapping(doc, keys, spec if spec is not None else {})
    _check_keys(doc, keys, spec, ("goal", "min_effect"))
    goal = spec.get("goal", "max")
    if goal not in GOALS:
        raise doc.error(keys + ("goal",), f"expected 'max' or 'min', but found {_kind(goal)}")
    min_effect = _number(doc, keys + ("min_effect",), spec.get("min_effect", 0.0), low=0.0)
    return MetricSpec(name=str(name), goal=goal, min_effect=min_effect)


def _curves(doc: Document, raw: Any, metrics: Mapping[str, MetricSpec]) -> CurveConfig:
    """`curves: [val_acc, {val_loss: {goal: min, min_effect: 0.02}}]`, or `curves: {metrics: [...], fail: true}`.
    A bare name takes its goal and min_effect from `metrics:`; a name that is not there must give them."""
    if raw is None:
        return CurveConfig()
    keys: tuple[str, ...] = ("curves",)
    fail = False
    if isinstance(raw, dict):
        _check_keys(doc, keys, raw, ("metrics", "fail"), required=("metrics",))
        fail = raw.get("fail", False)
        if not isinstance(fail, bool):
            raise doc.error(keys + ("fail",), f"expected true or false, but found {_kind(fail)}")
        raw, keys = raw["metrics"], keys + ("metrics",)
    if isinstance(raw, dict):  # {val_loss: {goal: min, min_effect: 0.02}, ...}
        raw = [{k: v} for k, v in raw.items()]
    if not isinstance(raw, list) or not raw:
        raise doc.error(keys, f"expected a list of per-epoch metric names (e.g. [val_loss, val_acc]), but found "
                              f"{_kind(raw)}")
    specs: list[MetricSpec] = []
    for i, item in enumerate(raw):
        ikeys = keys + (str(i),)
        if isinstance(item, dict) and len(item) == 1:
            name, spec = next(iter(item.items()))
            specs.append(_metric_spec(doc, ikeys + (str(name),), name, spec))
        elif isinstance(item, str) and item in metrics:
            specs.append(metrics[item])
        elif isinstance(item, str):
            raise doc.error(ikeys, f"'{item}' is not under 'metrics', so its goal and min_effect are unknown: "
                                   f"write {{{item}: {{goal: max, min_effect: 0.01}}}} (with its own values)")
        else:
            raise doc.error(ikeys, f"expected a metric name or {{name: {{goal, min_effect}}}}, but found "
                                   f"{_kind(item)}")
    names = [m.name for m in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise doc.error(keys, f"the curve of {', '.join(dupes)} is named twice; name each once")
    return CurveConfig(metrics=tuple(specs), fail=fail)


def _expect(doc: Document, raw: Any, variants: list[str], reference: str,
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


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """`trainer.max_epochs=2` -> (("trainer", "max_epochs"), 2); the value is read as YAML."""
    key, sep, value = text.partition("=")
    keys = tuple(k for k in key.strip().split("."))
    if not sep or not all(keys):
        raise SuiteError(f"expected --set KEY.PATH=VALUE (e.g. trainer.max_epochs=2), got {text!r}")
    try:
        parsed = load_bounded(value, Path(f"--set {key}"))[1] if value.strip() else ""
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SuiteError(f"the value of --set {key} is not valid YAML: {problem}") from None
    except SuiteError as e:
        raise SuiteError(f"the value of --set {key}: {e.detail}") from None
    return keys, parsed


# Mappings that --set may create on the way to its key: sections of the schema, never a user's entry (a variant or
# a metric), so that a typo like `variants.sequantial.model=...` fails instead of adding a variant.
_CREATABLE = ("trainer", "stats", "args", "expect", "data")


def _apply_override(doc: Document, keys: tuple[str, ...], value: Any) -> None:
    node = doc.data
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k) if isinstance(node, dict) else None
        if isinstance(nxt, str) and k in ("model", "data") and keys[i + 1] in ("target", "args"):
            nxt = {"target": nxt}  # `model: mod:Class` written short; --set model.args.x=1 extends it
            node[k] = nxt
        if nxt is None:
            if k not in _CREATABLE and not (i > 0 and keys[i - 1] == "expect"):
                raise _unknown_path(doc, keys, i, node)
            nxt = {}
            node[k] = nxt
        if not isinstance(nxt, dict):
            raise doc.error(keys[: i + 1], f"--set {'.'.join(keys)} needs a mapping here, "
                                           f"but found {type(nxt).__name__}")
        node = nxt
    node[keys[-1]] = value
    doc.overridden.add(keys)


def _unknown_path(doc: Document, keys: tuple[str, ...], i: int, node: Any) -> SuiteError:
    """--set through a key the suite does not have, where setting it would invent an entry."""
    here = list(node) if isinstance(node, dict) else []
    where = f"under '{'.'.join(keys[:i])}'" if i else "at the top level"
    hint = did_you_mean(keys[i], [str(k) for k in here])
    whole = ""
    if i == 1 and keys[0] in ("variants", "metrics"):
        whole = f" To add one, set it whole: --set {'.'.join(keys[:2])}={{...}}."
    return SuiteError(f"--set {'.'.join(keys)}: there is no '{keys[i]}' {where}.{hint}{whole}",
                      path=str(doc.path), key=".".join(keys[: i + 1]))


def _kind(value: object) -> str:
    """What a suite file holds where another value was expected, in YAML's words."""
    return describe_value(value, yaml=True)


def _check_keys(doc: Document, keys: tuple[str, ...], value: Mapping[str, Any], allowed: Sequence[str],
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


def _mapping(doc: Document, keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(keys, f"expected a mapping, but found {_kind(value)}")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """A time limit: seconds as a number, or a number with a unit (`90s`, `30m`, `1.5h`); positive and finite.
    Raises ValueError saying what was expected."""
    expected = "expected a duration: seconds (e.g. 600) or a number with s, m or h (e.g. 30m)"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, but found {_kind(value)}")
    if isinstance(value, str):
        text = value.strip().lower()
        unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if text.endswith(u)), "")
        try:
            seconds = float(text[: len(text) - len(unit)].strip()) * _UNITS.get(unit, 1.0)
        except ValueError:
            raise ValueError(f"{expected}, but found {_kind(value)}") from None
    elif isinstance(value, (int, float)):
        seconds = float(value)
    else:
        raise ValueError(f"{expected}, but found {_kind(value)}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{expected}, positive and finite, but found {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """`45 s`, `30 min`, `2 h`: a time limit as a reader wants it."""
    for unit, size, step in (("h", 3600.0, 1800.0), ("min", 60.0, 60.0)):
        if seconds >= size and seconds % step == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _number(doc: Document, keys: tuple[str, ...], value: Any, *, low: float, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise doc.error(keys, f"expected a number, but found {_kind(value)}")
    bad_low = value <= low if low_open else value < low
    bad_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value):
        raise doc.error(keys, f"expected a finite number, but found {value}")
    if bad_low or bad_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise doc.error(keys, f"expected a number in {lo}{low}, {high if high is not None else 'inf'}{hi}, "
                              f"but found {value}")
    return float(value)


def _target(doc: Document, keys: tuple[str, ...], value: Any) -> Target:
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
    return Target(spec=spec, args=args, key=".".join(keys),
                  line=doc.lines.get(keys + ("target",), doc.lines.get(keys)))


def _seed_plan(doc: Document, keys: tuple[str, ...], value: dict[str, Any]) -> SeedPlan:
    _check_keys(doc, keys, value, ("min", "max"), required=("max",))
    bounds = {}
    for k, default in (("min", 3), ("max", None)):
        x = value.get(k, default)
        if isinstance(x, bool) or not isinstance(x, int):
            raise doc.error(keys + (k,), f"expected a whole number of seeds, but found {_kind(x)}")
        if x < 2:
            raise doc.error(keys + (k,), f"expected at least 2 seeds (a t-test needs two values per side), "
                                         f"but found {x}")
        if x > MAX_SEEDS:
            raise doc.error(keys + (k,), f"expected at most {MAX_SEEDS} seeds per variant, but found {x}")
        bounds[k] = x
    if bounds["min"] > bounds["max"]:
        raise doc.error(keys + ("min",), f"min ({bounds['min']}) is above max ({bounds['max']}); "
                                         "lower min or raise max")
    return SeedPlan(min=bounds["min"], max=bounds["max"])


def _seeds(doc: Document, keys: tuple[str, ...], value: Any) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise doc.error(keys, f"expected a count of seeds or a list of seeds, but found {_kind(value)}")
    if isinstance(value, int):
        if not 1 <= value <= MAX_SEEDS:
            raise doc.error(keys, f"expected 1 to {MAX_SEEDS} seeds per variant, but found {value}")
        return tuple(range(value))
    if isinstance(value, list) and value:
        if len(value) > MAX_SEEDS:
            raise doc.error(keys, f"expected at most {MAX_SEEDS} seeds per variant, but found {len(value)}")
        for i, s in enumerate(value):
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED_VALUE:
                raise doc.error(keys + (str(i),), f"expected an integer seed from 0 to {MAX_SEED_VALUE} "
                                                  f"(numpy's range), but found {_kind(s)}")
        if len(set(value)) != len(value):
            raise doc.error(keys, f"seeds must be distinct, but found {value}")
        return tuple(value)
    raise doc.error(keys, f"expected a count of seeds, a non-empty list of seeds or {{min: 3, max: 20}}, "
                          f"but found {_kind(value)}")


def _trainer(doc: Document, keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    m = _mapping(doc, keys, value if value is not None else {})
    for k in m:
        if not isinstance(k, str) or not k.isidentifier():
            raise doc.error(keys, f"trainer options must be identifiers, but found {k!r}")
    return m
