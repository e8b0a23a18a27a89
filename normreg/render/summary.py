"""Problems grouped the same way in every report format: the same failure on several seeds is one line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from normreg.judge.checks import Problem


@dataclass(frozen=True)
class ProblemGroup:
    """Problems of one variant, kind and message, e.g. the same crash on every seed."""

    suite: str
    variant: str
    kind: str
    expected: bool
    message: str
    seeds: tuple[int, ...]  # the seeds of the problems merged; empty when they have none


def group_problems(problems: Sequence[Problem]) -> list[ProblemGroup]:
    """Merge problems that differ only in their seed, unexpected ones first."""
    groups: dict[tuple[str, str, str, bool, str], list[int]] = {}
    for p in problems:
        seeds = groups.setdefault((p.suite, p.variant, p.kind, p.expected, p.message), [])
        if p.seed is not None:
            seeds.append(p.seed)
    out = [ProblemGroup(s, v, k, e, m, tuple(sorted(seeds))) for (s, v, k, e, m), seeds in groups.items()]
    return sorted(out, key=lambda g: (g.expected, g.suite, g.variant))


def describe(group: ProblemGroup) -> str:
    """One line: 'crash: run failed on seeds 0, 1 (expected): RuntimeError: ...'."""
    what = "run failed" if group.kind == "run_failed" else group.kind.replace("_", " ")
    if group.seeds:
        what += f" on seed{'s' * (len(group.seeds) != 1)} {', '.join(map(str, group.seeds))}"
    return f"{group.variant}: {what}{' (expected)' if group.expected else ''}: {group.message}"
