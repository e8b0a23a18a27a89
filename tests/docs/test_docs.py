"""The manual: a short README, a site that builds, a command reference generated from the CLI, figures that name
what measured them, and the quick start that CI runs being the README's."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md"))}


def hook():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_stays_under_12_kb() -> None:
    size = len(README.encode("utf-8"))
    assert size < 12_000, f"README.md is {size} bytes: keep it under 12 KB and move detail into docs/"


def _links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("name", ["README.md", *PAGES])
def test_relative_links_point_to_files_that_exist(name: str) -> None:
    """What `mkdocs build --strict` checks for the site, here for the README too (GitHub shows it on its own)."""
    text = README if name == "README.md" else PAGES[name]
    base = (ROOT / name).parent
    for link in _links(text):
        target = link.split("#")[0]
        if target:
            assert (base / target).exists(), f"{name} links to {link}, which does not exist"


def _mkdocs() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _nav_files(nav: list) -> list[str]:
    files = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        files += _nav_files(value) if isinstance(value, list) else [value]
    return files


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    config = _mkdocs()
    nav = _nav_files(config["nav"])
    assert config["theme"]["name"] == "material" and config["strict"] is True
    pages = {p.removeprefix("docs/") for p in PAGES}
    assert set(nav) <= pages, f"the nav names pages that do not exist: {set(nav) - pages}"
    assert pages == set(nav), f"pages left out of mkdocs.yml's nav: {pages - set(nav)}"


def test_the_command_reference_is_generated_from_the_cli() -> None:
    from normreg.cli import app

    assert "docs/hooks/cli_reference.py" in _mkdocs()["hooks"]
    module = hook()
    assert module.MARKER in PAGES["docs/commands.md"]
    rendered = module.render()
    group = typer.main.get_command(app)
    assert len(group.commands) >= 9
    for name, command in group.commands.items():
        body = rendered.split(f"### `normreg {name}`\n", 1)[1].split("\n### ", 1)[0]
        assert command.help.split()[0] in body
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("-"):
                    assert f"`{opt}" in body, f"the reference of '{name}' lacks {opt}"
            if not any(o.startswith("-") for o in param.opts):
                assert f"`{module._metavar(param)}`" in body, f"the reference of '{name}' lacks argument {param.name}"


def test_the_reference_follows_the_cli_and_escapes_its_help() -> None:
    """A new option appears in the reference without anyone editing a page; help text is not read as HTML."""
    demo = typer.Typer()

    @demo.command()
    def first(
        path: str = typer.Argument(help="A file."),
        out: str = typer.Option("runs", help="Into runs/<timestamp> | elsewhere, *not* `code`."),
    ) -> None:
        """Do the first thing."""

    @demo.command()
    def second(flag: bool = typer.Option(False, "--flag", help="A switch.")) -> None:
        """Do the second thing."""

    rendered = hook().render(demo)
    assert "### `normreg first`" in rendered and "### `normreg second`" in rendered
    assert "normreg first [OPTIONS] PATH" in rendered
    assert "| `--out TEXT` | `runs` | Into runs/&lt;timestamp&gt; \\| elsewhere, \\*not\\* \\`code\\`. |" in rendered
    assert "| `--flag` | off | A switch. |" in rendered


# A duration or a size: "22.0 s", "4 min", "90 minutes", "2 h", "1.8 GB", "64 KiB". A figure someone measured names
# the benchmark or test that measured it; a limit or default the code sets names where (a `normreg/...py` file or a
# `CONSTANT` it defines), so a reader can check it there.
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?"
                    r"(?:ms|s|seconds?|min|minutes?|h|hours?|B|kB|KB|KiB|MB|MiB|GB|GiB)(?![\w])")
MEASURED = r"benchmarks/\w+\.(?:py|sh)|tests/(?:\w+/)*test_\w+\.py|measured with\s+`"
SET_BY = r"normreg/[\w/]+\.py|`[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+`"
SOURCE = re.compile(f"{MEASURED}|{SET_BY}")
NAMED_FILE = re.compile(r"(?:benchmarks|tests|normreg)/[\w/]+\.(?:py|sh)")
CONSTANT = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`")
CODE = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "normreg").rglob("*.py")))


def _blocks(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "\n\n", text, flags=re.S)
    return [b for b in re.split(r"\n\s*\n", text) if b.strip()]


def _sources(block: str) -> list[str]:
    """What the block names as the source of its figures that does not exist: a benchmark, test or code file not
    in the repository; where constants are its only source, one the package does not define (elsewhere a
    `NAME` may be an environment variable)."""
    missing = [f for f in NAMED_FILE.findall(block) if not (ROOT / f).is_file()]
    if NAMED_FILE.search(block) or re.search(MEASURED, block):
        return missing
    return missing + [f"`{c}`" for c in CONSTANT.findall(block)
                      if not re.search(rf"^\s*{c}\s*[:=]", CODE, flags=re.M)]


@pytest.mark.parametrize("name", ["README.md", *PAGES])
def test_every_figure_names_what_measured_it(name: str) -> None:
    """Each paragraph, list or table that quotes a time or size names the benchmark or test that measured it, or
    the code that sets it (or the paragraph just before it does, as a table's lead-in), and what it names exists."""
    blocks = _blocks(README if name == "README.md" else PAGES[name])
    for i, block in enumerate(blocks):
        if not FIGURE.search(block):
            continue
        named = block if SOURCE.search(block) else blocks[i - 1] if i and SOURCE.search(blocks[i - 1]) else None
        if named is None:
            raise AssertionError(
                f"{name}: figures {FIGURE.findall(block)} without the benchmark that measured them or the code "
                f"that sets them (name benchmarks/....py, tests/.../test_....py, 'measured with `...`', normreg/....py "
                f"or a `CONSTANT` of the package):\n{block}"
            )
        assert not _sources(named), f"{name}: names {_sources(named)}, which do not exist:\n{named}"


def test_the_figure_check_can_fail() -> None:
    assert FIGURE.search("the run takes 22.0 s on an idle machine") and not SOURCE.search("on an idle machine")
    for figure in ("4 min", "90 minutes", "2 h", "3 hours", "12 ms", "512 B", "64 KiB", "1.5 MiB", "2 GiB", "3 MB"):
        assert FIGURE.search(f"it takes {figure} here"), figure
    assert not FIGURE.search("seed 3, variant B2, sha 5ba1e, a 2x speed-up")
    assert SOURCE.search("(median of 3, `benchmarks/commands.py`)")
    assert _sources("(median of 3, `benchmarks/no_such_benchmark.py`)") == ["benchmarks/no_such_benchmark.py"]
    assert _sources("at most 128 MiB (`MAX_DATA_BYTES`), not `NO_SUCH_LIMIT`") == ["`NO_SUCH_LIMIT`"]


def _quickstart(text: str) -> list[str]:
    start = text.index("Quick start")
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text[start:], flags=re.S)[:2]]


def test_the_quick_start_installs_only_what_run_needs_then_the_tests() -> None:
    first, second = _quickstart(README)
    assert (
        "pip install -e . &&" in first
        and "[test]" not in first
        and first.endswith("normreg run suites/domain_adapt.yaml")
    )
    assert "pip install -e '.[test]'" in second and second.endswith("pytest")
    assert _quickstart(PAGES["docs/install.md"]) == [first, second]


def test_ci_runs_the_readmes_two_commands_and_builds_the_site() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in _quickstart(README):
        assert command in ci.splitlines(), f".ci/run must run the README's command as written: {command}"
    assert ".venv/bin/mkdocs build --strict" in ci and "pip install -e '.[docs]'" in ci


def test_the_docs_extra_holds_mkdocs_and_material() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {re.split(r"[<>=;\s]", d)[0] for d in extras["docs"]} == {"mkdocs", "mkdocs-material"}


# Where each section of the 88 KB README went when it became this site (issue 19, item 8).
MOVED = {
    "## Quick start: two commands": ["README.md", "docs/install.md"],
    "## What normreg does": ["docs/how-it-works.md"],
    "### Verdicts": ["docs/verdicts.md"],
    "### Exit codes (every command)": ["README.md", "docs/commands.md"],
    "### Bad input and faults: what is tested": ["docs/how-it-works.md"],
    "## Suite format": ["docs/suites.md"],
    "## Your own model": ["docs/tutorial.md"],
    "### Seeding, exactly": ["docs/tutorial.md"],
    "## Commands": ["docs/commands.md"],
    "### Resuming an interrupted run": ["docs/training.md"],
    "### Baselines": ["docs/suites.md"],
    "## Where runs train: GPUs, cores and executors": ["docs/training.md"],
    "### On a Ray cluster: `--executor ray`": ["docs/training.md"],
    "## From Python, and from pytest": ["docs/python.md"],
    "## The JSON report (`normreg.report/1`)": ["docs/reports.md"],
    "## How much a verdict is worth: power, seeds, and early stopping": ["docs/verdicts.md"],
    "## Reports for people and CI: HTML, Markdown, JUnit, history": ["docs/reports.md"],
    "### History: when did it regress?": ["docs/nightly.md"],
    "### Nightly CI": ["docs/nightly.md"],
    "## Finding when and where a regression came in": ["docs/nightly.md"],
    "### A real example": ["docs/nightly.md"],
    "## The stories: every BatchNorm bug in the essay, as a suite": ["docs/stories.md"],
    "## `normreg audit`: find the BatchNorm trap in seconds, without training": ["docs/audit.md"],
    "## Development": ["docs/development.md"],
}


@pytest.mark.parametrize("old", MOVED)
def test_every_section_of_the_old_readme_has_a_home(old: str) -> None:
    title = old.lstrip("# ")
    aliases = {
        "Your own model": "Tutorial: your own model",
        "What normreg does": "How normreg works",
        "Quick start: two commands": "Install and quick start",
        "Commands": "Commands",
    }
    for name in MOVED[old]:
        text = README if name == "README.md" else PAGES[name]
        headings = [h.lstrip("# ").strip() for h in re.findall(r"^#+ .*$", text, flags=re.M)]
        assert title in headings or aliases.get(title) in headings, f"{old!r} is not a heading of {name}"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed: pip install -e '.[docs]' (the docs extra) to build the site here",
)
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reference = (tmp_path / "site" / "commands" / "index.html").read_text(encoding="utf-8")
    assert "normreg run" in reference and "--update-baseline" in reference and "--fail-on-change" in reference
    assert (tmp_path / "site" / "report-screenshot.png").exists()


def _documented_keys(block: str, name: str, following: str | None) -> set[str]:
    start = block.index(f'"{name}":') + len(name) + 3
    segment = re.sub(r"//.*", "", block[start : block.index(f'"{following}":') if following else None])
    return set(re.findall(r'(?<![:\[] )(?<![\[])"(\w+)"', segment))


def test_the_report_schema_page_is_the_reports(report_json: dict) -> None:
    """docs/reports.md's annotated `normreg.report/1` holds every key a report has (comparisons: the main ones)."""
    block = re.search(r"```jsonc\n(.*?)```", PAGES["docs/reports.md"], flags=re.S).group(1)
    optional = {"curves"}  # written only when a suite declares curve checks
    optional_keys = {"runs": {"resumed_from_epoch"}}  # only in a run continued from a checkpoint
    assert set(re.findall(r'^  "(\w+)":', block, flags=re.M)) == set(report_json) | optional
    assert report_json["schema"] in block
    lists = ["suites", "runs", "comparisons", "problems"]
    for name, following in zip(lists, [*lists[1:], "curves"]):
        real = set().union(*(set(item) for item in report_json[name]))
        documented = _documented_keys(block, name, following)
        extra = documented - optional_keys.get(name, set()) - real
        assert not extra, f"docs/reports.md documents {name} keys a report does not have: {sorted(extra)}"
        if name != "comparisons":  # the page lists the comparison's main fields, then "..."
            assert real <= documented, f"docs/reports.md lacks the {name} keys {sorted(real - documented)}"


def test_the_bisect_exit_codes_on_the_nightly_page_are_bisects() -> None:
    from normreg.errors import BisectExit

    table = PAGES["docs/nightly.md"].split("| exit | meaning |", 1)[1].split("\n\n", 1)[0]
    assert [int(c) for c in re.findall(r"^\| (\d) \|", table, flags=re.M)] == sorted(BisectExit)
