"""`run`: plan (load suites, check everything up front), execute (train every (variant, seed) with the executor
given), judge (pairs, baselines, the attached audit) and write (`report.json` in the run directory).

Finished runs reach the run directory as they finish; the baseline is written only when asked, atomically.
An interrupt (SIGINT, SIGTERM) during execution ends the runs in flight and raises `Interrupted`, leaving every
finished run on disk.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from normreg.auditing.findings import AuditReport
from normreg.environment import fingerprint
from normreg.errors import InputError
from normreg.execution.events import Progress
from normreg.execution.executor import RECEIVED, Executor, Interrupted, Job, Stop, cancel_on_signals, plan_jobs
from normreg.execution.results import RunResult
from normreg.execution.rundir import RunDir, checkpointed, finish_checkpoints, new_run_dir
from normreg.execution.supervised import note_phase, note_run_dir
from normreg.fileio import check_output_dir
from normreg.judge.baseline import Baseline, BaselineChoice, choose_baseline, make_baseline, save_baseline
from normreg.judge.checks import Check, Key, Problem, judge, judge_staged
from normreg.judge.curves import CurveCheck, curve_checks
from normreg.judge.resultset import ResultSet, load_result_set
from normreg.planning import PilotRun
from normreg.report.model import Report, SuiteInfo
from normreg.suite.model import Seeds, Suite
from normreg.suite.spec import load_suite, load_suites


@dataclass(frozen=True)
class RunPlan:
    """What `run` will do, checked before anything trains."""

    suites: tuple[Suite, ...]
    chosen: Mapping[str, BaselineChoice]  # suite name -> the baseline it is judged against, and where to store one
    baseline_dir: Path
    rundir: RunDir  # held (locked) by this process from planning until the report is written
    environment: Mapping[str, Any]  # without the devices, known once runs have finished

    @property
    def out(self) -> Path:
        return self.rundir.path

    def run_dir(self, suite: Suite) -> Path:
        return self.out / suite.name

    def baseline(self, suite: Suite) -> Baseline | None:
        return self.chosen[suite.name].baseline


@dataclass
class Execution:
    """The finished runs, and for staged suites what their stages decided."""

    results: list[RunResult] = field(default_factory=list)
    staged: dict[str, tuple[list[Check], list[Problem], dict[str, int], int]] = field(default_factory=dict)


def plan_run(paths: Sequence[str | Path] | Sequence[Suite], *, device: Callable[[], str], seeds: Seeds = None,
             out: Path | None = None, resume: Path | None = None, baselines: Path = Path("baselines"),
             overrides: Sequence[str] = (), baseline_key: str | None = None, check_targets: bool = True,
             update_baseline: bool = False, warm_up: Callable[[], None] | None = None) -> RunPlan:
    """Load suites and baselines, take the run directory (locked; one holding an earlier run is refused unless
    resumed, and a resumed one must hold the same, unchanged suites), and (`check_targets`) import and build every
    model and data target once: every mistake found here costs a second, not a night of training. `device()`: where
    the executor will train runs that do not ask for the CPU; asked only when a suite keeps baselines per device.
    `warm_up()` is called once the suites are loaded, before the targets are built (the executor's own start then
    overlaps it). `paths` may be suites `load_suites` already returned (with `overrides` and `seeds` applied): the
    CLI loads them first, to refuse a bad one before the heavy imports. The caller closes `plan.rundir`."""
    if resume is not None and out is not None and Path(out).resolve() != Path(resume).resolve():
        raise InputError(f"--out {out} and --resume {resume} name two directories; a resumed run writes into the "
                         "directory it resumes, so give only --resume")
    if paths and all(isinstance(p, Suite) for p in paths):
        if overrides or seeds is not None:
            raise ValueError("suites already loaded have their overrides and seeds applied: pass neither again")
        suites = list(paths)
    else:
        suites = load_suites(paths, overrides, seeds)  # type: ignore[arg-type]
    # a bad baseline fails before training
    chosen = {s.name: choose_baseline(baselines, s.name, baseline_key or s.baseline_key,
                                      {"device": _planned_device(s, device)}
                                      if (baseline_key or s.baseline_key) == "device" else {})
              for s in suites}
    if out is not None:
        check_output_dir(Path(out), "--out")
    check_output_dir(baselines, "--baselines", write=update_baseline)
    fresh = resume is None and out is None
    rundir = RunDir.open(Path(resume) if resume is not None else out or new_run_dir(), resume=resume is not None,
                         created=True if fresh else None)
    note_run_dir(rundir.path, rundir.created)
    try:
        if rundir.resume:
            rundir.check_resumable(suites)  # a changed suite fails here, before anything is built
        check_output_dir(rundir.path, "the run directory")  # a read-only or full disk: found now, not at the end
        if check_targets:
            from normreg.auditing.preflight import check_options, preflight

            # Lightning's import and the accelerators first, then the executor's start (its workers import torch
            # too: started before, they competed with this process's import on a busy machine, and a mistake took
            # twice the import's time to report), overlapping the models' build and first step.
            note_phase("the up-front check (importing torch and Lightning)")
            for s in suites:
                check_options(s, device)
            if warm_up is not None:
                warm_up()
            for s in suites:
                note_phase(f"the up-front check of suite '{s.name}' (importing and building its models)")
                preflight(s)
    except BaseException:
        rundir.discard()  # a mistake or a stop before training leaves nothing on disk
        rundir.close()
        raise
    return RunPlan(tuple(suites), chosen, baselines, rundir, fingerprint(None, suites[0].directory))


def _planned_device(suite: Suite, device: Callable[[], str]) -> str:
    """`cpu` for a suite whose every variant asks for the CPU, else the executor's device."""
    if all(str(v.trainer.get("accelerator", "")).lower() == "cpu" for v in suite.variants):
        return "cpu"
    return device()


def execute(plan: RunPlan, executor: Executor, *, ignore_expect: bool = False,
            progress: Callable[[Progress], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Execution:
    """Train every job of the plan with `executor`, each result on disk as it arrives; staged suites stage by
    stage; a resumed run reuses the runs the interrupted one finished. SIGINT/SIGTERM cancel the executor; then
    `Interrupted` is raised once it has stopped."""
    logs = {}
    reused: dict[tuple[str, str, int], RunResult] = {}
    for s in plan.suites:
        logs[s.name], resumed = plan.rundir.start_suite(s, plan.environment)
        reused.update({(r.suite, r.variant, r.seed): r for r in resumed.kept})
        if resumed.environment_changes and on_note:
            changed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(resumed.environment_changes.items()))
            on_note(f"Note: {s.name}: the environment changed since the interrupted run ({changed}); its "
                    f"{len(resumed.kept)} finished runs are judged together with the new ones")
    if plan.rundir.resume and on_note:
        on_note(_resuming_note(plan, reused))
    jobs = [j for s in plan.suites if s.seed_plan is None for j in plan_jobs(s, plan.run_dir(s))]
    done = Execution()
    running: dict[tuple[str, str, int], Job] = {}
    start = time.perf_counter()

    def on_start(job: Job) -> None:
        running[job.key] = job
        if progress:
            progress(Progress(None, len(done.results), len(jobs), time.perf_counter() - start,
                              tuple(running.values()), job))

    def on_result(r: RunResult) -> None:
        logs[r.suite].add(r)  # on disk before anything else happens
        suite = next(s for s in plan.suites if s.name == r.suite)  # its checkpoints go, even if its worker died:
        finish_checkpoints(suite, plan.run_dir(suite), r.variant, r.seed)
        done.results.append(r)
        running.pop((r.suite, r.variant, r.seed), None)
        if progress:
            progress(Progress(r, len(done.results), len(jobs), time.perf_counter() - start,
                              tuple(running.values())))

    def run(batch: list[Job]) -> None:
        fresh = [j for j in batch if j.key not in reused]
        done.results.extend(reused[j.key] for j in batch if j.key in reused)  # finished before: never trained twice
        if not fresh:
            return
        with cancel_on_signals(executor) as signals:
            executor.run(fresh, on_result, on_start)
        if signals:
            raise Interrupted(signals[0], plan.out)

    run(jobs)
    for s in plan.suites:
        if s.seed_plan is not None:
            def run_stage(stage_jobs: list[Job]) -> None:
                jobs.extend(stage_jobs)
                run(stage_jobs)

            done.staged[s.name] = _run_staged(s, plan.run_dir(s), plan.baseline(s), plan.environment,
                                              ignore_expect, run_stage, done.results)
    return done


def _resuming_note(plan: RunPlan, reused: Mapping[tuple[str, str, int], RunResult]) -> str:
    """`Resuming DIR: 9 finished runs reused, 1 unfinished continue from their checkpoints, ...`."""
    saved = sum(1 for s in plan.suites for v, seed in checkpointed(plan.run_dir(s)) if (s.name, v, seed) not in reused)
    continued = f", {saved} unfinished continue from their checkpoints" if saved else ""
    return f"Resuming {plan.out}: {len(reused)} finished runs reused{continued}, the failed and missing ones run now"


def _run_staged(suite: Suite, out: Path, baseline: Baseline | None, environment: Mapping[str, Any],
                ignore_expect: bool, run: Callable[[list[Job]], None],
                results: list[RunResult]) -> tuple[list[Check], list[Problem], dict[str, int], int]:
    """Run a suite's seeds stage by stage; after each stage stop every variant whose checks are all decisive."""
    assert suite.seed_plan is not None
    stages = suite.seed_plan.stages
    names = suite.variant_names
    skip = {v for v in names if not ignore_expect and suite.expects_failure(v)}
    looks: dict[str, list[int]] = {v: [] for v in names}
    decided: dict[Key, int] = {}
    open_ = set(names)
    done = 0
    checks: list[Check] = []
    problems: list[Problem] = []
    for n in stages:
        run([Job(suite, v, s, out) for s in range(done, n) for v in names if v in open_])
        for v in open_:
            looks[v].append(n)
        done = n
        mine = [r for r in results if r.suite == suite.name]
        env = with_devices(environment, results)
        checks, problems, keys = judge_staged(suite, mine, baseline, env, looks, decided, ignore_expect)
        for key, c in zip(keys, checks):
            if key not in decided and c.comparison.verdict != "inconclusive":
                decided[key] = len(looks[key[1]])
        # a check more seeds cannot decide (`stopped`) keeps no variant running, but sees every seed it ran
        undecided = {key[1] for key, c in zip(keys, checks) if key not in decided and not c.comparison.stopped}
        all_failed = {v for v in open_ if not any(r.ok for r in mine if r.variant == v)}
        open_ = (undecided - all_failed - skip) & open_
        if any(key[0] == "pair" and key[1] in open_ and key not in decided for key in keys):
            open_.add(suite.reference)
        if not open_:
            break
    used = {v: max((r.seed + 1 for r in results if r.suite == suite.name and r.variant == v), default=0)
            for v in names}
    return checks, problems, used, max(len(x) for x in looks.values())


def device_kind(device: str) -> str:
    """A run's device without its index and host: what can change results (`cuda:1 (NVIDIA H200) on n2` ->
    `cuda (NVIDIA H200)`)."""
    return re.sub(r"^cuda:\d+", "cuda", device.split(" on ")[0])


def with_devices(environment: Mapping[str, Any], results: Iterable[RunResult]) -> dict[str, Any]:
    """The environment with the devices the runs used: `devices` lists each, `device` their kinds, and
    `torch_threads` the CPU thread counts they trained with (values differ between counts)."""
    results = list(results)
    devices = sorted({r.device for r in results if r.device})
    kinds = sorted({device_kind(d) for d in devices})
    threads = sorted({r.threads for r in results if r.threads is not None})
    return {**environment, "device": ", ".join(kinds) if kinds else environment.get("device"), "devices": devices,
            **({"torch_threads": ", ".join(map(str, threads))} if threads else {})}


def _update_baseline(plan: RunPlan, s: Suite, mine: list[RunResult], environment: Mapping[str, Any],
                     problems: list[Problem]) -> bool:
    """Store this run's values as the suite's baseline, unless an unexpected run failed (then say so)."""
    if any(not r.ok for r in mine if not s.expects_failure(r.variant)):
        problems.append(Problem(s.name, "*", "baseline_not_updated",
                                "runs failed, so the baseline was left unchanged; fix them and rerun"))
        return False
    try:
        save_baseline(plan.baseline_dir, make_baseline(s, mine, dict(environment)), plan.chosen[s.name].write_path)
    except OSError as e:  # e.g. the disk filled up while training: keep the verdicts, say so
        problems.append(Problem(s.name, "*", "write_failed", f"could not write the baseline "
                                f"{plan.chosen[s.name].write_path}: {e.strerror or e}"))
        return False
    return True


def _suite_info(plan: RunPlan, s: Suite, used: dict[str, int] | None, stages_run: int | None, updated: bool,
                causes: AuditReport | None) -> SuiteInfo:
    chosen = plan.chosen[s.name]
    b = chosen.baseline
    return SuiteInfo(
        name=s.name, path=str(s.path), digest=s.digest, reference=s.reference, alpha=s.stats.alpha,
        seeds=tuple(range(max(used.values(), default=0))) if used else s.seeds,
        metrics=s.metrics,
        run_dir=str(plan.run_dir(s)), baseline=str(chosen.path) if b else None,
        baseline_note=f"baseline written to {chosen.write_path}" if updated and chosen.keyed else chosen.note,
        baseline_environment=dict(b.environment) if b else None, baseline_updated=updated,
        design=s.stats.design, correction=s.stats.correction,
        seed_plan=s.seed_plan, spending=s.stats.spending,
        stages_run=stages_run, seeds_used=used, baseline_values=b.values if b else None, audit=causes)


def judge_run(plan: RunPlan, execution: Execution, *, ignore_expect: bool = False, update_baseline: bool = False,
              audit: bool = True) -> Report:
    """Judge every suite's runs (pairs, baselines), store baselines when asked, attach the audit of failing pairs."""
    environment = with_devices(plan.environment, execution.results)
    checks: list[Check] = []
    problems: list[Problem] = []
    infos: list[SuiteInfo] = []
    curves: list[CurveCheck] = []
    for s in plan.suites:
        mine = [r for r in execution.results if r.suite == s.name]
        if s.name in execution.staged:
            c, p, used, stages_run = execution.staged[s.name]
        else:
            c, p = judge(s, mine, plan.baseline(s), environment, ignore_expect)
            used, stages_run = None, None
        p = list(p)
        updated = _update_baseline(plan, s, mine, environment, p) if update_baseline else False
        failing = sorted({ch.comparison.b for ch in c if ch.kind == "pair" and (ch.failed or ch.expected_failure)})
        causes = None
        if audit and failing:
            from normreg.auditing import likely_causes  # never raises: an audit failure must not break a run

            causes = likely_causes(s, failing)
        checks += c
        problems += p
        curves += curve_checks(s, mine, ignore_expect)
        infos.append(_suite_info(plan, s, used, stages_run, updated, causes))
    return Report(created=environment["date"], environment=environment, suites=tuple(infos),
                  runs=tuple(sorted(execution.results, key=lambda r: (r.suite, r.variant, r.seed))),
                  checks=tuple(checks), problems=tuple(problems), command="run", curves=tuple(curves))


def write_report(report: Report, plan: RunPlan) -> Path:
    """`report.json` in the run directory, atomically; returns its path."""
    path = plan.out / "report.json"
    report.write(path)
    return path


def run_suites(
    paths: Sequence[str | Path] | Sequence[Suite],
    *,
    executor: Executor,
    seeds: Seeds = None,
    out: Path | None = None,
    resume: Path | None = None,
    baselines: Path = Path("baselines"),
    update_baseline: bool = False,
    overrides: Sequence[str] = (),
    ignore_expect: bool = False,
    progress: Callable[[Progress], None] | None = None,
    preflight: bool = True,
    audit: bool | None = None,
    baseline_key: str | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Report:
    """Train and judge every suite in `paths` (files, folders, or suites `load_suites` returned) with `executor`;
    see the README for what each option does.

    `preflight`: import and build every target before training (skipped when the executor trains nothing).
    `audit`: attach `normreg audit`'s findings to suites with a failing (or expected-failing) pair as the likely
    cause; default: when the executor trains. `baseline_key`: keep baselines per this key (`device`), `none` for
    one plain baseline per suite; default: each suite's `baseline_key`. Writes `report.json` into the run directory
    and returns the report.

    `out`: the run directory (default: a new `runs/<timestamp>`); `resume`: an interrupted run's directory, whose
    finished ok runs are reused (`out` must then be None or the same). The directory is locked from planning until
    the report is written: a second process writing into it is refused. `on_run_dir` hears the directory as soon
    as it is held; `on_note` anything worth telling that is not a verdict (runs reused, a changed environment).
    """
    plan = plan_run(paths, device=lambda: executor.device, seeds=seeds, out=out, resume=resume, baselines=baselines,
                    overrides=overrides, baseline_key=baseline_key, check_targets=preflight and executor.trains,
                    update_baseline=update_baseline, warm_up=executor.warm_up)
    with plan.rundir:
        if on_run_dir:
            on_run_dir(plan.out)
        try:
            note_phase("training")
            execution = execute(plan, executor, ignore_expect=ignore_expect, progress=progress, on_note=on_note)
            note_phase("judging")
            report = judge_run(plan, execution, ignore_expect=ignore_expect, update_baseline=update_baseline,
                               audit=executor.trains if audit is None else audit)
        except Interrupted as e:
            raise Interrupted(e.signum, None if plan.rundir.discard() else plan.out) from None
        except KeyboardInterrupt as e:  # a signal outside the executor's handlers (or a run in this process)
            signum = e.signum if isinstance(e, Stop) else (RECEIVED[0] if RECEIVED else None)
            if signum is None:
                raise  # user code's own KeyboardInterrupt, outside any run
            raise Interrupted(signum, None if plan.rundir.discard() else plan.out) from None
        try:
            write_report(report, plan)  # still under the lock: no other run can replace it meanwhile
        except OSError as e:  # everything trained: the verdicts are returned all the same, with what failed
            problem = Problem(plan.suites[0].name, "*", "write_failed",
                              f"could not write {plan.out / 'report.json'}: {e.strerror or e}")
            report = replace(report, problems=(*report.problems, problem))
    return report


def pilot_run(*, executor: Executor, baselines: Path = Path("baselines"), overrides: Sequence[str] = (),
              progress: Callable[[Progress], None] | None = None,
              on_start: Callable[[Path], None] | None = None) -> PilotRun:
    """For `normreg plan`: a function that runs a suite with N seeds in a fresh temporary run directory and
    returns its per-seed values (`on_start` is told where, before training starts). The pilot's values are read
    at once, and its run directory is not left in the temporary folder."""
    def run(suite_path: Path, seeds: int) -> ResultSet:
        import shutil
        import tempfile

        name = load_suite(suite_path, overrides).name
        out_dir = Path(tempfile.mkdtemp(prefix=f"normreg-pilot-{name}-"))
        try:
            if on_start is not None:
                on_start(out_dir)
            run_suites([suite_path], executor=executor, seeds=seeds, out=out_dir, baselines=baselines,
                       overrides=overrides, progress=progress)
            return load_result_set(str(out_dir / name))
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    return run
