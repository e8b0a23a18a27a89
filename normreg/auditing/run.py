"""Auditing a suite: build its variants as the runner does, record each once, run every registered check on it.

No training: one batch, a handful of steps, all on CPU. Phases restore each model's weights, buffers and modes
afterwards, so every check starts from the same freshly built (seeded) model.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normreg.auditing.findings import AuditReport, Finding, PairSummary, sort_findings
from normreg.execution.failure import describe_error
from normreg.suite.model import Suite
from normreg.suite.spec import load_suite

if TYPE_CHECKING:
    from normreg.auditing.checks import Recordings


@dataclass(frozen=True)
class Subject:
    """One variant to audit: its name, its built LightningModule and its datamodule (None: the model's own data).

    `data`: what its data is when it differs from the reference's (e.g. the target of its own `data` override), so
    the audit compares it under its own data; None when it shares the reference's."""

    name: str
    model: Any
    data: Any | None = None
    own_data: str | None = None
    trainer: Mapping[str, Any] = field(default_factory=dict)  # its Trainer options (devices, strategy, ...)
    make_data: Callable[[], Any] | None = None  # builds a fresh datamodule, as each process of a DDP run does


DATA_PATH = "train_dataloader"  # fetching a training batch: where a model that collects its own data acts
MODES = ("train", "eval")


def audit_models(subjects: Sequence[Subject], *, seed: int = 0,
                 drift_steps: int = 3) -> tuple[list[Finding], list[PairSummary], list[str]]:
    """Record each subject once, then run every registered check on every subject; the first subject is the
    reference of the pair checks. Returns (findings, pair summaries, notes about what could not be examined)."""
    from normreg.auditing.checks import Skipped, all_checks

    notes: list[str] = []
    recordings = record(subjects, seed=seed, drift_steps=drift_steps, notes=notes)
    findings: list[Finding] = []
    checks = all_checks()
    for rec in recordings:
        for check in checks:
            try:
                findings += check.run(rec)
            except Skipped as e:
                notes.append(f"{rec.variant}: the {check.name} check did not run: {e}")
            except Exception as e:  # noqa: BLE001 - one check that cannot run must not hide the others
                notes.append(f"{rec.variant}: the {check.name} check raised {describe_error(e)}")
            finally:
                rec.restore()
    return findings, [r.pair for r in recordings if r.pair is not None], notes


def record(subjects: Sequence[Subject], *, seed: int, drift_steps: int, notes: list[str]) -> list[Recordings]:
    """Everything the checks read, per subject: its first training batch, a training step per mode on the
    reference's batch (its own when it has its own data or the reference's does not fit), and the calls of every
    inference or acting path. Each recording starts from the freshly built, seeded model."""
    from normreg.auditing.checks import Recordings
    from normreg.auditing.pair import mode_summary
    from normreg.auditing.record import Recorder, module_names
    from normreg.auditing.shards import ONE_PROCESS, as_rank
    from normreg.auditing.steps import copy_matching_state, optimizers_of, restore, seed_all, snapshot, train_batch

    ref = subjects[0]
    names = {s.name: module_names(s.model) for s in subjects}
    copied = {s.name: copy_matching_state(ref.model, s.model) for s in subjects[1:]}
    snaps = {s.name: snapshot(s.model) for s in subjects}

    def optimizers(s: Subject) -> list[Any]:
        try:
            return optimizers_of(s.model)
        except Exception as e:  # noqa: BLE001 - e.g. configure_optimizers asks the Trainer for the step count
            notes.append(f"{s.name}: configure_optimizers raised {describe_error(e)}; steps run without optimizers")
            return []

    # The first training batch of each subject. Fetching it may act (a model collecting its own rollouts), so
    # it is recorded as a path.
    batches: dict[str, Any] = {}
    data_calls: dict[str, list[Any]] = {}
    for s in subjects:
        seed_all(seed)
        s.model.train()
        with Recorder(names[s.name]) as rec:
            try:
                with as_rank(s.model, s.data, 0, ONE_PROCESS):
                    batches[s.name] = train_batch(s.model, s.data)
            except Exception as e:  # noqa: BLE001
                notes.append(f"{s.name}: getting a training batch raised {describe_error(e)}")
        data_calls[s.name] = rec.calls
        restore(s.model, snaps[s.name])

    out = []
    ref_steps: dict[str, Any] = {}
    for s in subjects:
        steps = _steps(s, ref, batches, snaps[s.name], names[s.name], seed, optimizers, notes)
        if s is ref:
            ref_steps = steps
        pair = None
        if s is not ref and steps and ref_steps:
            summaries = tuple(mode_summary(mode, ref_steps[mode], steps[mode], (ref.name, s.name)) for mode in MODES)
            pair = PairSummary(ref.name, s.name, summaries, *copied[s.name])
        train = steps.get("train")
        if train is not None and train.error:
            notes.append(f"{s.name}: {train.error}")
        out.append(Recordings(
            variant=s.name, model=s.model, names=names[s.name],
            paths={DATA_PATH: data_calls[s.name], **_eval_paths(s, snaps[s.name], names[s.name], seed, notes)},
            steps=steps, batch=batches.get(s.name, batches.get(ref.name)), seed=seed,
            restore=lambda s=s: restore(s.model, snaps[s.name]), optimizers=lambda s=s: optimizers(s), pair=pair,
            data_note=_data_note(s, ref, batches), drift_steps=drift_steps, trainer=s.trainer,
            rank_batches=lambda procs, s=s: _rank_batches(s, procs, seed)))
    return out


def _rank_batches(s: Subject, procs: Any, seed: int) -> list[Any]:
    from normreg.auditing.shards import rank_batches

    return rank_batches(s.model, s.make_data or (lambda: s.data), procs, seed)


def _steps(s: Subject, ref: Subject, batches: dict[str, Any], snap: Any, names: Any, seed: int,
           optimizers: Any, notes: list[str]) -> dict[str, Any]:
    """One training step per mode, on the reference's batch; on the subject's own when it has its own data
    (the comparison is then under its own data) or when the reference's batch does not fit its training_step."""
    from normreg.auditing.pair import StepRecord
    from normreg.auditing.record import Recorder
    from normreg.auditing.steps import restore, seed_all, training_step

    def step(batch: Any, mode: str) -> StepRecord:
        restore(s.model, snap)
        s.model.train(mode == "train")
        opts = optimizers(s)
        seed_all(seed)
        rec = Recorder(names, capture=True)

        # Outputs are compared up to the first optimizer step (manual optimisation): after it the weights differ
        # because the gradients did, which is a consequence, not a cause.
        def mark(*_: Any) -> None:
            rec.mark()

        hooks = [o.register_step_pre_hook(mark) for o in opts]
        try:
            with rec:
                result = training_step(s.model, batch, 0, optimizers=opts)
            state = {k: v.detach().clone() for k, v in s.model.state_dict().items()}
            return StepRecord(rec.before_first_mark(), result.loss, result.grads, snap.state, state)
        except Exception as e:  # noqa: BLE001
            return StepRecord([], None, {}, snap.state, {}, error=f"training_step raised {describe_error(e)}")
        finally:
            for h in hooks:
                h.remove()
            restore(s.model, snap)

    own = batches.get(s.name)
    first = own if s.own_data is not None and own is not None else batches.get(ref.name)
    if first is None:
        return {}
    steps = {}
    for mode in MODES:
        rec = step(first, mode)
        if rec.error and own is not None and first is not own:
            retry = step(own, mode)
            if not retry.error:
                notes.append(f"{s.name}: the reference's batch does not fit its training_step ({rec.error}); "
                             "compared on its own first batch")
                rec = retry
        steps[mode] = rec
    return steps


def _eval_paths(s: Subject, snap: Any, names: Any, seed: int, notes: list[str]) -> dict[str, list[Any]]:
    """The calls of each evaluation, prediction or acting step the model defines, in the mode the Trainer uses."""
    from normreg.auditing.record import Recorder
    from normreg.auditing.shards import ONE_PROCESS, as_rank
    from normreg.auditing.steps import eval_batches, restore, run_eval_step, seed_all

    paths: dict[str, list[Any]] = {}
    try:
        with as_rank(s.model, s.data, 0, ONE_PROCESS):
            evals = eval_batches(s.model, s.data)
    except Exception as e:  # noqa: BLE001
        notes.append(f"{s.name}: getting an evaluation batch raised {describe_error(e)}")
        return paths
    for step_name, batch in evals:
        seed_all(seed)
        with Recorder(names) as rec:
            try:
                run_eval_step(s.model, step_name, batch)
            except Exception as e:  # noqa: BLE001
                notes.append(f"{s.name}: {step_name} raised {describe_error(e)}")
        paths[step_name] = rec.calls
        restore(s.model, snap)
    return paths


def _data_note(s: Subject, ref: Subject, batches: dict[str, Any]) -> str | None:
    """How a subject with its own data differs from the reference's on the first batch, or None."""
    if s is ref or s.own_data is None or s.name not in batches or ref.name not in batches:
        return None
    from normreg.auditing.steps import batch_difference

    diff = batch_difference(batches[ref.name], batches[s.name])
    return None if diff is None else f"its own data ({s.own_data}); first batches differ: {diff}"


def _choose(suite: Suite, variants: Sequence[str]) -> list[str]:
    names = suite.variant_names
    for v in variants:
        suite.check_variant(v)
    wanted = [n for n in names if n in variants] if variants else names
    return [suite.reference] + [n for n in wanted if n != suite.reference]


def _own_data(suite: Suite, name: str) -> str | None:
    """The variant's data target when it differs from the reference's (a `data` override), else None."""
    mine, ref = suite.variant(name).data, suite.variant(suite.reference).data
    same = (mine is None and ref is None) or (mine is not None and ref is not None and
                                              (mine.spec, dict(mine.args)) == (ref.spec, dict(ref.args)))
    if same or name == suite.reference:
        return None
    return "the model's own dataloaders" if mine is None else \
        mine.spec + (f" with {', '.join(f'{k}={v!r}' for k, v in mine.args.items())}" if mine.args else "")


def audit_loaded(suite: Suite, variants: Sequence[str] = (), seed: int | None = None) -> AuditReport:
    """Audit a loaded suite: the reference and `variants` (default: all), built with `seed` as the runner does."""
    start = time.perf_counter()
    chosen = _choose(suite, variants)
    seed = suite.seeds[0] if seed is None else seed
    import torch

    from normreg.auditing.checks import all_checks
    from normreg.auditing.steps import quiet, seed_all
    from normreg.suite.targets import build, importable

    importable([suite.directory])
    threads = torch.get_num_threads()
    # One batch of a small model: a single thread is fastest, and on a shared machine far faster than several.
    torch.set_num_threads(1)
    try:
        with quiet():
            subjects = []
            for name in chosen:
                v = suite.variant(name)
                seed_all(seed)
                dm = build(suite, v.data, "data") if v.data is not None else None
                make = (lambda d=v.data: build(suite, d, "data")) if v.data is not None else None
                subjects.append(Subject(name, build(suite, v.model, "model"), dm, _own_data(suite, name),
                                        v.trainer, make))
            findings, pairs, notes = audit_models(subjects, seed=seed)
            order = tuple(c.name for c in all_checks())
    finally:
        torch.set_num_threads(threads)
    return AuditReport(suite=suite.name, path=str(suite.path), digest=suite.digest, reference=suite.reference,
                       variants=tuple(chosen), seed=seed, checks=order,
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       duration_s=time.perf_counter() - start, findings=sort_findings(findings, order),
                       pairs=tuple(pairs), notes=tuple(notes))


def audit_suite(path: str | Path, variants: Sequence[str] = (), seed: int | None = None,
                overrides: Sequence[str] = ()) -> AuditReport:
    """`normreg audit SUITE`: load the suite file and audit it."""
    return audit_loaded(load_suite(path, overrides), variants, seed)


def likely_causes(suite: Suite, variants: Sequence[str]) -> AuditReport:
    """For `normreg run`: the audit of the reference and the variants of failing pairs. Never raises: an audit
    that cannot run is an `AuditReport` holding the error."""
    try:
        return audit_loaded(suite, variants)
    except (Exception, SystemExit, KeyboardInterrupt) as e:  # noqa: BLE001 - an audit failure must never break a run
        return AuditReport(suite=suite.name, error=describe_error(e))
