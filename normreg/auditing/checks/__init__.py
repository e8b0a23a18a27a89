"""The audit's checks: one file each in this package, registered with `@register`, all with one signature.

A check reads what the audit recorded of one variant (`Recordings`: the module calls of each inference path, one
training step per mode, the pair summary against the reference, and the built model itself, to probe) and returns
findings. Adding a check is adding a file here that registers itself with `@register("name")` (`CHECKS`, a
`normreg.registry.Registry`); `audit_models` runs every registered check on every variant, in the registry's order
(`ORDER`, below), which is also the order the docs list them and reports sort them.

Nothing here imports torch; the check modules do, and are imported only when an audit runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from normreg.auditing.findings import Finding, PairSummary
from normreg.registry import Registry

if TYPE_CHECKING:
    from normreg.auditing.pair import StepRecord
    from normreg.auditing.record import Call
    from normreg.auditing.shards import Processes

FIX_EVAL = ("Put the network in eval mode on this path (net.eval() before, net.train() after), so BatchNorm uses its "
            "running statistics; or use LayerNorm/GroupNorm, which behave the same in both modes.")


@dataclass(frozen=True)
class Recordings:
    """What the audit recorded of one variant, for the checks to read. Every check starts from the freshly built
    model: `restore()` puts weights, buffers and modes back after a check that probes it."""

    variant: str
    model: Any  # the built LightningModule
    names: Mapping[int, str]  # id(module) -> qualified name
    paths: Mapping[str, Sequence[Call]]  # calls per inference or acting path (fetching data, eval steps)
    steps: Mapping[str, StepRecord]  # "train"/"eval" -> one training step on the compared batch
    batch: Any | None  # a training batch the model accepts (its own, else the reference's)
    seed: int
    restore: Callable[[], None]
    optimizers: Callable[[], list[Any]]  # fresh optimizers of the model (empty when it has none that build)
    pair: PairSummary | None = None  # the comparison with the reference; None for the reference itself
    data_note: str | None = None  # how the variant's own data differs from the reference's, when it does
    drift_steps: int = 3
    trainer: Mapping[str, Any] = field(default_factory=dict)  # the variant's Trainer options, as the runner uses them
    # The first training batch of each process of a run on several processes, in rank order, fetched on demand
    # (normreg.auditing.shards); raises shards.Unshardable, or the data's own error, when they cannot be seen.
    rank_batches: Callable[[Processes], list[Any]] | None = None

    @property
    def training(self) -> StepRecord | None:
        """The recorded training step (train mode), when it ran without error; None otherwise."""
        train = self.steps.get("train")
        return None if train is None or train.error else train


CheckFn = Callable[[Recordings], list[Finding]]


class Skipped(Exception):  # noqa: N818 - a check's outcome, not a failure
    """Raised by a check that cannot examine a variant: the audit notes the message (why, and what would let
    it run) instead of a finding, so that what was not examined is never mistaken for what is fine."""


@dataclass(frozen=True)
class AuditCheck:
    """A registered check: its name (as findings carry it) and the function."""

    name: str
    run: CheckFn


# The order checks run in, reports sort their findings in and the docs list them: the first divergence between
# the pair first (the likely cause), then what makes a model's output depend on its batch. A check not named here
# comes after these, by name.
ORDER = ("pair_divergence", "batch_independence", "train_mode_without_training", "frozen_drift",
         "per_source_statistics", "unsynced_batchnorm", "heterogeneous_normalisation")

CHECKS: Registry[CheckFn] = Registry("audit check", package=__name__, order=ORDER)


def register(name: str) -> Callable[[CheckFn], CheckFn]:
    """Register the decorated function as the check `name` (the name its findings carry)."""
    return CHECKS.register(name)


def all_checks() -> tuple[AuditCheck, ...]:
    """Every check in this package, in `ORDER` (importing each module registers it)."""
    return tuple(AuditCheck(name, CHECKS.get(name)) for name in CHECKS.names())
