from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from normreg.errors import ResultsError
from normreg.render.history import ad_hoc_line, night_marks, render_history
from normreg.render.html import render_history_html
from normreg.render.markdown import render_history_markdown
from normreg.report.history import find_reports, load_history
from tests.scripted import NIGHT_DATES


def test_nights_are_ordered_by_date_not_by_file_name(nights_dir):
    history = load_history([nights_dir])
    assert [n.created for n in history.nights] == NIGHT_DATES
    assert len(find_reports([nights_dir])) == 5  # the baseline beside them is not taken for a report


def test_failed_nights_are_marked_per_variant(nights_dir):
    history = load_history([nights_dir])
    series = {(s.suite, s.metric, s.variant): s for s in history.series}
    b = series[("drift", "acc", "b")]
    assert [p.failed for p in b.points] == [False, False, False, True, True]
    assert [p.failed for p in series[("drift", "acc", "a")].points] == [False] * 5
    # the known bug is caught as declared every night: not a failed night
    assert not any(p.failed for p in series[("pairs", "acc", "twin")].points)
    # c's run fails from night 4: its points are marked, with one value fewer
    c = series[("drift", "acc", "c")]
    assert [len(p.values) for p in c.points] == [4, 4, 4, 3, 3] and c.points[3].failed
    assert b.points[3].values[0] == pytest.approx(0.802 - 0.045)


def test_terminal_view_says_when_the_regression_came_in(nights_dir):
    text = render_history(load_history([nights_dir]))
    drift = text.split("\n\n")[0]
    lines = drift.splitlines()
    assert lines[0] == "drift: acc (higher is better)"
    rows = lines[3:8]
    assert ["FAIL" in r for r in rows] == [False, False, False, True, True]
    assert "5 nights, 2 not passing; first: 2025-03-04 03:00" in text


def test_the_same_report_twice_is_counted_once(nights_dir, tmp_path):
    one = sorted(nights_dir.glob("*/report.json"))[0]
    shutil.copy(one, tmp_path / "copy.json")
    history = load_history([nights_dir, tmp_path / "copy.json"])
    assert len(history.nights) == 5
    assert history.skipped and "Left out as duplicates" in render_history(history)


def test_no_reports_is_an_input_error(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"schema": "normreg.baseline/1"}))
    with pytest.raises(ResultsError, match="no normreg report found in"):
        find_reports([tmp_path])
    with pytest.raises(ResultsError, match="missing.json: no such file or directory"):
        find_reports([tmp_path / "missing.json"])


def test_a_named_file_that_is_not_a_report_is_refused(nights_dir):
    with pytest.raises(ResultsError, match="expected a file with schema 'normreg.report/1'"):
        load_history([nights_dir / "drift-baseline.json"])


def test_history_page_has_one_figure_per_suite_and_metric(nights_dir):
    page = render_history_html(load_history([nights_dir]))
    figures = [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, flags=re.S)]
    titles = [f.find("{http://www.w3.org/2000/svg}title").text for f in figures]
    assert titles == ["drift: acc over nights", "pairs: acc over nights", "pairs: loss over nights"]
    assert page.count('<tr class="fail">') == 2


def _variant_of(nights_dir, tmp_path, created: str, change) -> None:  # noqa: ANN001
    """A copy of the first night's report, created at `created` and changed by `change(data)`, into tmp_path."""
    data = json.loads(sorted(nights_dir.glob("*/report.json"))[0].read_text())
    data["created"] = created
    change(data)
    (tmp_path / f"{created[:19].replace(':', '')}.json").write_text(json.dumps(data))


def test_an_ad_hoc_run_is_not_a_night_unless_asked_and_then_marked(nights_dir, tmp_path):
    def other_seeds(data: dict) -> None:  # what --set or --seeds changes: the suite's digest
        next(s for s in data["suites"] if s["name"] == "drift")["digest"] = "f" * 64

    _variant_of(nights_dir, tmp_path, "2025-03-03T15:20:07+00:00", other_seeds)
    history = load_history([nights_dir, tmp_path])
    assert [n.created for n in history.nights] == NIGHT_DATES
    assert len(history.ad_hoc) == 1 and history.ad_hoc[0].endswith("2025-03-03T152007.json")
    assert "Left out, 1 report of a suite differing from its newest report" in render_history(history)
    assert "Left out, 1 report of a suite differing" in render_history_markdown(history)
    assert "Left out, 1 report of a suite differing" in render_history_html(history)  # every format says it

    kept = load_history([nights_dir, tmp_path], include_other_suites=True)
    assert len(kept.nights) == 6 and kept.ad_hoc == ()
    marked = [n for n in kept.nights if n.other_suite]
    assert [n.label + night_marks(n) for n in marked] == ["2025-03-03 15:20:07 (other suite: drift)"]
    assert "2025-03-03 15:20:07 (other suite: drift)" in render_history(kept)
    assert "(other suite: drift)</td>" in render_history_html(kept)


def test_a_night_on_which_every_run_failed_is_marked(nights_dir, tmp_path):
    def all_fail(data: dict) -> None:
        for r in data["runs"]:
            r.update(status="failed", metrics={}, error="RuntimeError: CUDA error")

    _variant_of(nights_dir, tmp_path, "2025-03-09T03:00:00+00:00", all_fail)
    history = load_history([nights_dir, tmp_path])
    assert [n.all_failed for n in history.nights] == [False] * 5 + [True]
    assert "2025-03-09 03:00:00 (all runs failed)" in render_history(history)


def test_many_reports_left_out_are_counted_and_the_first_few_named():
    line = ad_hoc_line([f"history/{n:02d}.json" for n in range(40)])
    assert line.startswith("Left out, 40 reports of a suite differing from its newest report")
    assert line.endswith(": history/00.json, history/01.json, history/02.json and 37 more")


def test_commits_keep_their_dirty_mark_and_p_values_read_as_in_every_format(nights_dir, tmp_path):
    """The terminal table shows a night's commit as the change lines do (a `+dirty` mark kept), and a change's p is
    written as the report tables write it (`<1e-4`, not `8.5e-06`)."""
    from normreg.render.labels import p_value

    for i, path in enumerate(sorted(nights_dir.glob("*/report.json"))):
        data = json.loads(path.read_text())
        data["environment"]["git_commit"] = f"{i:040d}+dirty"
        (tmp_path / f"{i}.json").write_text(json.dumps(data))
    history = load_history([tmp_path])
    text = render_history(history)
    rows = text.split("\n\n")[0].splitlines()[3:8]
    assert all("0000000000+dirty" in r for r in rows), rows
    (series, change), *_ = history.changes()
    p = change.comparison.p_value
    assert f", p={p_value(p)}: " in text and (p >= 1e-4 or f"p={p:.2g}" not in text)
