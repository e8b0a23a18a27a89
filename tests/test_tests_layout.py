"""tests/ mirrors the package, so a reader finds a module's tests at once: normreg/judge/sequential.py is tested in
tests/judge/test_sequential.py, normreg/cli.py in tests/test_cli.py, normreg/__main__.py in tests/test_main.py, a
package's `__init__.py` that holds code in tests/<package>/test_<package>.py. Tests of the whole tool live in
tests/docs/ (the README and the manual as a contract) and tests/end_to_end/ (real processes, faults, refusals across
commands, a user's script).

A module tested somewhere else is listed in ELSEWHERE with the file that tests it, a word that file must contain (so
the entry cannot outlive the test) and why it is tested there."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "normreg"
TESTS = ROOT / "tests"
WHOLE_TOOL = {"docs", "end_to_end"}  # folders of tests/ that are not folders of the package

# module -> (the test file that tests it, a word that file holds, why there and not in its mirrored file)
ELSEWHERE: dict[str, tuple[str, str, str]] = {
    "normreg/__init__.py": ("tests/test_api.py", "normreg.run(", "the package's lazy functions are the API"),
    "normreg/planning.py": ("tests/judge/test_planning.py", "from normreg.planning import",
                            "`plan` and `calibrate` load the suite and make the promises judge/planning.py computes"),
    "normreg/suite/model.py": ("tests/suite/test_spec.py", "check_variant",
                               "the suite model is what the loader makes; tested as loaded suites"),
    "normreg/suite/loading.py": ("tests/suite/test_spec.py", "normreg.suite.loading",
                                 "the bounded YAML reader, tested through the loader on the bad-suite corpus"),
    "normreg/suite/building.py": ("tests/suite/test_spec.py", "Did you mean 'min_effect'?",
                                  "schema checks and --set overrides, tested through the loader"),
    "normreg/auditing/shards.py": ("tests/auditing/checks/test_unsynced_batchnorm.py", "normreg.auditing.shards",
                                  "each process's shard is what the unsynced BatchNorm check compares"),
    "normreg/auditing/record.py": ("tests/auditing/test_divergence.py", "Recorder(",
                                  "recordings are the input of every check; tested with what they feed"),
    "normreg/auditing/steps.py": ("tests/auditing/checks/test_pair_divergence.py", "needs_trainer",
                                 "steps driven without a Trainer, through the audit suites' own models"),
    "normreg/examples/ddp_domains.py": ("tests/examples/test_examples.py", "ddp_batchnorm",
                                        "an example is tested by training its story suite"),
    "normreg/examples/digits.py": ("tests/examples/test_examples.py", "domain_adapt",
                                   "the digits data of several story suites, trained by them"),
    "normreg/examples/domain_adapt.py": ("tests/examples/test_examples.py", "domain_adapt",
                                         "an example is tested by training its story suite"),
    "normreg/examples/frozen_backbone.py": ("tests/examples/test_examples.py", "frozen_backbone",
                                            "an example is tested by training its story suite"),
    "normreg/examples/gan.py": ("tests/examples/test_examples.py", "gan_discriminator",
                                "an example is tested by training its story suite"),
    "normreg/examples/rl.py": ("tests/examples/test_examples.py", "rl_acting",
                               "an example is tested by training its story suite"),
    "normreg/execution/ddp_rank.py": ("tests/execution/test_ddp.py", "normreg.execution.ddp",
                                      "a rank's entry point runs only inside a multi-process run"),
    "normreg/execution/events.py": ("tests/render/test_progress.py", "normreg.execution.events",
                                    "the events exist for the progress display"),
    "normreg/execution/executors/local.py": ("tests/execution/test_executor.py", "LocalExecutor",
                                             "the default executor is the seam's reference"),
    "normreg/execution/forkserver_exit.py": ("tests/execution/test_executor.py", "_forkserver_pid",
                                             "the fork server's end is seen from the executor that starts it"),
    "normreg/execution/supervised.py": ("tests/end_to_end/test_interrupts.py", "supervises",
                                        "the supervised process is seen only from outside, under signals"),
    "normreg/execution/supervisor.py": ("tests/end_to_end/test_interrupts.py", "supervises",
                                        "the supervisor is seen only from outside, under signals"),
    "normreg/judge/checks.py": ("tests/judge/test_verdicts.py", "normreg.judge.checks",
                                "a suite's checks are what its verdicts are tested through"),
    "normreg/judge/designs/paired.py": ("tests/judge/test_stats.py", "normreg.judge.designs.paired",
                                        "the t tests are checked against scipy together"),
    "normreg/judge/designs/welch.py": ("tests/judge/test_stats.py", "normreg.judge.designs.welch",
                                       "the t tests are checked against scipy together"),
    "normreg/judge/resultset.py": ("tests/test_comparison.py", "normreg.judge.resultset",
                                   "result sets are read back for `compare`"),
    "normreg/render/bisect.py": ("tests/test_bisect.py", "normreg bisect", "bisect's view, end to end"),
    "normreg/render/formats/html.py": ("tests/test_cli.py", "--html", "each format written by the commands"),
    "normreg/render/formats/junit.py": ("tests/test_cli.py", "--junit", "each format written by the commands"),
    "normreg/render/formats/markdown.py": ("tests/test_cli.py", "--markdown", "each format written by the commands"),
    "normreg/render/history.py": ("tests/report/test_history.py", "normreg.render.history",
                                  "a history and its views, together"),
    "normreg/render/outputs.py": ("tests/test_registry.py", "normreg.render.outputs",
                                  "the output formats are one of the registries"),
    "normreg/render/planning.py": ("tests/judge/test_planning.py", "normreg.render.planning",
                                   "`plan` and `calibrate` with their terminal forms"),
    "normreg/report/bisect.py": ("tests/test_bisect.py", "bisect.json", "bisect's report, end to end"),
    "normreg/report/model.py": ("tests/report/test_file.py", "report_from_json",
                                "the report model is tested as its JSON read back"),
}


def holds_code(init: Path) -> bool:
    """Whether a package's `__init__.py` defines something (re-exports and docstrings need no test)."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for n in tree.body)


def modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__init__.py" or holds_code(p)]


def mirrored(module: Path) -> Path:
    """normreg/a/b.py -> tests/a/test_b.py; normreg/a/__init__.py -> tests/a/test_a.py; normreg/__main__.py ->
    tests/test_main.py."""
    rel = module.relative_to(PACKAGE)
    if rel.name == "__init__.py":
        return TESTS.joinpath(*rel.parent.parts, f"test_{rel.parent.name or 'normreg'}.py")
    return TESTS.joinpath(*rel.parent.parts, f"test_{rel.stem.strip('_')}.py")


def test_every_module_has_its_mirrored_test_file_or_says_where_it_is_tested():
    missing = [f"{m.relative_to(ROOT)}: {mirrored(m).relative_to(ROOT)}" for m in modules()
               if not mirrored(m).exists() and m.relative_to(ROOT).as_posix() not in ELSEWHERE]
    assert missing == [], "add each test file, or an ELSEWHERE entry naming where the module is tested"


def test_each_module_tested_elsewhere_is_tested_in_the_file_it_names():
    for module, (where, word, why) in ELSEWHERE.items():
        assert (ROOT / module).exists(), f"{module} is gone: remove its entry"
        assert not mirrored(ROOT / module).exists(), f"{module} has its own test file now: remove its entry"
        assert (ROOT / where).exists(), f"{module}: {where} does not exist"
        assert word in (ROOT / where).read_text(encoding="utf-8"), f"{module}: {where} no longer holds {word!r}"
        assert why


def test_every_folder_of_tests_is_a_package_named_after_one_of_the_package():
    folders = [p for p in sorted(TESTS.rglob("*")) if p.is_dir() and "data" not in p.relative_to(TESTS).parts
               and p.name != "__pycache__"]
    assert [f for f in [TESTS, *folders] if not (f / "__init__.py").exists()] == []  # basenames may repeat
    strays = [f.relative_to(ROOT).as_posix() for f in folders if f.relative_to(TESTS).parts[0] not in WHOLE_TOOL
              and not (PACKAGE / f.relative_to(TESTS)).is_dir()]
    assert strays == [], "a folder of tests/ mirrors a folder of normreg/ (or is one of tests/docs, end_to_end)"


def test_a_test_file_named_after_a_module_sits_in_that_modules_folder():
    # tests/test_welch.py would hide the tests of normreg/judge/designs/welch.py from a reader looking in tests/judge/
    mirrors = {mirrored(m): m for m in modules()}
    wrong = [f"{test.relative_to(ROOT)}: the tests of {m.relative_to(ROOT)} go in {mirrored(m).relative_to(ROOT)}"
             for test in sorted(TESTS.rglob("test_*.py")) if test not in mirrors
             for m in mirrors.values() if mirrored(m).name == test.name and m.relative_to(ROOT).as_posix()
             not in ELSEWHERE and test.parent.relative_to(TESTS).parts[:1] != ("data",)]
    assert wrong == []
