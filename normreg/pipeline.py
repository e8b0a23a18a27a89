"""`run`: load suites, train every (variant, seed), judge pairs and baselines, return a Report.

Finished runs reach the run directory as they finish; the baseline is written only when asked, atomically.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from normreg.environment import fingerprint
from normreg.errors import InputError
from normreg.fileio import write_json_atomic
from normreg.judge.baseline import Baseline, choose_baseline, make_baseline, save_baseline
from normreg.judge.checks import Check, Key, Problem, judge, judge_staged
from normreg.report.model import Report, SuiteInfo
from normreg.run.results import RunLog, RunResult
from normreg.run.runner import Job, LightningRunner, Runner, plan_jobs
from normreg.suite.spec import SeedPlan, Suite, discover, load_suite


@dataclass(frozen=True)
class Progress:
    """What a progress display needs after each finished run."""

    result: RunResult
    done: int
    total: int
    elapsed_s: float
    running: tuple[Job, ...]


def default_out_dir() -> Path:
    """`runs/<timestamp>`, with a suffix when a run started in the same second already took that name."""
    base = Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def load_suites(paths: Sequence[str | Path], overrides: Sequence[str] = (),
                seeds: int | str | None = None) -> list[Suite]:
    """Load every suite named or found in the folders named; `seeds` replaces each suite's seeds with 0..N-1,
    or with "auto" stages them (the suite's own `seeds: {min, max}`, else min 3, max 20)."""
    from dataclasses import replace

    suites = [load_suite(p, overrides) for p in discover(paths)]
    if seeds == "auto":
        suites = [s if s.seed_plan else replace(s, seed_plan=SeedPlan(), seeds=tuple(range(SeedPlan().max)))
                  for s in suites]
    elif seeds is not None:
        suites = [replace(s, seeds=tuple(range(int(seeds))), seed_plan=None) for s in suites]
    names = [s.name for s in suites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        from normreg.errors import SuiteError

        raise SuiteError(f"two suites share the name {', '.join(dupes)}; give each a distinct 'name'")
    return suites


def _run_staged(suite: Suite, out: Path, runner: Runner, baseline: Baseline | None, environment: dict,
                ignore_expect: bool, run: Callable[[list[Job]], None],
                results: list[RunResult]) -> tuple[list[Check], list[Problem], dict[str, int], int]:
    """Run a suite's seeds stage by stage; after each stage stop every variant whose checks are all decisive."""
    assert suite.seed_plan is not None
    stages = suite.seed_plan.stages
    names = [v.name for v in suite.variants]
    skip = {v for v in names if not ignore_expect and suite.expected(v, "*") == "failed"}
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
        checks, problems, keys = judge_staged(suite, mine, baseline, environment, looks, decided, ignore_expect)
        for key, c in zip(keys, checks):
            if key not in decided and c.comparison.verdict != "inconclusive":
                decided[key] = len(looks[key[1]])
        undecided = {key[1] for key, c in zip(keys, checks) if key not in decided}
        all_failed = {v for v in open_ if not any(r.ok for r in mine if r.variant == v)}
        open_ = (undecided - all_failed - skip) & open_
        if any(key[0] == "pair" and key[1] in open_ for key in keys):
            open_.add(suite.reference)
        if not open_:
            break
    used = {v: max((r.seed + 1 for r in results if r.suite == suite.name and r.variant == v), default=0)
            for v in names}
    return checks, problems, used, max(len(x) for x in looks.values())


def run_suites(
    paths: Sequence[str | Path],
    *,
    seeds: int | None = None,
    workers: int | None = None,
    out: Path | None = None,
    baselines: Path = Path("baselines"),
    update_baseline: bool = False,
    overrides: Sequence[str] = (),
    ignore_expect: bool = False,
    runner: Runner | None = None,
    progress: Callable[[Progress], None] | None = None,
    preflight: bool = True,
    audit: bool | None = None,
    baseline_key: str | None = None,
) -> Report:
    """Train and judge every suite in `paths`; see the README for what each option does.

    `audit`: run `normreg audit` on suites with a failing (or expected-failing) pair and attach its findings as
    the likely cause; default: when training for real (no runner given). `baseline_key`: keep baselines per
    this key (`device`), `none` for one plain baseline per suite; default: each suite's `baseline_key`.
    """
    if audit is None:
        audit = runner is None
    suites = load_suites(paths, overrides, seeds)
    if runner is None:
        from normreg.run.runner import device_name

        device = device_name()
    else:
        device = str(getattr(runner, "device", "fake"))  # a scripted runner says which device it plays
    # a bad baseline fails before training
    chosen = {s.name: choose_baseline(baselines, s.name, baseline_key or s.baseline_key, {"device": device})
              for s in suites}
    stored = {name: c.baseline for name, c in chosen.items()}
    out = out or default_out_dir()
    taken = [str(out / s.name) for s in suites if (out / s.name / "results.csv").exists()]
    if taken:
        # Appending would mix two runs in one table; overwriting would lose one. Neither is acceptable.
        raise InputError(f"{', '.join(taken)} already holds the results of an earlier run; give another --out "
                         "or move that directory away")
    if runner is None:
        from normreg.suite.targets import preflight as check_targets

        if preflight:
            for s in suites:
                check_targets(s)
        runner = LightningRunner(workers)
    environment = fingerprint(device, suites[0].directory)
    logs = {}
    for s in suites:
        d = out / s.name
        logs[s.name] = RunLog(d)
        write_json_atomic(d / "run.json", {
            "suite": s.name, "path": str(s.path), "digest": s.digest, "reference": s.reference,
            "alpha": s.stats.alpha, "seeds": list(s.seeds), "variants": [v.name for v in s.variants],
            "stats": {"design": s.stats.design, "correction": s.stats.correction, "spending": s.stats.spending},
            "seed_plan": {"min": s.seed_plan.min, "max": s.seed_plan.max} if s.seed_plan else None,
            "metrics": {m.name: {"goal": m.goal, "min_effect": m.min_effect} for m in s.metrics},
            "environment": environment,
        })
    jobs = [j for s in suites if s.seed_plan is None for j in plan_jobs(s, out / s.name)]
    results: list[RunResult] = []
    running: list[Job] = []
    start = time.perf_counter()

    def on_start(job: Job) -> None:
        running.append(job)

    def on_result(r: RunResult) -> None:
        logs[r.suite].add(r)  # on disk before anything else happens
        results.append(r)
        for j in running:
            if (j.suite.name, j.variant, j.seed) == (r.suite, r.variant, r.seed):
                running.remove(j)
                break
        if progress:
            progress(Progress(r, len(results), len(jobs), time.perf_counter() - start, tuple(running)))

    if jobs:
        runner.run(jobs, on_result, on_start)

    def run_stage(stage_jobs: list[Job]) -> None:
        jobs.extend(stage_jobs)
        runner.run(stage_jobs, on_result, on_start)

    staged = {s.name: _run_staged(s, out / s.name, runner, stored[s.name], environment, ignore_expect, run_stage,
                                  results) for s in suites if s.seed_plan is not None}

    checks: list[Check] = []
    problems: list[Problem] = []
    infos: list[SuiteInfo] = []
    for s in suites:
        mine = [r for r in results if r.suite == s.name]
        if s.name in staged:
            c, p, used, stages_run = staged[s.name]
        else:
            c, p = judge(s, mine, stored[s.name], environment, ignore_expect)
            used, stages_run = None, None
        checks += c
        problems += p
        updated = False
        if update_baseline:
            if any(not r.ok for r in mine if not (s.expected(r.variant, "*") == "failed")):
                problems.append(Problem(s.name, "*", "baseline_not_updated",
                                        "runs failed, so the baseline was left unchanged; fix them and rerun"))
            else:
                save_baseline(baselines, make_baseline(s, mine, environment), chosen[s.name].write_path)
                updated = True
        b = stored[s.name]
        causes = None
        failing = sorted({ch.comparison.b for ch in c if ch.kind == "pair" and (ch.failed or ch.expected_failure)})
        if audit and failing:
            from normreg.audit import likely_causes  # never raises: an audit failure must not break a run

            causes = likely_causes(s, failing)
        infos.append(SuiteInfo(
            name=s.name, path=str(s.path), digest=s.digest, reference=s.reference, alpha=s.stats.alpha,
            seeds=tuple(range(max(used.values(), default=0))) if used else s.seeds,
            metrics={m.name: {"goal": m.goal, "min_effect": m.min_effect} for m in s.metrics},
            run_dir=str(out / s.name), baseline=str(chosen[s.name].path) if b else None,
            baseline_note=(f"baseline written to {chosen[s.name].write_path}" if updated and chosen[s.name].keyed
                           else chosen[s.name].note),
            baseline_environment=dict(b.environment) if b else None, baseline_updated=updated,
            design=s.stats.design, correction=s.stats.correction,
            seed_plan={"min": s.seed_plan.min, "max": s.seed_plan.max, "spending": s.stats.spending,
                       "stages": list(s.seed_plan.stages)} if s.seed_plan else None,
            stages_run=stages_run,
            seeds_used=used,
            baseline_values=b.values if b else None, audit=causes))
    return Report(created=environment["date"], environment=environment, suites=tuple(infos),
                  runs=tuple(sorted(results, key=lambda r: (r.suite, r.variant, r.seed))),
                  checks=tuple(checks), problems=tuple(problems), command="run")
