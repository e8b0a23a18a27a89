"""What normreg refuses (issue 23): outputs that would replace inputs, files that are not regular or too large,
data beyond the parsers' limits, names that would break a file name or a format, code in repro's script, bad
argument values. Each is exit 2 and one line naming the file (and the key) and what to do; nothing is changed."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from normreg.errors import InputError, ResultsError
from normreg.fileio import check_output_file, parse_json, read_text_bounded
from normreg.names import MAX_NAME_BYTES
from tests.conftest import SAME

BAD = Path(__file__).parents[1] / "data" / "bad"
SUITES = Path(__file__).parents[1] / "data" / "suites"
GOOD_REPORT = (BAD / "report_alpha_null.json").read_text().replace('"alpha": null', '"alpha": 0.05')


def _refused(res: object, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def files(tmp_path: Path, write_suite) -> dict[str, Path]:
    """A suite, its stored baseline, a report and a folder of nightly reports, each an input to some command."""
    suite = write_suite(seeds=3)
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    shutil.copy(BAD / "baseline_duplicate_seeds.json", baselines / "pair.json")
    data = json.loads((baselines / "pair.json").read_text())
    data["variants"]["a"]["acc"] = {"seeds": [0, 1, 2], "values": [0.9, 0.91, 0.92]}
    (baselines / "pair.json").write_text(json.dumps(data))
    report = tmp_path / "r.json"
    report.write_text(GOOD_REPORT)
    nights = tmp_path / "nights"
    nights.mkdir()
    shutil.copy(report, nights / "night1.json")
    return {"suite": suite, "baselines": baselines, "baseline": baselines / "pair.json", "report": report,
            "nights": nights, "night1": nights / "night1.json"}


# ------------------------------------------------------------------------------------ outputs replacing inputs

# (name, command line given the files, the input that must survive, a fragment of the refusal)
OVERWRITES = [
    ("run-report-baseline", lambda f: ["run", f["suite"], "--baselines", f["baselines"], "--report", f["baseline"]],
     "baseline", "whose .json files this command reads"),
    ("run-html-suite", lambda f: ["run", f["suite"], "--baselines", f["baselines"], "--html", f["suite"]],
     "suite", "is an input of this command"),
    ("report-html-itself", lambda f: ["report", f["report"], "--html", f["report"]], "report", "is an input"),
    ("history-html-night", lambda f: ["history", f["nights"], "--html", f["night1"]], "night1", "whose .json files"),
    ("compare-report-a", lambda f: ["compare", f["report"], f["night1"], "--report", f["report"]], "report",
     "is an input"),
    ("repro-output-suite", lambda f: ["repro", f["suite"], "-o", f["suite"]], "suite", "is an input"),
    ("audit-report-suite", lambda f: ["audit", f["suite"], "--report", f["suite"]], "suite", "is an input"),
    ("report-markdown-baseline", lambda f: ["report", f["report"], "--markdown", f["baseline"]], "baseline",
     "is a stored baseline"),
]


@pytest.mark.parametrize("name,args,kept,fragment", OVERWRITES, ids=[c[0] for c in OVERWRITES])
def test_no_output_replaces_an_input_a_suite_or_a_baseline(cli, files, tmp_path: Path, name: str, args, kept: str,
                                                           fragment: str) -> None:
    before = files[kept].read_bytes()
    res = cli(*args(files), script=SAME)
    _refused(res, "InputError: ", fragment)
    assert files[kept].read_bytes() == before


@pytest.mark.parametrize("command", ["report", "history", "compare", "audit", "repro", "run"])
def test_an_output_naming_a_folder_is_refused_up_front_by_every_command(cli, files, tmp_path: Path,
                                                                        command: str) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    args = {"report": ["report", files["report"], "--html", folder],
            "history": ["history", files["nights"], "--markdown", folder],
            "compare": ["compare", files["report"], files["night1"], "--report", folder],
            "audit": ["audit", files["suite"], "--report", folder],
            "repro": ["repro", files["suite"], "-o", folder],
            "run": ["run", files["suite"], "--baselines", files["baselines"], "--junit", folder]}[command]
    _refused(cli(*args, script=SAME), "InputError: ", f"{folder}: is a folder; give a file name")
    assert list(folder.iterdir()) == []


def test_an_output_that_is_not_a_regular_file_is_refused_and_left_as_it_is(cli, files, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    _refused(cli("report", files["report"], "--junit", fifo), "is a named pipe (FIFO), not a regular file")
    assert fifo.is_fifo()
    with pytest.raises(InputError, match="/dev/null: is a character device, not a regular file or a new name"):
        check_output_file(Path("/dev/null"), "--junit")  # checked only: nothing is written


def test_two_outputs_naming_one_file_are_refused(cli, files, tmp_path: Path) -> None:
    same = tmp_path / "out.txt"
    _refused(cli("report", files["report"], "--html", same, "--markdown", same), "is also given to --html")
    assert not same.exists()


def test_an_empty_output_path_is_refused(cli, files) -> None:
    res = cli("run", files["suite"], "--out", "", script=SAME)
    _refused(res, "UsageError: Invalid value for '--out': an empty path")
    res = cli("report", files["report"], "--html", "")
    _refused(res, "an empty path")


def test_out_naming_an_input_folder_is_refused(cli, files) -> None:
    res = cli("run", files["suite"].parent, "--baselines", files["baselines"], "--out", files["baselines"],
              script=SAME)
    _refused(res, f"--out {files['baselines']}: is an input of this command")


def test_resume_of_a_folder_that_is_not_a_run_directory_leaves_nothing_in_it(cli, files, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    res = cli("run", files["suite"], "--baselines", files["baselines"], "--resume", folder, script=SAME)
    _refused(res, f"--resume {folder}: not a run directory")
    assert list(folder.iterdir()) == []


def test_writing_the_same_output_again_is_fine(cli, files, tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    for _ in range(2):
        res = cli("report", files["report"], "--html", html)
        assert res.exit_code == 0, res.output


# ------------------------------------------------------------------------------------------- bounded reads


def _within(seconds: float, fn) -> object:
    """`fn()`, failing the test (instead of hanging it) when it takes longer than `seconds`."""
    out: list[object] = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert out, f"still reading after {seconds} s"
    return out[0]


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_every_reader_refuses_what_is_not_a_regular_file_without_reading_it(cli, tmp_path: Path, kind: str) -> None:
    if kind == "dev-zero":
        path = Path("/dev/zero")
        what = "is a character device, not a regular file"
    elif kind == "fifo":
        path = tmp_path / "pipe.json"
        os.mkfifo(path)  # nobody writes: a blocking open or read would wait forever
        what = "is a named pipe (FIFO), not a regular file"
    for args in (["run", path], ["report", path], ["calibrate", path, "--reps", "100"]):
        res = _within(20, lambda a=args: cli(*a, script=SAME))
        _refused(res, str(path), what)
    _refused(_within(20, lambda: cli("compare", path, path)), what)


def test_a_history_folder_with_a_fifo_lists_it_and_does_not_hang(cli, files) -> None:
    os.mkfifo(files["nights"] / "stuck.json")
    res = _within(20, lambda: cli("history", files["nights"]))
    assert res.exit_code == 0, res.output
    assert "stuck.json (is a named pipe (FIFO)" in res.output


def test_the_limit_is_on_the_bytes_read_not_on_the_size_a_file_reports() -> None:
    path = Path("/proc/self/status")
    assert path.stat().st_size == 0
    with pytest.raises(ResultsError, match="over the 10-byte limit"):
        read_text_bounded(path, 10)
    assert "Name:" in read_text_bounded(path, 1 << 20)


# ------------------------------------------------------------------------------------------ parser limits


def test_json_limits_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"^x.json: nested more than 64 levels deep"):
        parse_json("[" * 100_000 + "]" * 100_000, "x.json")
    with pytest.raises(ResultsError, match=r"^x.json: a.b\[0\]\[0\]\[0\].*\.\.\.: nested more than 64"):
        parse_json(json.dumps({"a": {"b": [json.loads("[" * 70 + "]" * 70)]}}), "x.json")
    with pytest.raises(ResultsError, match=r"^x.json: an integer of 4301 digits, over the limit of 100"):
        parse_json("[" + "7" * 4301 + "]", "x.json")
    with pytest.raises(ResultsError, match=r"^x.json: k: a string holding a lone surrogate"):
        parse_json('{"k": "a\\udc80"}', "x.json")
    assert parse_json('{"k": "\\ud83d\\ude00", "n": 4294967295}', "x.json") == {"k": "\U0001F600", "n": 4294967295}


def test_set_values_have_the_parser_limits_too(cli, files) -> None:
    res = cli("run", files["suite"], "--set", "seeds=" + "9" * 5000, script=SAME)
    _refused(res, "SuiteError: ", "the value of --set seeds: an integer of 5000 digits")
    res = cli("run", files["suite"], "--set", 'variants.twin.model.args.x="\\ud800"', script=SAME)
    _refused(res, "lone surrogate")


HOSTILE = ["alias_bomb.yaml", "deep_nesting.yaml", "seeds_huge.yaml", "duplicate_key.yaml", "misspelt_top_key.yaml"]


def test_bad_inputs_are_refused_before_anything_heavy_is_imported(tmp_path: Path) -> None:
    """What makes a bad input exit 2 within a second, in one process: every command refuses it (exit 2, one line on
    stderr, no traceback) before importing torch or Lightning; a bad suite (the hostile YAML, the issue-23 limits
    and names) before even numpy or scipy. The wall time itself is measured by benchmarks/bad_inputs.py."""
    suites = [["run", str(BAD / f), "--out", str(tmp_path / "o")]
              for f in (*HOSTILE, "suite_huge_int.yaml", "suite_lone_surrogate.yaml", "suite_named_report_json.yaml",
                        "suite_name_256.yaml", "variant_name_250.yaml", "variant_bidi_override.yaml")]
    suites.append(["run", "/dev/zero"])
    others = []
    for f in ("report_huge_int.json", "report_lone_surrogate.json", "report_deep_nesting.json"):
        others += [[c, str(BAD / f)] for c in ("report", "history")] + [["compare", str(BAD / f), str(BAD / f)]]
    others.append(["calibrate", str(BAD / "report_huge_int.json")])
    script = (
        "import sys\n"
        "import normreg.execution.supervisor as supervisor\n"
        "supervisor.wanted = lambda argv: False  # refused here, in this process: its imports are the ones seen\n"
        "from normreg.cli import main\n"
        "def heavy(names):\n"
        "    return [m for m in names if m in sys.modules]\n"
        "def refuse(commands):\n"
        "    codes = []\n"
        "    for argv in commands:\n"
        "        sys.argv = ['normreg', *argv]\n"
        "        try:\n"
        "            main()\n"
        "        except SystemExit as e:\n"
        "            codes.append(int(e.code))\n"
        "    return sorted(set(codes)), len(codes)\n"
        f"print(*refuse({suites!r}), heavy(('scipy', 'numpy', 'torch', 'pytorch_lightning', 'lightning')))\n"
        f"print(*refuse({others!r}), heavy(('torch', 'pytorch_lightning', 'lightning')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip().splitlines()[-2:] == [f"[2] {len(suites)} []", f"[2] {len(others)} []"], \
        out.stdout + out.stderr  # nothing printed: stderr says why
    assert "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == len(suites) + len(others), out.stderr


# ---------------------------------------------------------------------------------------------------- names


def test_names_at_the_limit_go_everywhere_a_failed_run_included(cli, tmp_path: Path, write_suite) -> None:
    """A suite and a variant named with MAX_NAME_BYTES bytes (multi-byte characters), whose runs fail: the run
    directory, the failure files, the report and a per-device baseline are all written."""
    suite_name, variant = "é" * (MAX_NAME_BYTES // 2), "ß" * (MAX_NAME_BYTES // 2)
    path = write_suite(f"""
        name: {suite_name}
        seeds: [0, 4294967295]
        baseline_key: device
        metrics: {{acc: {{}}}}
        variants:
          a: {{model: m:A}}
          {variant}: {{model: m:A}}
        """, filename="long.yaml")
    script = {"a": {"acc": [0.9, 0.91]}, variant: RuntimeError("boom")}
    out = tmp_path / "run"
    res = cli("run", path, "--out", out, "--baselines", tmp_path / "b", "--report", tmp_path / "r.json",
              "--junit", tmp_path / "r.xml", "--update-baseline", script=script)
    assert res.exit_code == 3, res.output
    assert (out / suite_name / "runs.jsonl").read_text().count('"failed"') == 2
    assert {p.name for p in (out / suite_name / "failures").iterdir()} == {f"{variant}-seed0.txt",
                                                                          f"{variant}-seed4294967295.txt"}
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "error"


# ------------------------------------------------------------------------------------ repro: names are data


def _repro(cli, folder: Path, suite_text: str, *args: str) -> str:
    folder.mkdir()
    shutil.copy(SUITES / "tiny_models.py", folder / "tiny_models.py")
    (folder / "s.yaml").write_text(suite_text)
    res = cli("repro", folder / "s.yaml", *args)
    assert res.exit_code == 0, res.output
    return res.stdout


def _shape(text: str) -> str:
    """The script's code with every constant blanked: what it does, whatever its data hold."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.value = None
    return ast.dump(tree)


def test_repro_writes_names_and_values_as_data_never_as_code(cli, tmp_path: Path) -> None:
    text = (BAD / "repro_injection.yaml").read_text()
    hostile = _repro(cli, tmp_path / "hostile", text)
    plain = text.replace("""'x\"\"\"; __import__("os").system("echo INJECTED"); \"\"\"'""", "plain").replace(
        """'a\"\"\" + str(__import__("os").getpid()) + \"\"\"'""", "plain")
    assert plain.count("plain") == 2
    benign = _repro(cli, tmp_path / "plain", plain)
    assert _shape(hostile) == _shape(benign)  # the same code; only the data differ
    run = ast.literal_eval(hostile.split("RUN = ", 1)[1].split("\n\n", 1)[0])
    assert run["variant"] == 'x"""; __import__("os").system("echo INJECTED"); """'
    assert run["seed"] == 0 and run["evaluate"] == "test"


def test_repro_refuses_a_seed_that_run_would_refuse(cli) -> None:
    wine = SUITES / "userproj" / "wine.yaml"
    res = cli("repro", wine, "--seed", str(10**30))
    assert res.exit_code == 2 and "4294967295" in res.output, res.output


@pytest.mark.slow
def test_the_hostile_script_runs_without_running_the_injected_code(cli, tmp_path: Path) -> None:
    script = tmp_path / "repro.py"
    script.write_text(_repro(cli, tmp_path / "s", (BAD / "repro_injection.yaml").read_text()))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "INJECTED" not in out.stdout + out.stderr
    assert any(line.startswith("acc=") for line in out.stdout.splitlines()), out.stdout


# ------------------------------------------------------------------------------- baselines and arguments


def test_a_baseline_that_is_a_symlink_loop_is_refused_not_taken_for_none(cli, files, tmp_path: Path) -> None:
    stored = files["baseline"]
    stored.unlink()
    (files["baselines"] / "loop").symlink_to("pair.json")
    stored.symlink_to("loop")
    res = cli("run", files["suite"], "--baselines", files["baselines"], "--out", tmp_path / "run", script=SAME)
    _refused(res, f"ResultsError: {stored}: cannot read: Too many levels of symbolic links")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--alpha", "2"], "expected --alpha in (0, 0.5), got 2.0"),
    (["--alpha", "nan"], "expected --alpha in (0, 0.5), got nan"),
    (["--min-effect", "-1"], "expected --min-effect to be a finite number >= 0"),
    (["--min-effect", "inf"], "expected --min-effect to be a finite number >= 0"),
    (["--random-seed", "-1"], "Invalid value for '--random-seed'"),
], ids=["alpha-2", "alpha-nan", "min-effect-negative", "min-effect-inf", "random-seed-negative"])
def test_calibrate_refuses_argument_values_out_of_range(cli, files, args: list[str], fragment: str) -> None:
    _refused(cli("calibrate", files["report"], "--reps", "100", *args), fragment)


def test_repro_refuses_a_value_without_a_literal_form_naming_its_key() -> None:
    from normreg.execution.repro import render_script

    run = {"suite": "s", "variant": "a", "seed": 0, "suite_folder": "/x", "model": {"target": "m:A", "args": {}},
           "data": None, "trainer": {"max_epochs": 1, "gradient_clip_val": float("nan")}, "evaluate": "test"}
    with pytest.raises(InputError, match=r"variant 'a': trainer.gradient_clip_val is nan, which cannot be written"):
        render_script(run, "pytorch_lightning")
    with pytest.raises(InputError, match="not pytorch_lightning or lightning.pytorch"):
        render_script({**run, "trainer": {}}, "os; import x")


def test_an_out_folder_holding_a_fifo_table_is_refused_not_waited_on(cli, files, tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "pair").mkdir(parents=True)
    os.mkfifo(out / "pair" / "results.csv")
    res = _within(20, lambda: cli("run", files["suite"], "--out", out, "--baselines", tmp_path / "none",
                                  script=SAME))
    _refused(res, "results.csv: is a named pipe (FIFO), not a regular file")
