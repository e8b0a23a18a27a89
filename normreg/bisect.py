"""`normreg bisect`: binary search through git history for the first commit where a variant regressed.

Each commit it needs is checked out into a temporary `git worktree` (the user's working tree and index are never
touched), and the variant's seeds are trained there by normreg's local executor in a fresh Python process, so the
suite and the models are exactly those of that commit. Every commit is compared with the good commit's runs by
normreg's verdict rules (`judge.stats`, or staged seeds with `judge.sequential` for `--seeds auto`): `regressed`
makes a commit bad, `improved`/`equivalent`/`inconclusive`-after-the-last-stage good or undecided. A commit
whose suite does not load, or whose runs fail, is skipped as `git bisect skip` does.

Runs are cached per (commit, variant, seed, environment) in a folder (default `~/.cache/normreg/bisect`), so a
second bisect over the same range trains nothing twice. Outcomes: `found` (exit 0), `not_worse` (the bad commit is
not worse than the good one, exit 1), `undecided` (skipped or inconclusive commits hide the culprit, exit 3); bad
input (not a git repository, an unknown revision, good not an ancestor of bad) raises `InputError` (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from normreg.environment import COMPARED_KEYS, fingerprint
from normreg.errors import InputError, NormregError, did_you_mean
from normreg.execution.executor import ExecutorOptions, make_executor, option_values, options_for
from normreg.execution.results import RunResult
from normreg.fileio import write_json_atomic
from normreg.judge.designs import compare_values
from normreg.judge.sequential import sequential_compare
from normreg.judge.stats import Comparison
from normreg.report.bisect import BisectResult, Step
from normreg.suite.model import MetricSpec, SeedPlan, Suite
from normreg.suite.spec import load_suite

# ------------------------------------------------------------------------------------------------- git


def _git(top: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(top), *args], capture_output=True, text=True, timeout=120)


def repository_of(suite: Path) -> tuple[Path, Path]:
    """The top of the git repository holding `suite`, and the suite's path inside it."""
    where = suite.resolve().parent
    if not where.is_dir():
        raise InputError(f"{suite}: no such folder; give the path of a suite file inside a git repository")
    top = _git(where, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise InputError(f"{suite}: not inside a git repository ({top.stderr.strip()}); bisect searches the "
                         "history of the repository that holds the suite")
    root = Path(top.stdout.strip()).resolve()
    return root, suite.resolve().relative_to(root)


def resolve_revision(top: Path, rev: str, option: str) -> str:
    """The full commit id of `rev`; an unknown revision is bad input naming the option."""
    out = _git(top, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if out.returncode != 0 or not out.stdout.strip():
        raise InputError(f"{option} {rev}: unknown revision in {top}; give a commit, branch or tag "
                         "('git log --oneline' lists them)")
    return out.stdout.strip()


def commits_between(top: Path, good: str, bad: str) -> list[str]:
    """Commits after `good` up to and including `bad`, oldest first, on the ancestry path from good to bad."""
    if good == bad:
        raise InputError("--good and --bad name the same commit; give an older good commit")
    if _git(top, "merge-base", "--is-ancestor", good, bad).returncode != 0:
        raise InputError(f"--good {good[:10]} is not an ancestor of --bad {bad[:10]}; bisect needs a good commit "
                         "older than the bad one on its history")
    out = _git(top, "rev-list", "--reverse", "--topo-order", "--ancestry-path", f"{good}..{bad}")
    return out.stdout.split()


def subject(top: Path, commit: str) -> str:
    return _git(top, "log", "-1", "--format=%s", commit).stdout.strip()


def diff_stat(top: Path, commit: str) -> str:
    """`git diff --stat` of a commit against its first parent (of the empty tree for a root commit)."""
    parent = _git(top, "rev-parse", "--verify", "--quiet", f"{commit}^")
    base = parent.stdout.strip() if parent.returncode == 0 else "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    return _git(top, "diff", "--stat", base, commit).stdout.rstrip()


# ----------------------------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class RunCache:
    """Finished runs per (commit, variant, seed, environment) under `folder`, one small JSON file each."""

    folder: Path
    environment_key: str

    def _path(self, commit: str, variant: str, seed: int) -> Path:
        return self.folder / commit / self.environment_key / variant / f"seed{seed}.json"

    def get(self, commit: str, variant: str, seed: int) -> RunResult | None:
        path = self._path(commit, variant, seed)
        try:
            return RunResult.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, commit: str, run: RunResult) -> None:
        write_json_atomic(self._path(commit, run.variant, run.seed), run.to_json())

    def load_error(self, commit: str) -> str | None:
        path = self.folder / commit / self.environment_key / "load_error.txt"
        return path.read_text(encoding="utf-8") if path.exists() else None

    def put_load_error(self, commit: str, message: str) -> None:
        path = self.folder / commit / self.environment_key / "load_error.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message, encoding="utf-8")


def environment_key(environment: Mapping[str, Any], overrides: Sequence[str] = ()) -> str:
    """A short hash of what can change a run's result besides the commit: versions, device, platform, --set."""
    basis = {k: environment.get(k) for k in COMPARED_KEYS} | {"overrides": list(overrides)}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "normreg" / "bisect"


# --------------------------------------------------------------------------------------- running a commit


# Runs `variant`'s seeds of the suite at `suite_path` (inside a worktree) and appends each RunResult as a JSON
# line to `out`; a suite that does not load writes {"load_error": ...}. Tests may pass another one.
Execute = Callable[[Path, Path, str, Sequence[int], Sequence[str], Path], None]


def execute_in_subprocess(worktree: Path, suite_path: Path, variant: str, seeds: Sequence[int],
                          overrides: Sequence[str], out: Path, executor: str = "local",
                          executor_options: Mapping[str, Any] | None = None) -> None:
    """Train in a fresh Python process started in the worktree, so every module is imported from that commit;
    the executor `executor` with `executor_options` (field: value) trains there."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(worktree), *filter(None, [env.get("PYTHONPATH")])])
    args = {"suite": str(suite_path), "variant": variant, "seeds": list(seeds), "overrides": list(overrides),
            "out": str(out), "executor": executor,
            "options": dict(executor_options or {})}
    code = "import json, sys; from normreg.bisect import run_child; run_child(json.loads(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=worktree, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0 and not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"load_error": f"the training process exited with code {proc.returncode}: "
                                              f"{tail[0]}"}) + "\n")


def run_child(args: Mapping[str, Any]) -> None:
    """The body of the training process: load the suite as it is at this commit and run the variant's seeds."""
    from normreg.execution.executor import Job

    out = Path(args["out"])

    def write(record: Mapping[str, Any]) -> None:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    try:
        suite = load_suite(Path(args["suite"]), args["overrides"])
        suite.variant(args["variant"])
    except NormregError as e:
        write({"load_error": f"{type(e).__name__}: {e}"})
        return
    except KeyError:
        write({"load_error": f"the suite has no variant '{args['variant']}' at this commit"})
        return
    suite = replace(suite, seeds=tuple(args["seeds"]), seed_plan=None)
    jobs = [Job(suite, args["variant"], s) for s in args["seeds"]]
    with make_executor(args["executor"], args["options"]) as executor:
        executor.run(jobs, lambda r: write(r.to_json()))


# ----------------------------------------------------------------------------------------------- results


# ------------------------------------------------------------------------------------------------ search


@dataclass
class _Commits:
    """Runs per commit, from the cache or trained in a temporary worktree (made when first needed)."""

    top: Path
    rel_suite: Path
    variant: str
    metric: str
    overrides: Sequence[str]
    cache: RunCache
    execute: Execute
    scratch: Path
    counts: dict[str, list[int]] = field(default_factory=dict)  # commit -> [trained, cached]

    def runs(self, commit: str, seeds: Sequence[int], count_cached: bool = True) -> tuple[dict[int, RunResult],
                                                                                        str | None]:
        """The runs of `seeds` at `commit`, and the reason the suite could not be used there, if any."""
        counts = self.counts.setdefault(commit, [0, 0])
        error = self.cache.load_error(commit)
        if error is not None:
            return {}, error
        have: dict[int, RunResult] = {}
        for s in seeds:
            hit = self.cache.get(commit, self.variant, s)
            if hit is not None:
                have[s] = hit
                counts[1] += count_cached
        missing = [s for s in seeds if s not in have]
        if not missing:
            return have, None
        tree = self.scratch / commit[:12]
        added = _git(self.top, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        if added.returncode != 0:
            raise NormregError(f"git worktree add failed for {commit[:10]}: {added.stderr.strip()}")
        try:
            out = self.scratch / f"{commit[:12]}-{len(have)}.jsonl"
            self.execute(tree, tree / self.rel_suite, self.variant, missing, self.overrides, out)
            records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()] \
                if out.exists() else [{"load_error": "the training process wrote no results"}]
        finally:
            _git(self.top, "worktree", "remove", "--force", str(tree))
        for rec in records:
            if "load_error" in rec:
                self.cache.put_load_error(commit, rec["load_error"])
                return {}, rec["load_error"]
            run = RunResult.from_json(rec)
            self.cache.put(commit, run)
            have[run.seed] = run
            counts[0] += 1
        lost = [s for s in missing if s not in have]
        if lost:  # the process died before these finished: not cached, tried again next time
            return have, f"the training process ended before seed(s) {', '.join(map(str, lost))} finished"
        return have, None


def _values(runs: Mapping[int, RunResult], metric: str) -> tuple[dict[int, float], str | None]:
    failed = [r for r in runs.values() if not r.ok]
    if failed:
        return {}, f"{len(failed)} of {len(runs)} runs failed: seed {failed[0].seed}: {failed[0].error}"
    missing = [r.seed for r in runs.values() if metric not in r.metrics]
    if missing:
        return {}, f"the runs do not log '{metric}' (seed {missing[0]})"
    return {s: runs[s].metrics[metric] for s in sorted(runs)}, None


def bisect(suite: str | Path, good: str, bad: str, *, variant: str | None = None, metric: str | None = None,
           seeds: int | str | None = None, cache: Path | None = None, overrides: Sequence[str] = (),
           execute: Execute | None = None, workers: int | None = None, device: str | None = None,
           on_step: Callable[[Step], None] | None = None, executor: str = "local",
           executor_options: ExecutorOptions | Mapping[str, Any] | None = None) -> BisectResult:
    """Find the first commit between `good` and `bad` where `variant` regressed on `metric` (see the module doc).

    `seeds`: N seeds per commit, or "auto" for staged seeds (the suite's `{min, max}`, else 3..20); default the
    suite's seeds at the bad commit. `device` keys the cache (default: this machine's, which imports torch).
    `executor` and `executor_options` (its Options, or field: value) train each commit's runs (`workers`: the
    local executor's worker processes).
    """
    given = option_values(options_for(executor, executor_options))
    if workers is not None:
        given["workers"] = workers
    options = options_for(executor, given)
    top, rel = repository_of(Path(suite))
    good_sha = resolve_revision(top, good, "--good")
    bad_sha = resolve_revision(top, bad, "--bad")
    candidates = commits_between(top, good_sha, bad_sha)
    spec_suite = _suite_at(top, bad_sha, rel, overrides)
    variant = variant or spec_suite.reference
    names = spec_suite.variant_names
    if variant not in names:
        raise InputError(f"--variant {variant}: the suite at {bad_sha[:10]} has no such variant."
                         f"{did_you_mean(variant, names)} Variants: {', '.join(names)}")
    metric = metric or spec_suite.metrics[0].name
    try:
        spec = spec_suite.metric(metric)
    except KeyError:
        raise InputError(f"--metric {metric}: the suite at {bad_sha[:10]} declares no such metric; it declares "
                         f"{', '.join(m.name for m in spec_suite.metrics)}") from None
    if device is None:
        device = make_executor(executor, options).device
    environment = fingerprint(device, top)
    environment.pop("git_commit", None)  # the commit is part of each cache entry, not of the environment
    folder = cache or default_cache()
    run_cache = RunCache(folder, environment_key(environment, overrides))
    stages = _stages(spec_suite, seeds)
    scratch = Path(tempfile.mkdtemp(prefix="normreg-bisect-"))
    ex = execute or (lambda t, s, v, sd, o, out: execute_in_subprocess(t, s, v, sd, o, out, executor, given))
    commits = _Commits(top, rel, variant, metric, overrides, run_cache, ex, scratch)
    try:
        return _search(top, spec_suite, spec, variant, good_sha, bad_sha, candidates, stages, seeds == "auto",
                       commits, on_step, str(folder), environment)
    finally:
        _git(top, "worktree", "prune")
        shutil.rmtree(scratch, ignore_errors=True)


def _suite_at(top: Path, commit: str, rel: Path, overrides: Sequence[str]) -> Suite:
    """The suite file as it is at `commit` (read with `git show`, nothing checked out), loaded and validated."""
    shown = _git(top, "show", f"{commit}:{rel.as_posix()}")
    if shown.returncode != 0:
        raise InputError(f"{rel} does not exist at --bad {commit[:10]}; give the suite's path as it is there")
    folder = Path(tempfile.mkdtemp(prefix="normreg-suite-"))
    try:
        path = folder / rel.name
        path.write_text(shown.stdout, encoding="utf-8")
        return load_suite(path, overrides)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stages(suite: Suite, seeds: int | str | None) -> tuple[int, ...]:
    if seeds == "auto":
        return (suite.seed_plan or SeedPlan()).stages
    n = int(seeds) if seeds is not None else len(suite.seeds)
    if n < 2:
        raise InputError(f"--seeds {seeds}: a comparison needs at least 2 seeds per commit")
    return (n,)


def _search(top: Path, suite: Suite, spec: MetricSpec, variant: str, good: str, bad: str,
            candidates: list[str], stages: tuple[int, ...], staged: bool, commits: _Commits,
            on_step: Callable[[Step], None] | None, cache: str, environment: Mapping[str, Any]) -> BisectResult:
    steps: list[Step] = []

    def look(commit: str, role: str) -> Step:
        step = _judge_commit(commit, role, subject(top, commit), good, suite, spec, stages, staged, commits)
        steps.append(step)
        if on_step:
            on_step(step)
        return step

    def result(outcome: str, culprit: str | None = None, suspects: Sequence[str] = ()) -> BisectResult:
        return BisectResult(suite.name, variant, spec.name, good, bad, tuple(candidates), tuple(steps), outcome,
                            culprit, subject(top, culprit) if culprit else "",
                            diff_stat(top, culprit) if culprit else "", tuple(suspects), cache, environment)

    first = look(good, "good")
    if first.status == "skip":
        return result("undecided")
    last = look(bad, "bad")
    if last.status == "skip":
        return result("undecided", suspects=candidates)
    if last.status != "bad":
        return result("not_worse")
    lo, hi = -1, len(candidates) - 1  # candidates[lo] is good (-1: the good commit), candidates[hi] is bad
    skipped: set[int] = set()
    while True:
        open_ = [i for i in range(lo + 1, hi) if i not in skipped]
        if not open_:
            suspects = [candidates[i] for i in range(lo + 1, hi + 1)]
            return result("found", candidates[hi]) if len(suspects) == 1 else result("undecided", None, suspects)
        mid = (lo + hi) // 2
        pick = min(open_, key=lambda i: (abs(i - mid), i))  # nearest untested commit, as git bisect skip does
        status = look(candidates[pick], "step").status
        if status == "bad":
            hi = pick
        elif status == "good":
            lo = pick
        else:
            skipped.add(pick)


def _judge_commit(commit: str, role: str, title: str, good: str, suite: Suite, spec: MetricSpec,
                  stages: tuple[int, ...], staged: bool, commits: _Commits) -> Step:
    """Run `commit`'s seeds (stage by stage when staged) and compare them with the good commit's."""
    values: dict[int, float] = {}
    comparison: Comparison | None = None
    reference: dict[int, float] = {}
    looks: tuple[list[dict[int, float]], list[dict[int, float]]] = ([], [])
    for k, n in enumerate(stages):
        runs, error = commits.runs(commit, range(n))
        if error is None:
            values, error = _values(runs, spec.name)
        if error is not None:
            return _step(role, commit, title, "skip", values, None, f"skipped: {error}", commits)
        if role == "good":
            return _step(role, commit, title, "good", values, None, "the good commit: the reference", commits)
        good_runs, good_error = commits.runs(good, range(n), count_cached=False)  # the reference, read again
        reference, good_error = _values(good_runs, spec.name) if good_error is None else ({}, good_error)
        if good_error is not None:
            return _step(role, commit, title, "skip", values, None, f"skipped: the good commit: {good_error}",
                         commits)
        if not staged:
            comparison = compare_values(reference, values, spec, alpha=suite.stats.alpha, design=suite.stats.design,
                                        a_name="good", b_name=commit[:10])
            break
        looks[0].append(dict(reference))
        looks[1].append(dict(values))
        comparison = sequential_compare(looks[0], looks[1], spec, n_max=(stages[-1], stages[-1]),
                                        final=k == len(stages) - 1, alpha=suite.stats.alpha,
                                        design=suite.stats.design, spending=suite.stats.spending,
                                        a_name="good", b_name=commit[:10])
        if comparison.verdict != "inconclusive":
            break
    assert comparison is not None
    verdict = comparison.verdict
    if verdict == "regressed":
        status = "bad"
    elif verdict in ("improved", "equivalent", "identical") or role == "bad":
        status = "good"
    else:
        status = "skip"
    reason = comparison.reason if status != "skip" else f"undecided: {comparison.reason}"
    return _step(role, commit, title, status, values, comparison, reason, commits)


def _step(role: str, commit: str, title: str, status: str, values: Mapping[int, float], comparison: Comparison | None,
          reason: str, commits: _Commits) -> Step:
    # every run trained or read since the last step (this commit's, and the good commit's extra seeds)
    trained = sum(c[0] for c in commits.counts.values())
    cached = sum(c[1] for c in commits.counts.values())
    commits.counts.clear()
    return Step(role, commit, title, status, dict(values), comparison, reason, trained, cached)
