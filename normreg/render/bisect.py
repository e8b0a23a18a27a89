"""`normreg bisect`'s terminal view: one line per commit looked at, then the outcome."""

from __future__ import annotations

from collections.abc import Mapping

from normreg.judge.stats import mean_sd
from normreg.render.labels import mean_pm_sd, p_value, signed
from normreg.report.bisect import BisectResult, Step


def describe_values(values: Mapping[int, float]) -> str:
    """A commit's values of the metric: mean ± sd (n), or `-` when it has none."""
    if not values:
        return "-"
    mean, sd = mean_sd(list(values.values()))
    return f"{mean_pm_sd(mean, sd)} (n={len(values)})"


def render_step(step: Step) -> str:
    """One line per commit looked at: which, its subject, its values, the verdict against the good commit."""
    c = step.comparison
    verdict = "" if c is None else c.verdict
    if c is not None and c.p_value is not None and c.diff is not None:
        verdict = f"{c.verdict} vs good (diff {signed(c.diff, 4)}, p={p_value(c.p_value)})"
    label = {"good": "good", "bad": "bad ", "step": "step"}[step.role]
    runs = f"trained {step.trained}, cached {step.cached}"
    what = {"bad": "BAD", "good": "good", "skip": "SKIP"}[step.status]
    text = f"{label} {step.commit[:10]} {step.subject[:50]!r}: {describe_values(step.values)}"
    text += f" -> {what}" + (f": {verdict}" if verdict else "")
    if step.status == "skip" or step.role == "good":
        text += f" ({step.reason})"
    return f"{text} [{runs}]"


def render_bisect(result: BisectResult) -> str:
    """The outcome after the step lines: the culprit with its diff stat, or why there is none."""
    lines = []
    if result.outcome == "found":
        lines += [f"First bad commit: {result.culprit} {result.culprit_subject!r}",
                  f"({result.search_steps} search steps over {len(result.candidates)} commits; "
                  f"{result.trained} runs trained, {sum(s.cached for s in result.steps)} read from the cache "
                  f"{result.cache})", result.culprit_stat]
    elif result.outcome == "not_worse":
        lines.append(f"The bad commit {result.bad[:10]} is not worse than the good commit {result.good[:10]} on "
                     f"{result.variant} {result.metric}: nothing to search (exit 1)")
    else:
        if result.suspects:
            lines.append("Could not decide: the first bad commit is one of " +
                         ", ".join(c[:10] for c in result.suspects) + " (the others were skipped or undecided)")
        else:
            lines.append("Could not decide: an end of the range could not be judged (see the skipped lines)")
    lines.append(f"Outcome: {result.outcome} (exit {result.exit_code})")
    return "\n".join(lines)
