"""What every report format shows the same way: comparisons ordered failures first, problems grouped."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from normreg.judge.checks import Check, Problem

_SEED = re.compile(r"^seed (\d+): ")


def order(checks: Sequence[Check]) -> list[Check]:
    """Failures first, then known bugs caught as expected, then the rest; by suite, pairs before baselines."""
    def rank(c: Check) -> int:
        return 0 if c.failed else 1 if c.expected_failure else 2

    return sorted(checks, key=lambda c: (rank(c), c.suite, c.kind != "pair", c.comparison.metric, c.comparison.b))


@dataclass(frozen=True)
class ProblemGroup:
    """Problems of one variant, kind and message, e.g. the same crash on every seed."""

    suite: str
    variant: str
    kind: str
    expected: bool
    message: str  # without its "seed N: " prefix
    seeds: tuple[int, ...]  # the seeds named in the messages; empty when they name none


def seed_of(problem: Problem) -> int | None:
    """The seed a run_failed message names (the harness writes "seed N: ..."), or None."""
    m = _SEED.match(problem.message)
    return int(m.group(1)) if m else None


def group_problems(problems: Sequence[Problem]) -> list[ProblemGroup]:
    """Merge problems that differ only in their seed, unexpected ones first."""
    groups: dict[tuple[str, str, str, bool, str], list[int]] = {}
    for p in problems:
        seed = seed_of(p)
        message = _SEED.sub("", p.message, count=1) if seed is not None else p.message
        seeds = groups.setdefault((p.suite, p.variant, p.kind, p.expected, message), [])
        if seed is not None:
            seeds.append(seed)
    out = [ProblemGroup(s, v, k, e, m, tuple(sorted(seeds))) for (s, v, k, e, m), seeds in groups.items()]
    return sorted(out, key=lambda g: (g.expected, g.suite, g.variant))


def describe(group: ProblemGroup) -> str:
    """One line: 'crash: run failed on seeds 0, 1 (expected): RuntimeError: ...'."""
    what = "run failed" if group.kind == "run_failed" else group.kind.replace("_", " ")
    if group.seeds:
        what += f" on seed{'s' * (len(group.seeds) != 1)} {', '.join(map(str, group.seeds))}"
    return f"{group.variant}: {what}{' (expected)' if group.expected else ''}: {group.message}"
