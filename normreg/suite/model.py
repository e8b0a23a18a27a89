"""The suite as the rest of normreg sees it: frozen, typed, YAML-free dataclasses and their small methods.

`suite.building` makes these from a suite file (through `suite.loading`); judging, reporting and rendering
import only this module, so they never depend on how a suite is written down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from normreg.choices import DEFAULT_DESIGN, Goal
from normreg.errors import InputError, did_you_mean

MAX_SEEDS = 1000  # seeds per variant: a count, a list, or a plan's max
MAX_SEED_VALUE = 2**32 - 1  # numpy's (and Lightning's) seed range


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


def world_size(trainer: Mapping[str, Any]) -> int:
    """The processes a run's Trainer options ask for (normreg/execution/ddp.py launches them): `devices` (a count,
    or a list of device indices) times `num_nodes`; 1 for `devices: auto` or -1 (one process: normreg does not guess
    a machine's size)."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, (list, tuple)):
        n = len(devices)
    elif isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        n = int(devices)
    elif isinstance(devices, int) and not isinstance(devices, bool):
        n = devices
    else:
        n = 1
    nodes = trainer.get("num_nodes", 1)
    return max(1, n) * (nodes if isinstance(nodes, int) and nodes > 0 else 1)


@dataclass(frozen=True)
class Suite:
    """A validated suite file: its variants, metrics, seeds, statistical settings and declared outcomes (made by
    `suite.building`; everything after that trusts it)."""

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
    # what `digest` hashes, as JSON: the file with its --set overrides, `baseline_key`, `run_timeout`, `curves` and
    # `checkpoint` left out. A baseline keeps it, so that a changed suite is reported with the keys that changed.
    content: Mapping[str, Any] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def check_variant(self, name: str) -> str:
        """`name`, if the suite has such a variant; else an InputError that suggests the nearest and lists all."""
        names = self.variant_names
        if name not in names:
            raise InputError(f"{self.path}: unknown variant '{name}'.{did_you_mean(name, names)} "
                             f"Variants: {', '.join(names)}")
        return name

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

    def expects_failure(self, variant: str) -> bool:
        """Whether every run of `variant` is declared to fail (`expect: {name: failed}`, a known bug kept
        reproduced): it has no checks, and its failed runs are no problem."""
        return self.expect.get(variant, {}).get("*") == "failed"
