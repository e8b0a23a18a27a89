"""The public Python API: `normreg.run`, `normreg.compare`, `normreg.audit` (re-exported lazily by the package).

Thin, stable signatures over the library's entry points; each returns the report object the CLI renders and
raises `normreg.errors.NormregError` subclasses where the CLI would exit 2 or 3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normreg.choices import DEFAULT_DESIGN

if TYPE_CHECKING:
    from normreg.auditing.findings import AuditReport
    from normreg.execution.executor import Executor, ExecutorOptions
    from normreg.report.model import Report

PathLike = str | Path


def run(suites: PathLike | Sequence[PathLike], *, seeds: int | str | None = None, workers: int | None = None,
        out: PathLike | None = None, baselines: PathLike = "baselines", update_baseline: bool = False,
        overrides: Sequence[str] = (), ignore_expect: bool = False, executor: Executor | str = "local",
        executor_options: ExecutorOptions | Mapping[str, Any] | None = None) -> Report:
    """`normreg run`: train and judge every suite (a file or a folder of them); returns the Report, whose
    `exit_code`, `verdict`, `checks` and `runs` say what happened. `report.json` is written in the run directory.
    `executor`: what trains, an Executor or a registered name ("local", "ray", "slurm"), built with
    `executor_options` (its Options, or {field: value}, e.g. {"partition": "gpu"}); `workers` is the local
    executor's worker processes."""
    from normreg.execution.executor import make_executor, option_values, options_for
    from normreg.pipeline import run_suites

    paths = [suites] if isinstance(suites, (str, Path)) else list(suites)
    out_dir = Path(out) if out is not None else None  # None: a new runs/<timestamp>, removed if nothing trains
    if isinstance(executor, str):
        given = option_values(options_for(executor, executor_options))
        executor = make_executor(executor, {**given, **({} if workers is None else {"workers": workers})})
    with executor as ex:
        return run_suites(paths, executor=ex, seeds=seeds, out=out_dir, baselines=Path(baselines),
                          update_baseline=update_baseline, overrides=overrides, ignore_expect=ignore_expect)


def compare(a: PathLike, b: PathLike, *, metrics: Sequence[str] = (), alpha: float | None = None,
            goal: str | None = None, min_effect: float | None = None, mode: str = "pair", design: str = DEFAULT_DESIGN,
            correction: str = "holm") -> Report:
    """`normreg compare`: verdicts between two result sets on disk (report, run directory, baseline or tidy
    CSV, each optionally `PATH#variant`); trains nothing."""
    from normreg.comparison import compare as compare_sets

    return compare_sets(str(a), str(b), metrics=tuple(metrics), alpha=alpha, goal=goal, min_effect=min_effect,
                        mode=mode, design=design, correction=correction)


def audit(suite: PathLike, *, variants: Sequence[str] = (), seed: int | None = None,
          overrides: Sequence[str] = ()) -> AuditReport:
    """`normreg audit`: the BatchNorm-trap findings of a suite's models, without training."""
    from normreg.auditing.run import audit_suite

    return audit_suite(suite, variants=tuple(variants), seed=seed, overrides=tuple(overrides))
