"""Wall time of `normreg report REPORT.json` alone and with `--html`: medians over repeated runs, and the HTML
page's figures drawn in one process (figure by figure), so the cost of the page is seen apart from start-up.

    python benchmarks/html_report.py               # 5 runs of each
    python benchmarks/html_report.py --repeat 9

The report is the tests' scripted nightly report (tests/scripted.py: two suites, a stored baseline, learning
curves, failed runs), made with the fake runner, nothing trained. Issue 19 found `report --html` taking twice as
long as `report`; the figures were drawn with matplotlib's constrained layout, which measures every text and
draws each figure twice to save it. Measured here, not asserted in tests: shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NORMREG = [sys.executable, "-m", "normreg.cli"]


def _walls(cmds: dict[str, list[str]], repeat: int) -> dict[str, list[float]]:
    """Wall times of each command, taken in turns (one of each, `repeat` times): a shared machine's load then
    weighs on every command alike."""
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            times[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (default: 5)")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from scripted import make_report

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        report = tmp / "report.json"
        report.write_text(json.dumps(make_report(tmp / "work"), indent=2, sort_keys=True) + "\n")
        walls = _walls({"report": NORMREG + ["report", str(report)],
                        "report --html": NORMREG + ["report", str(report), "--html", str(tmp / "r.html")]},
                       args.repeat)
        for name, times in walls.items():
            print(f"{name:14s} median {statistics.median(times):6.2f}s  min {min(times):6.2f}s  "
                  f"max {max(times):6.2f}s  runs {len(times)}")
        ratio = statistics.median(walls["report --html"]) / statistics.median(walls["report"])
        print(f"ratio          {ratio:6.2f}x")
        start = time.perf_counter()
        import matplotlib.backends.backend_agg  # noqa: F401 - what the figures need, timed apart
        import matplotlib.figure  # noqa: F401

        print(f"matplotlib     {time.perf_counter() - start:6.2f}s to import")

        from normreg.render.html import render_html
        from normreg.report.file import read_report

        loaded = read_report(report).report
        start = time.perf_counter()
        page = render_html(loaded)
        print(f"render_html    {time.perf_counter() - start:6.2f}s in-process (matplotlib imported), "
              f"{page.count('<img')} figures, {len(page) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
