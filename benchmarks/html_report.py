"""Wall time of `normreg report REPORT.json` alone and with `--html`: medians over repeated runs, their ratio, and
the page drawn in one process, so the cost of the page is seen apart from start-up.

    python benchmarks/html_report.py                    # 5 runs of each, this tree
    python benchmarks/html_report.py --against 4f6a90e  # and an older commit's tree, timed in the same turns

The report has the size of a nightly of all ten suites: ten suites of two variants (a reference and one other) and
five seeds, two metrics against a stored baseline, four learning curves of ten epochs per run, and a curve check
in seven suites: 27 figures. It is made with the fake runner, nothing trained. Issue 19 found `report --html` taking
4.4 s where `report` took 0.74 s on such a report (27 matplotlib figures at about 0.16 s each, and matplotlib's
import); the figures are now written as SVG text (normreg/render/svg.py). `--against` times another commit's tree
(extracted with `git archive`) on the same report, in the same turns, so that before and after share the load of
a shared machine. Measured here, not asserted in tests: shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES = 10
WITH_CURVE_CHECKS = 7
SEEDS = 5
EPOCHS = 10


def _suite_yaml(i: int) -> str:
    curves = "curves: [{val_acc: {goal: max, min_effect: 0.02}}]\n" if i < WITH_CURVE_CHECKS else ""
    return (f"name: suite{i}\nseeds: {SEEDS}\nmetrics: {{test_acc: {{goal: max, min_effect: 0.01}}, "
            f"test_loss: {{goal: min}}}}\nreference: merged\n{curves}variants:\n"
            "  merged: {model: {target: m:Net}}\n  twin: {model: {target: m:Net}}\n")


def _metrics(variant: str, seed: int) -> dict[str, float]:
    gap = 0.03 if variant == "twin" else 0.0
    return {"test_acc": 0.95 - gap + 0.004 * math.sin(3.1 * seed + len(variant)),
            "test_loss": 0.2 + gap + 0.01 * math.cos(2.3 * seed)}


def _curves(variant: str, seed: int) -> dict[str, list[float]]:
    gap = 0.03 if variant == "twin" else 0.0
    wobble = [0.01 * math.sin(1.7 * seed + e) for e in range(EPOCHS)]
    rise = [1 - math.exp(-0.6 * (e + 1)) for e in range(EPOCHS)]
    return {"train_loss": [1.2 - r + gap + w for r, w in zip(rise, wobble)],
            "val_loss": [1.3 - r + gap + w for r, w in zip(rise, wobble)],
            "train_acc": [0.5 + 0.48 * r - gap + w for r, w in zip(rise, wobble)],
            "val_acc": [0.5 + 0.45 * r - gap * (e >= 4) + w for e, (r, w) in enumerate(zip(rise, wobble))]}


def build_report(tmp: Path) -> Path:
    """The all-suites-sized report (see the module's docstring), written to tmp/report.json."""
    from scripted import CurvesFakeRunner, normalise

    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites

    suites = tmp / "suites"
    suites.mkdir()
    for i in range(SUITES):
        (suites / f"suite{i}.yaml").write_text(_suite_yaml(i))
    run_suites([suites], out=tmp / "baseline-run", baselines=tmp / "baselines", update_baseline=True,
               executor=FakeRunner(_metrics))
    report = run_suites([suites], out=tmp / "run", baselines=tmp / "baselines",
                        executor=CurvesFakeRunner(_metrics, _curves))
    path = tmp / "report.json"
    path.write_text(json.dumps(normalise(report.to_json()), indent=2, sort_keys=True) + "\n")
    return path


def _walls(cmds: dict[tuple[str, str], tuple[Path, list[str]]], repeat: int) -> dict[tuple[str, str], list[float]]:
    """Wall times of each command (run in its tree), taken in turns (one of each, `repeat` times): a shared
    machine's load then weighs on every command alike."""
    times: dict[tuple[str, str], list[float]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, (cwd, cmd) in cmds.items():
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            times[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                sys.exit(f"{' '.join(cmd)} in {cwd} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (default: 5)")
    parser.add_argument("--against", metavar="REV", help="also time this commit's tree (e.g. the one before a change)")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        report = build_report(tmp)
        trees = {"this tree": ROOT}
        if args.against:
            old = tmp / "against"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.against], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
            trees[args.against] = old
        cmds = {}
        for tree, cwd in trees.items():  # `python -m` puts the working directory first: each tree's own normreg
            html = tmp / f"{tree.replace(' ', '_')}.html"
            cmds[(tree, "report")] = (cwd, [sys.executable, "-m", "normreg.cli", "report", str(report)])
            cmds[(tree, "report --html")] = (cwd, [sys.executable, "-m", "normreg.cli", "report", str(report),
                                                   "--html", str(html)])
        walls = _walls(cmds, args.repeat)
        print(f"report of {SUITES} suites, {SEEDS} seeds, {EPOCHS}-epoch curves, {WITH_CURVE_CHECKS} curve checks; "
              f"median of {args.repeat} runs each")
        print(f"{'tree':12s} {'report':>8s} {'--html':>8s} {'ratio':>7s} {'figures':>8s} {'page':>8s}")
        for tree in trees:
            plain = statistics.median(walls[(tree, "report")])
            html = statistics.median(walls[(tree, "report --html")])
            page = (tmp / f"{tree.replace(' ', '_')}.html").read_text(encoding="utf-8")
            figures = page.count("<svg ") or page.count("<img ")
            print(f"{tree:12s} {plain:7.2f}s {html:7.2f}s {html / plain:6.2f}x {figures:8d} "
                  f"{len(page.encode()) / 1024:6.0f}KiB")

        from normreg.render.html import render_html
        from normreg.report.file import read_report

        loaded = read_report(report).report
        start = time.perf_counter()
        page = render_html(loaded)
        print(f"render_html of this tree in one process: {time.perf_counter() - start:.3f}s, "
              f"{page.count('<svg ')} figures")


if __name__ == "__main__":
    main()
