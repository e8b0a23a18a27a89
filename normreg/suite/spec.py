"""The suite schema and its loader: YAML text in, a frozen `Suite` out, or one `SuiteError`.

Validation happens here, once. Every error names the file, the line and the key path, and offers a
did-you-mean for misspelt keys. Nothing here imports torch: loading a suite is cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from normreg.choices import CORRECTIONS, DEFAULT_DESIGN, DESIGNS, EXPECTATIONS, GOALS, SPENDING, Goal, choice_problem
from normreg.environment import BASELINE_KEYS
from normreg.errors import InputError, ResultsError, SuiteError, did_you_mean, printable
from normreg.execution.ddp import world_size
from normreg.fileio import MAX_INT_DIGITS, describe_value, read_text_bounded
from normreg.names import name_problem

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
    """`{name: {goal, min_effect}}`: how run directories, reports and baselines store a suite's metrics (read back,
    checked, by `judge.baseline.metric_specs`)."""
    return {m.name: {"goal": m.goal, "min_effect": m.min_effect} for m in metrics}


@dataclass(frozen=True)
class CurveConfig:
    """`curves:` in a suite: the per-epoch metrics whose learning curves are compared, variant against reference,
    epoch by epoch (`judge.curves`), and whether a curve that parts fails the run (by default curves inform)."""

    metrics: tuple[MetricSpec, ...] = ()
    fail: bool = False


@dataclass(frozen=True)
class CheckpointConfig:
    """`checkpoint:` in a suite: save each run's state every `every_n_epochs` epochs into the run directory, so
    that `--resume` continues a run that was killed from its last checkpoint instead of from epoch 0; `keep`
    keeps the checkpoints once the run has finished (by default they are removed then)."""

    every_n_epochs: int
    keep: bool = False


@dataclass(frozen=True)
class StatsConfig:
    """`stats:` in a suite. `correction` applies across every check of the suite; `spending` only to staged seeds."""

    alpha: float = 0.05
    design: str = DEFAULT_DESIGN  # the statistical test, one of `DESIGNS` (`judge/designs/`, one file each)
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
    curves: CurveConfig = CurveConfig()  # learning curves compared epoch by epoch; none by default
    baseline_key: str | None = None  # keep one baseline per this key's value (e.g. "device"); None: one baseline
    run_timeout: float | None = None  # seconds one run may take before it is ended and recorded failed; None: any
    checkpoint: CheckpointConfig | None = None  # checkpoints inside each run, for --resume; None: none
    # what `digest` hashes, as JSON: the file with its --set overrides, `baseline_key`, `run_timeout` and `curves`
    # left out. A baseline keeps it, so that a changed suite is reported with the keys that changed.
    content: Mapping[str, Any] = field(default_factory=dict)

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


# Bounds on what a suite file may make normreg do while loading it. A real suite is a few kilobytes with a
# few hundred nodes; these are far above that and far below what costs noticeable time or memory.
MAX_SUITE_BYTES = 64 * 1024  # PyYAML reads about 100 kB a second
MAX_NODES = 100_000  # YAML nodes after expanding aliases (an alias bomb expands to billions)
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_SEEDS = 1000  # seeds per variant: a count, a list, or a plan's max
MAX_SEED_VALUE = 2**32 - 1  # numpy's (and Lightning's) seed range


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a bound on nesting depth, checked as nodes are composed (before recursion)."""

    def __init__(self, stream: str, source: str | None = None) -> None:
        super().__init__(stream)
        self._depth = 0
        self._source = source  # the file, for errors raised while constructing values

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner looks ahead through every open bracket (each may start a key): stop deep brackets here,
        # before that look-ahead costs time.
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"brackets nested more than {MAX_DEPTH} levels deep (the "
                                            "limit for a suite file)", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep (the limit for a suite file)", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isalnum() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise SuiteError(f"an integer of {digits} digits, over the limit of {MAX_INT_DIGITS}",
                             path=self._source, line=node.start_mark.line + 1)
        return super().construct_yaml_int(node)

    def construct_yaml_str(self, node: yaml.ScalarNode) -> str:
        value = super().construct_yaml_str(node)
        if not value.isascii() and any("\ud800" <= c <= "\udfff" for c in value):
            raise SuiteError(f"a string holding a lone surrogate ({printable(value)[:60]}); write it as valid "
                             "Unicode text", path=self._source, line=node.start_mark.line + 1)
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:str", _BoundedLoader.construct_yaml_str)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_nodes(path: Path, root: yaml.Node) -> None:
    """Refuse recursive aliases, alias expansions beyond `MAX_NODES`, and duplicate keys (naming both lines).

    Sizes are memoised per node, so an alias bomb is measured without being expanded.
    """
    size: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            on_stack.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
            if size[id(node)] > MAX_NODES:
                raise SuiteError(f"the YAML expands to more than {MAX_NODES} nodes (aliases included), the "
                                 "limit for a suite file", path=str(path), line=node.start_mark.line + 1)
            continue
        if id(node) in size:
            continue
        on_stack.add(id(node))
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(path, node)
        for child in _children(node):
            if id(child) in on_stack:
                raise SuiteError("a recursive alias (a node that contains itself); write the value out",
                                 path=str(path), line=child.start_mark.line + 1)
            if id(child) not in size:
                stack.append((child, False))


def _check_duplicates(path: Path, node: yaml.MappingNode) -> None:
    """YAML says keys are unique; PyYAML keeps the last silently. Refuse, naming both lines."""
    seen: dict[str, int] = {}
    for k, _ in node.value:
        if not isinstance(k, yaml.ScalarNode) or k.value == "<<":
            continue
        line = k.start_mark.line + 1
        if k.value in seen:
            raise SuiteError(f"duplicate key '{k.value}' (first on line {seen[k.value]}, again on line {line}); "
                             "YAML keeps only the last: keep one", path=str(path), line=line)
        seen[k.value] = line


def _load_bounded(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    """Compose and check the node graph (depth, size, cycles, duplicate keys), then construct Python values."""
    loader = _BoundedLoader(text, str(path))
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_nodes(path, node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _parse_yaml(path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    try:
        text = read_text_bounded(path, MAX_SUITE_BYTES, "a suite file (.yaml)")
    except ResultsError as e:
        if e.missing:
            raise SuiteError("no such suite file; give the path of a .yaml suite or of a folder of them",
                             path=str(path)) from None
        raise SuiteError(e.reason, path=str(path), line=e.line) from None
    try:
        node, data = _load_bounded(text, path)
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
        parsed = _load_bounded(value, Path(f"--set {key}"))[1] if value.strip() else ""
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SuiteError(f"the value of --set {key} is not valid YAML: {problem}") from None
    except SuiteError as e:
        raise SuiteError(f"the value of --set {key}: {e.detail}") from None
    return keys, parsed


# Mappings that --set may create on the way to its key: sections of the schema, never a user's entry (a variant or
# a metric), so that a typo like `variants.sequantial.model=...` fails instead of adding a variant.
_CREATABLE = ("trainer", "stats", "args", "expect", "data")


def _apply_override(doc: _Doc, keys: tuple[str, ...], value: Any) -> None:
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


def _unknown_path(doc: _Doc, keys: tuple[str, ...], i: int, node: Any) -> SuiteError:
    """--set through a key the suite does not have, where setting it would invent an entry."""
    here = list(node) if isinstance(node, dict) else []
    where = f"under '{'.'.join(keys[:i])}'" if i else "at the top level"
    hint = did_you_mean(keys[i], [str(k) for k in here])
    whole = ""
    if i == 1 and keys[0] in ("variants", "metrics"):
        whole = f" To add one, set it whole: --set {'.'.join(keys[:2])}={{...}}."
    return SuiteError(f"--set {'.'.join(keys)}: there is no '{keys[i]}' {where}.{hint}{whole}",
                      path=str(doc.path), key=".".join(keys[: i + 1]))


def suite_error(suite: Suite, keys: Sequence[Sequence[str]], message: str) -> SuiteError:
    """An error about a validated suite that names the line of the first of `keys` found in its file."""
    try:
        _, lines = _parse_yaml(suite.path)
    except SuiteError:
        lines = {}
    for k in keys:
        if tuple(k) in lines:
            return SuiteError(message, path=str(suite.path), line=lines[tuple(k)], key=".".join(k))
    return SuiteError(f"{message} (set on the command line with --set)", path=str(suite.path),
                      key=".".join(keys[0]) if keys else None)


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


def _kind(value: object) -> str:
    """What a suite file holds where another value was expected, in YAML's words."""
    return describe_value(value, yaml=True)


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


def _number(doc: _Doc, keys: tuple[str, ...], value: Any, *, low: float, high: float | None = None,
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
    return Target(spec=spec, args=args, key=".".join(keys),
                  line=doc.lines.get(keys + ("target",), doc.lines.get(keys)))


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
        if x > MAX_SEEDS:
            raise doc.error(keys + (k,), f"expected at most {MAX_SEEDS} seeds per variant, but found {x}")
        bounds[k] = x
    if bounds["min"] > bounds["max"]:
        raise doc.error(keys + ("min",), f"min ({bounds['min']}) is above max ({bounds['max']}); "
                                         "lower min or raise max")
    return SeedPlan(min=bounds["min"], max=bounds["max"])


def _seeds(doc: _Doc, keys: tuple[str, ...], value: Any) -> tuple[int, ...]:
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


def _trainer(doc: _Doc, keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    m = _mapping(doc, keys, value if value is not None else {})
    for k in m:
        if not isinstance(k, str) or not k.isidentifier():
            raise doc.error(keys, f"trainer options must be identifiers, but found {k!r}")
    return m


# Every top-level key a suite file may hold (the suite reference's table lists exactly these: tests/test_readme.py).
SUITE_KEYS = ("name", "description", "data", "trainer", "seeds", "metrics", "reference", "variants", "stats",
              "expect", "baseline_key", "run_timeout", "curves", "checkpoint")


def _build_suite(doc: _Doc) -> Suite:
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
    checkpoint = _checkpoint(doc, top.get("checkpoint"), variants)
    # Where baselines are kept, how long a run may take and whether it saves checkpoints do not change results, and
    # curve checks add checks without changing a run or any other check: all four are left out of the digest, so
    # declaring curves neither marks the suite changed against its baseline nor sets its reports apart from earlier
    # nights in `history`, and checkpoints can be turned on for an interrupted run before it is resumed.
    content = {k: v for k, v in doc.data.items() if k not in ("baseline_key", "run_timeout", "curves", "checkpoint")}
    canonical = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return Suite(
        name=name, path=doc.path, description=description, variants=tuple(variants), reference=reference,
        metrics=tuple(metrics), seeds=seeds, stats=StatsConfig(alpha=alpha, **choices), expect=expect,
        digest=hashlib.sha256(canonical.encode()).hexdigest(), seed_plan=seed_plan, content=json.loads(canonical),
        curves=curves,
        baseline_key=None if baseline_key == "none" else baseline_key, run_timeout=run_timeout,
        checkpoint=checkpoint,
    )


def _checkpoint(doc: _Doc, raw: Any, variants: Sequence[Variant]) -> CheckpointConfig | None:
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


def _metric_spec(doc: _Doc, keys: tuple[str, ...], name: Any, spec: Any) -> MetricSpec:
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


def _curves(doc: _Doc, raw: Any, metrics: Mapping[str, MetricSpec]) -> CurveConfig:
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


def load_suites(paths: Sequence[str | Path], overrides: Sequence[str] = (), seeds: Seeds = None) -> list[Suite]:
    """Load every suite named or found in the folders named; `seeds` replaces each suite's seeds with 0..N-1,
    or with "auto" stages them (the suite's own `seeds: {min, max}`, else min 3, max 20)."""
    if seeds not in (None, "auto") and not (isinstance(seeds, int) and 1 <= seeds <= MAX_SEEDS):
        raise InputError(f"expected a seed count from 1 to {MAX_SEEDS} or 'auto', got {seeds!r}")
    suites = [load_suite(p, overrides) for p in discover(paths)]
    if seeds == "auto":
        suites = [s if s.seed_plan else replace(s, seed_plan=SeedPlan(), seeds=tuple(range(SeedPlan().max)))
                  for s in suites]
    elif seeds is not None:
        suites = [replace(s, seeds=tuple(range(int(seeds))), seed_plan=None) for s in suites]
    names = [s.name for s in suites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SuiteError(f"two suites share the name {', '.join(dupes)}; give each a distinct 'name'")
    return suites
