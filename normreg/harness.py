"""`run`: load suites, train every (variant, seed), judge pairs and baselines, return a Report.

Finished runs reach the run directory as they finish; the baseline is written only when asked, atomically.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from normreg.baseline import Baseline, baseline_path, load_baseline, make_baseline, save_baseline
from normreg.environment import differences, fingerprint
from normreg.fileio import write_json_atomic
from normreg.report import Check, Problem, Report, SuiteInfo
from normreg.results import RunLog, RunResult
from normreg.runner import Job, LightningRunner, Runner, plan_jobs
from normreg.stats import welch
from normreg.suite import Suite, discover, load_suite


@dataclass(frozen=True)
class Progress:
    """What a progress display needs after each finished run."""

    result: RunResult
    done: int
    total: int
    elapsed_s: float
    running: tuple[Job, ...]


def default_out_dir() -> Path:
    return Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def load_suites(paths: Sequence[str | Path], overrides: Sequence[str] = (), seeds: int | None = None) -> list[Suite]:
    """Load every suite named or found in the folders named; `seeds` replaces each suite's seeds with 0..N-1."""
    suites = [load_suite(p, overrides) for p in discover(paths)]
    if seeds is not None:
        from dataclasses import replace

        suites = [replace(s, seeds=tuple(range(seeds))) for s in suites]
    names = [s.name for s in suites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        from normreg.errors import SuiteError

        raise SuiteError(f"two suites share the name {', '.join(dupes)}; give each a distinct 'name'")
    return suites


def judge(suite: Suite, runs: Sequence[RunResult], baseline: Baseline | None, environment: dict,
          ignore_expect: bool = False) -> tuple[list[Check], list[Problem]]:
    """Pair checks (each variant vs the reference) and baseline checks, plus problems from failed runs."""
    checks: list[Check] = []
    problems: list[Problem] = []
    ok: dict[str, dict[str, list[float]]] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        if r.ok:
            for m in suite.metrics:
                ok.setdefault(r.variant, {}).setdefault(m.name, []).append(r.metrics[m.name])
    alpha = suite.stats.alpha
    for v in suite.variants:
        mine = [r for r in runs if r.variant == v.name]
        bad = [r for r in mine if not r.ok]
        expect_failed = not ignore_expect and suite.expected(v.name, "*") == "failed"
        for r in bad:
            problems.append(Problem(suite.name, v.name, "run_failed", f"seed {r.seed}: {r.error}", expect_failed))
        if expect_failed:
            if len(bad) < len(mine):
                problems.append(Problem(suite.name, v.name, "expected_failure_missing",
                                        f"expected every run to fail, but {len(mine) - len(bad)} of {len(mine)} "
                                        "succeeded: the known bug is no longer reproduced"))
            continue
        for m in suite.metrics:
            values = ok.get(v.name, {}).get(m.name, [])
            if v.name != suite.reference:
                ref = ok.get(suite.reference, {}).get(m.name, [])
                expected = None if ignore_expect else suite.expected(v.name, m.name)
                checks.append(Check(suite.name, "pair", welch(ref, values, m, alpha=alpha, a_name=suite.reference,
                                                              b_name=v.name), expected))
            if baseline is not None and v.name in baseline.values and m.name in baseline.values[v.name]:
                stored = baseline.values[v.name][m.name]
                env_diff = differences(baseline.environment, environment)
                if baseline.suite_digest and baseline.suite_digest != suite.digest:
                    env_diff["suite_digest"] = [baseline.suite_digest[:12], suite.digest[:12]]
                checks.append(Check(suite.name, "baseline",
                                    welch([stored[s] for s in sorted(stored)], values, m, alpha=alpha,
                                          a_name=f"baseline:{v.name}", b_name=v.name),
                                    None, env_diff))
    return checks, problems


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
) -> Report:
    """Train and judge every suite in `paths`; see the README for what each option does.

    `audit`: run `normreg audit` on suites with a failing (or expected-failing) pair and attach its findings as
    the likely cause; default: when training for real (no runner given).
    """
    if audit is None:
        audit = runner is None
    suites = load_suites(paths, overrides, seeds)
    stored = {s.name: load_baseline(baselines, s.name) for s in suites}  # a bad baseline fails before training
    if runner is None:
        from normreg.runner import device_name
        from normreg.targets import preflight as check_targets

        if preflight:
            for s in suites:
                check_targets(s)
        runner = LightningRunner(workers)
        device = device_name()
    else:
        device = "fake"
    environment = fingerprint(device, suites[0].directory)
    out = out or default_out_dir()
    logs = {}
    for s in suites:
        d = out / s.name
        logs[s.name] = RunLog(d)
        write_json_atomic(d / "run.json", {
            "suite": s.name, "path": str(s.path), "digest": s.digest, "reference": s.reference,
            "alpha": s.stats.alpha, "seeds": list(s.seeds), "variants": [v.name for v in s.variants],
            "metrics": {m.name: {"goal": m.goal, "min_effect": m.min_effect} for m in s.metrics},
            "environment": environment,
        })
    jobs = [j for s in suites for j in plan_jobs(s, out / s.name)]
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

    runner.run(jobs, on_result, on_start)

    checks: list[Check] = []
    problems: list[Problem] = []
    infos: list[SuiteInfo] = []
    for s in suites:
        mine = [r for r in results if r.suite == s.name]
        c, p = judge(s, mine, stored[s.name], environment, ignore_expect)
        checks += c
        problems += p
        updated = False
        if update_baseline:
            if any(not r.ok for r in mine if not (s.expected(r.variant, "*") == "failed")):
                problems.append(Problem(s.name, "*", "baseline_not_updated",
                                        "runs failed, so the baseline was left unchanged; fix them and rerun"))
            else:
                save_baseline(baselines, make_baseline(s, mine, environment))
                updated = True
        b = stored[s.name]
        causes = None
        failing = sorted({ch.comparison.b for ch in c if ch.kind == "pair" and (ch.failed or ch.expected_failure)})
        if audit and failing:
            from normreg.audit import likely_causes  # never raises: an audit failure must not break a run

            causes = likely_causes(s, failing)
        infos.append(SuiteInfo(
            name=s.name, path=str(s.path), digest=s.digest, reference=s.reference, alpha=s.stats.alpha,
            seeds=s.seeds, metrics={m.name: {"goal": m.goal, "min_effect": m.min_effect} for m in s.metrics},
            run_dir=str(out / s.name), baseline=str(baseline_path(baselines, s.name)) if b else None,
            baseline_environment=dict(b.environment) if b else None, baseline_updated=updated, audit=causes))
    return Report(created=environment["date"], environment=environment, suites=tuple(infos),
                  runs=tuple(sorted(results, key=lambda r: (r.suite, r.variant, r.seed))),
                  checks=tuple(checks), problems=tuple(problems), command="run")
