"""Lay tests/ out like the package (issue 20 item 7): normreg/judge/sequential.py is tested in
tests/judge/test_sequential.py, normreg/cli.py in tests/test_cli.py; tests of the whole tool sit in tests/docs/
(README and manual contracts) and tests/end_to_end/ (real processes, faults, refusals across commands).

Run from a repository root:  python layout_tests.py   (--dry-run: say what would change, change nothing)
A one-off migration, kept out of the repository once applied: tests/test_tests_layout.py holds the layout after.

Driven by the tables below. What it does, each step a no-op when already done (running it twice changes nothing):
  1. refuses, before changing anything, every top-level tests/test_*.py it has no row for (unless it is named after
     a top-level module: in place already) and every top-level definition of a split file that its table does not
     place; lists them all, so map them in MOVES or SPLITS and rerun;
  2. `git mv`s each file of MOVES, rewriting its `Path(__file__).parent...` chains for its new depth; where both
     the old and the new path exist (a merge kept the old file, edited meanwhile) the old one wins: every change to
     a moved file is made here, so rewriting it again loses nothing;
  3. splits each file of SPLITS by top-level definition into its target files (regenerated from the source
     whenever the source exists, then the source is removed);
  4. makes every folder of tests/ but data/ a package (`__init__.py`): modules are `tests.judge.test_stats`, so
     basenames may repeat (tests/render/test_history.py, tests/report/test_history.py), and the repository root is
     on sys.path, workers spawned by a test included;
  5. rewrites imports of the helper modules and of moved test modules (`from scripted import` -> `from
     tests.scripted import`, `from test_html import browse` -> `from tests.render.test_html import browse`);
  6. checks every `Path(__file__)` chain of every test file that names a file: a line merged in from before the
     move (one or two folders short) is rewritten, anything else that names nothing is shown;
  7. rewrites mentions of moved files (`tests/test_suite.py`) in docs/, README.md, .ci/, .github/, benchmarks/,
     normreg/, suites/, tests/ and the top-level config files, and makes the FIXUPS (exact edits);
  8. sorts the imports of the files it wrote (ruff, I001; F401 on the split files).
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# old path -> new path (relative to the repository root). A row whose paths are equal keeps the file where it is.
MOVES: dict[str, str] = {
    # modules at the top of the package
    "tests/test_api.py": "tests/test_api.py",
    "tests/test_bisect.py": "tests/test_bisect.py",
    "tests/test_choices.py": "tests/test_choices.py",
    "tests/test_cli.py": "tests/test_cli.py",
    "tests/test_compare.py": "tests/test_comparison.py",
    "tests/test_fileio.py": "tests/test_fileio.py",
    "tests/test_layout.py": "tests/test_layout.py",  # the package's import layout
    "tests/test_pipeline.py": "tests/test_pipeline.py",
    "tests/test_pytest_plugin.py": "tests/test_pytest_plugin.py",
    "tests/test_registry.py": "tests/test_registry.py",
    "tests/test_tests_layout.py": "tests/test_tests_layout.py",  # this layout
    "tests/test_main.py": "tests/test_main.py",  # normreg/__main__.py
    # suite/
    "tests/test_suite.py": "tests/suite/test_spec.py",
    "tests/test_targets.py": "tests/suite/test_targets.py",
    # execution/
    "tests/test_ddp.py": "tests/execution/test_ddp.py",
    "tests/test_executor.py": "tests/execution/test_executor.py",
    "tests/test_executor_options.py": "tests/execution/test_executor_options.py",
    "tests/test_failure.py": "tests/execution/test_failure.py",
    "tests/test_noise.py": "tests/execution/test_noise.py",
    "tests/test_placement.py": "tests/execution/test_placement.py",
    "tests/test_repro.py": "tests/execution/test_repro.py",
    "tests/test_results.py": "tests/execution/test_results.py",
    "tests/test_rundir.py": "tests/execution/test_rundir.py",
    "tests/test_worker.py": "tests/execution/test_worker.py",
    "tests/test_lifeline.py": "tests/execution/test_lifeline.py",  # from the cleanup branch
    "tests/test_ray.py": "tests/execution/executors/test_ray.py",
    "tests/test_ray_cluster.py": "tests/execution/executors/test_ray_cluster.py",
    "tests/test_slurm.py": "tests/execution/executors/test_slurm.py",
    # judge/
    "tests/test_baseline.py": "tests/judge/test_baseline.py",
    "tests/test_changepoints.py": "tests/judge/test_changepoints.py",
    "tests/test_curves.py": "tests/judge/test_curves.py",
    "tests/test_margin.py": "tests/judge/test_margin.py",
    "tests/test_pairing.py": "tests/judge/test_pairing.py",
    "tests/test_planning.py": "tests/judge/test_planning.py",
    "tests/test_sequential.py": "tests/judge/test_sequential.py",
    "tests/test_stats.py": "tests/judge/test_stats.py",
    "tests/test_verdicts.py": "tests/judge/test_verdicts.py",
    "tests/test_design_seam.py": "tests/judge/designs/test_base.py",
    # report/
    "tests/test_history.py": "tests/report/test_history.py",
    "tests/test_report.py": "tests/report/test_file.py",
    # render/
    "tests/test_escaping.py": "tests/render/test_escape.py",
    "tests/test_html.py": "tests/render/test_html.py",
    "tests/test_junit.py": "tests/render/test_junit.py",
    "tests/test_labels.py": "tests/render/test_labels.py",
    "tests/test_markdown.py": "tests/render/test_markdown.py",
    "tests/test_plots.py": "tests/render/test_plots.py",
    "tests/test_progress.py": "tests/render/test_progress.py",
    "tests/test_summary.py": "tests/render/test_summary.py",
    "tests/test_terminal.py": "tests/render/test_terminal.py",
    # auditing/
    "tests/test_preflight.py": "tests/auditing/test_preflight.py",
    "tests/test_audit_ddp.py": "tests/auditing/checks/test_unsynced_batchnorm.py",  # from the auditddp branch
    # examples/: the story suites, each running its example module
    "tests/test_examples.py": "tests/examples/test_examples.py",
    # the README and the manual as a contract (docs/extending.md's worked examples, the workflow the README shows)
    "tests/test_docs.py": "tests/docs/test_docs.py",
    "tests/test_readme.py": "tests/docs/test_readme.py",
    "tests/test_readme_own_model.py": "tests/docs/test_readme_own_model.py",
    "tests/test_extending.py": "tests/docs/test_extending.py",
    "tests/test_workflow.py": "tests/docs/test_workflow.py",
    # the whole tool from outside: real processes, signals, faults, refusals across commands, a user's script
    "tests/test_bad_inputs.py": "tests/end_to_end/test_bad_inputs.py",
    "tests/test_faults.py": "tests/end_to_end/test_faults.py",
    "tests/test_flavours.py": "tests/end_to_end/test_flavours.py",
    "tests/test_interrupts.py": "tests/end_to_end/test_interrupts.py",
    "tests/test_refused.py": "tests/end_to_end/test_refused.py",
    "tests/test_script.py": "tests/end_to_end/test_script.py",
    "tests/test_small.py": "tests/end_to_end/test_small.py",
    "tests/test_stops.py": "tests/end_to_end/test_stops.py",
    "tests/test_checkpoints.py": "tests/end_to_end/test_checkpoints.py",  # from the ckpt branch: kills, resumes
}


@dataclass(frozen=True)
class Split:
    """One test file split by top-level definition. `place` maps each definition's name to the file it goes to
    (a tuple: copied into each). A target whose name does not start with `test_` is a helper module: the others
    import what they use from it. `replace` swaps a definition's source; `drop_params` are fixture parameters
    removed from the tests' signatures (the name is then imported from the helper module)."""

    docstrings: dict[str, str]
    place: dict[str, str | tuple[str, ...]]
    mentioned_as: str  # what a mention of the split file (in the docs, say) now names
    replace: dict[str, str] = field(default_factory=dict)
    drop_params: tuple[str, ...] = ()
    helper_imports: tuple[str, ...] = ()  # what the replaced definitions need beyond the source's imports


AUDITED = '''@functools.cache
def audited(name: str) -> AuditReport:
    """The test suite `name` audited once per session (about 0.1 s each once torch and Lightning are imported);
    reports are frozen, so the tests share them."""
    return audit_suite(SUITES / f"{name}.yaml")'''

A = "tests/auditing/"
SPLITS: dict[str, Split] = {
    "tests/test_audit.py": Split(
        docstrings={
            A + "helpers.py": "The audit's test suites and helpers shared by its tests.\n\nModels live in "
            "data/suites/audit_models.py, written as plain user Lightning code; the suites beside it pair them.",
            A + "checks/test_checks.py": "normreg/auditing/checks/__init__.py: every check registered once, in "
            "order; a new check is one registered function.",
            A + "checks/test_pair_divergence.py": "The pair divergence check: where a pair's computations part, "
            "in which mode, and why (batch composition, mode, data, names, inputs changed outside any module).",
            A + "checks/test_batch_independence.py": "The batch independence check: a module whose outputs for "
            "one example depend on the other examples of the batch, found by its outputs, not its type.",
            A + "checks/test_train_mode_without_training.py": "The check for train mode where nothing trains: "
            "BatchNorm (and dropout) in train mode while acting, serving or predicting.",
            A + "checks/test_frozen_drift.py": "The frozen drift check: running statistics of frozen modules that "
            "drift because they run in train mode.",
            A + "checks/test_per_source_statistics.py": "The per-source statistics check: one BatchNorm "
            "normalising sources with different statistics in separate calls.",
            A + "checks/test_heterogeneous_normalisation.py": "The heterogeneous normalisation check: input "
            "features on different scales normalised together.",
            A + "test_divergence.py": "normreg/auditing/divergence.py: rows matched, not positions; the first "
            "module whose outputs differ, on hand recordings.",
            A + "test_findings.py": "normreg/auditing/findings.py: the audit report's JSON, versioned, sorted and "
            "complete.",
            A + "test_run.py": "normreg/auditing/run.py: `audit_suite` and `normreg audit` (variants, bad input, exit "
            "codes), and the audit `normreg run` attaches to a failing pair.",
            "tests/render/test_audit.py": "normreg/render/audit.py: the audit's terminal view.",
        },
        place={
            "SUITES": A + "helpers.py", "audited": A + "helpers.py", "findings": A + "helpers.py",
            "mode": A + "helpers.py", "BatchCentre": A + "helpers.py",
            "test_every_check_is_registered_once_in_order_and_reports_list_them": A + "checks/test_checks.py",
            "test_a_new_check_is_one_registered_function": A + "checks/test_checks.py",
            "test_dropout_in_train_mode_is_named_as_dropout_not_batch_dependence":
                A + "checks/test_train_mode_without_training.py",
            "test_a_variant_with_its_own_data_is_compared_under_it": A + "checks/test_pair_divergence.py",
            "test_norms_under_different_names_are_named_not_the_next_shared_module":
                A + "checks/test_pair_divergence.py",
            "test_twin_towers_diverge_at_the_first_batchnorm_in_train_mode_only": A + "checks/test_pair_divergence.py",
            "test_rows_are_matched_not_positions": A + "checks/test_pair_divergence.py",
            "test_layernorm_control_is_identical_and_a_loss_weighting_is_information":
                A + "checks/test_pair_divergence.py",
            "test_a_frozen_backbone_in_train_mode_diverges_by_mode": A + "checks/test_pair_divergence.py",
            "test_inputs_changed_outside_any_module_are_named_as_such": A + "checks/test_pair_divergence.py",
            "test_a_step_that_needs_a_trainer_is_reported_not_fatal": A + "checks/test_pair_divergence.py",
            "test_match_rows_recovers_a_permutation_and_refuses_other_rows": A + "test_divergence.py",
            "_independence": A + "checks/test_batch_independence.py",
            "test_batch_independence": A + "checks/test_batch_independence.py",
            "test_batch_independence_names_each_responsible_batchnorm_and_restores_state":
                A + "checks/test_batch_independence.py",
            "test_acting_in_train_mode_inside_the_train_dataloader_is_caught": A + "checks/test_batch_independence.py",
            "DictInput": A + "checks/test_batch_independence.py",
            "test_batch_independence_slices_tensors_inside_a_dict": A + "checks/test_batch_independence.py",
            "test_rollouts_in_train_mode_are_flagged_with_values_per_channel":
                A + "checks/test_train_mode_without_training.py",
            "test_serving_single_examples_in_train_mode_is_flagged": A + "checks/test_train_mode_without_training.py",
            "test_batchnorm_without_running_statistics_is_flagged_even_in_eval_mode":
                A + "checks/test_train_mode_without_training.py",
            "test_frozen_batchnorm_in_train_mode_drifts": A + "checks/test_frozen_drift.py",
            "test_parameters_no_optimizer_updates_count_as_frozen": A + "checks/test_frozen_drift.py",
            "_two_calls": A + "checks/test_per_source_statistics.py",
            "test_per_source_statistics_fire_on_different_sources_only": A + "checks/test_per_source_statistics.py",
            "test_per_source_statistics_in_a_suite": A + "checks/test_per_source_statistics.py",
            "test_positions_and_velocities_normalised_together_are_flagged":
                A + "checks/test_heterogeneous_normalisation.py",
            "test_heterogeneous_normalisation_only_looks_at_input_features":
                A + "checks/test_heterogeneous_normalisation.py",
            "test_first_divergence_finds_a_batch_dependent_custom_module": A + "test_divergence.py",
            "test_json_report_is_versioned_sorted_and_complete": A + "test_findings.py",
            "test_render_names_the_guilty_layer": "tests/render/test_audit.py",
            "test_unknown_variant_is_bad_input": A + "test_run.py",
            "test_variant_option_audits_only_that_pair": A + "test_run.py",
            "test_cli_exit_codes": A + "test_run.py",
            "test_cli_bad_input_exits_2": A + "test_run.py",
            "test_run_attaches_the_audit_to_a_failing_pair": A + "test_run.py",
            "test_run_survives_an_audit_that_cannot_run": A + "test_run.py",
            "test_run_with_a_fake_runner_does_not_audit_by_default": A + "test_run.py",
        },
        mentioned_as="tests/auditing/",
        replace={"audited": AUDITED},
        drop_params=("audited",),
        helper_imports=("import functools",),
    ),
    "tests/test_designs.py": Split(
        docstrings={
            "tests/judge/designs/test_designs.py": "normreg/judge/designs/__init__.py: the registry of statistical "
            "tests, the one source of every choice of design.",
            "tests/judge/designs/test_permutation.py": "normreg/judge/designs/permutation.py: the permutation test "
            "against scipy, by simulation, end to end.",
        },
        place={
            "test_every_choice_comes_from_the_registry": "tests/judge/designs/test_designs.py",
            **{name: "tests/judge/designs/test_permutation.py" for name in (
                "ACC", "WELCH", "DATA", "mean_diff", "scipy_p", "rl_returns",
                "test_permutation_p_values_match_scipy_exactly_over_all_splits",
                "test_permutation_is_monte_carlo_beyond_twenty_thousand_splits",
                "test_permutation_verdicts_follow_the_same_rules_and_intervals",
                "test_permutation_false_alarms_stay_at_alpha_on_skewed_bimodal_returns",
                "test_permutation_power_by_simulation_agrees_with_the_t_test_on_normal_data",
                "test_a_suite_with_design_permutation_runs_end_to_end",
                "test_permutation_interval_is_at_the_level_the_verdict_used",
                "test_permutation_seed_advice_comes_from_the_permutation_test",
                "test_permutation_plan_promises_the_rate_of_the_real_test")},
        },
        mentioned_as="tests/judge/designs/test_permutation.py",  # the docs cite its simulations
    ),
}

# Exact edits, each made where its old text is found (after the moves): what a path rewrite cannot do.
FIXUPS: list[tuple[str, str, str]] = [
    # figures may name a test in any folder of tests/ (the pattern, wherever test_docs.py holds it, and its message)
    ("tests/docs/test_docs.py", r"tests/test_\w+\.py", r"tests/(?:\w+/)*test_\w+\.py"),
    ("tests/docs/test_docs.py", "tests/test_....py", "tests/.../test_....py"),
    ("docs/development.md", "the test (`tests/test_....py`)", "the test (`tests/.../test_....py`)"),
    ("docs/development.md",
     "Tests mirror the modules; bad-input suites, one per error, live in `tests/data/bad/`; golden Markdown and "
     "JUnit\n",
     "Tests mirror the modules: the tests of `normreg/judge/sequential.py` are in `tests/judge/test_sequential.py`,\n"
     "those of `normreg/cli.py` in `tests/test_cli.py`; a module tested elsewhere is listed, with the file that tests\n"
     "it and why, in `tests/test_tests_layout.py`, which holds the layout. Tests of the whole tool sit in\n"
     "`tests/docs/` (the README and these pages as a contract) and `tests/end_to_end/` (real processes, faults,\n"
     "refusals). Each folder of `tests/` is a package, so helpers are imported as `from tests.scripted import ...`.\n"
     "Bad-input suites, one per error, live in `tests/data/bad/`; golden Markdown and JUnit\n"),
    # the moved file's own name holds the check's name, and so do notes that name where an error was raised
    ("tests/auditing/checks/test_unsynced_batchnorm.py", "    (note,) = [n for n in report.notes if CHECK in n]\n",
     '    (note,) = [n for n in report.notes if f"the {CHECK} check" in n]\n'),
]

# Where mentions of a moved test file are rewritten (files under these, or these files).
MENTIONS_IN = ["docs", "README.md", ".ci", ".github", "benchmarks", "normreg", "suites", "tests", "pyproject.toml",
               "mkdocs.yml"]
MENTION_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".txt", ".cfg", ".ini", ""}

FILE_CHAIN = re.compile(r"Path\(__file__\)(?P<resolve>\.resolve\(\))?"
                        r"(?P<up>(?:\.parent(?![\w]))+|\.parents\[(?P<n>\d+)\])")


class LayoutError(Exception):
    pass


def depth(path: str) -> int:
    """Folders below tests/: 0 for tests/test_cli.py, 1 for tests/judge/test_stats.py."""
    return len(Path(path).parts) - 2


def rechain(text: str, shift: int) -> str:
    """Rewrite `Path(__file__).parent...` chains for a file `shift` folders deeper than before."""
    if shift == 0:
        return text

    def sub(m: re.Match[str]) -> str:
        levels = int(m["n"]) + 1 if m["n"] is not None else m["up"].count(".parent")
        levels += shift
        if levels < 1:
            raise LayoutError(f"{m[0]!r} climbs above the file's folder after the move")
        up = ".parent" if levels == 1 else f".parents[{levels - 1}]"
        return f"Path(__file__){m['resolve'] or ''}{up}"

    return FILE_CHAIN.sub(sub, text)


def unmatched_file_uses(text: str) -> list[str]:
    """Lines using __file__ in a form rechain does not rewrite (shown for the integrator to check)."""
    return [line.strip() for line in text.splitlines()
            if re.search(r"(?<![\"'.])\b__file__\b", line) and not FILE_CHAIN.search(line)
            and "Path(__file__)" not in line]


class Tree:
    """The repository, changed through git (or only described, with --dry-run)."""

    def __init__(self, root: Path, dry_run: bool) -> None:
        self.root, self.dry_run = root, dry_run
        self.changes: list[str] = []
        self.written: set[str] = set()

    def git(self, *args: str) -> None:
        if not self.dry_run:
            subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def write(self, rel: str, text: str, what: str) -> None:
        path = self.root / rel
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        self.changes.append(f"{what}: {rel}")
        self.written.add(rel)
        if not self.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            self.git("add", rel)

    def move(self, old: str, new: str) -> None:
        self.changes.append(f"move: {old} -> {new}")
        self.written.add(new)
        if not self.dry_run:
            (self.root / new).parent.mkdir(parents=True, exist_ok=True)
            self.git("mv", "-f", old, new)

    def remove(self, rel: str) -> None:
        self.changes.append(f"remove: {rel}")
        if not self.dry_run:
            self.git("rm", "-q", "-f", rel)


# ------------------------------------------------------------------------------------------------- checks first

def unmapped(root: Path) -> list[str]:
    known = set(MOVES) | set(MOVES.values()) | set(SPLITS)
    return sorted(p.relative_to(root).as_posix() for p in (root / "tests").glob("test_*.py")
                  if p.relative_to(root).as_posix() not in known
                  and not (root / "normreg" / f"{p.stem.removeprefix('test_')}.py").exists())  # in place already


@dataclass(frozen=True)
class Part:
    name: str
    source: str  # the definition's text, decorators included
    uses: frozenset[str]
    is_import: bool = False


def parts_of(text: str, rel: str) -> tuple[str | None, list[Part]]:
    """The module docstring and each top-level statement of a split file, with the names it uses."""
    tree = ast.parse(text, filename=rel)
    lines = text.splitlines()
    doc = ast.get_docstring(tree)
    out = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # the docstring
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        source = "\n".join(lines[start - 1: node.end_lineno])
        uses = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(Part("", source, uses, is_import=True))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.append(Part(node.name, source, uses))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out.append(Part(node.targets[0].id, source, uses))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.append(Part(node.target.id, source, uses))
        else:
            raise LayoutError(f"{rel}:{node.lineno}: a top-level statement the split cannot place: "
                              f"{lines[node.lineno - 1].strip()!r}")
    return doc, out


def unplaced(root: Path) -> list[str]:
    problems = []
    for rel, split in SPLITS.items():
        if not (root / rel).exists():
            continue
        _, parts = parts_of((root / rel).read_text(encoding="utf-8"), rel)
        names = [p.name for p in parts if not p.is_import]
        problems += [f"{rel}: {name} (add it to SPLITS[{rel!r}].place)" for name in names if name not in split.place]
        problems += [f"{rel}: {name} defined twice" for name in sorted({n for n in names if names.count(n) > 1})]
        for name, target in split.place.items():
            for t in (target,) if isinstance(target, str) else target:
                if t not in split.docstrings:
                    problems.append(f"SPLITS[{rel!r}]: {name} goes to {t}, which has no docstring entry")
    return problems


# ---------------------------------------------------------------------------------------------------- the steps

def do_moves(tree: Tree) -> None:
    for old, new in MOVES.items():
        if old == new:
            continue
        has_old, has_new = (tree.root / old).exists(), (tree.root / new).exists()
        if not has_old:
            continue
        text = rechain(tree.read(old), depth(new) - depth(old))
        if tree.dry_run:
            tree.changes.append(f"move: {old} -> {new}")
            continue
        for line in unmatched_file_uses(text):
            print(f"check by hand, {new}: __file__ used as {line!r}")
        if has_new:
            print(f"{old} and {new} both exist: {new} is rewritten from {old} (the old path is the one edited)")
        tree.move(old, new)
        tree.write(new, text, "rewrite paths")


CHAIN_TO = re.compile(FILE_CHAIN.pattern + r"""(?P<rest>\s*/\s*["'](?P<comp>[^"'/]+)["'])""")
ROOT_CHAIN = re.compile(r"^(?P<var>ROOT)\s*=\s*" + FILE_CHAIN.pattern + r"\s*$", re.M)


def check_chains(tree: Tree) -> None:
    """Every `Path(__file__)...` chain of a test file followed by `/ "name"` names something that exists, and
    `ROOT = Path(__file__)...` is the folder of pyproject.toml. A chain that misses by the file's depth (a line
    merged in from before the move) is rewritten; others are shown."""
    for path in test_files(tree.root):
        rel = path.relative_to(tree.root).as_posix()
        text = tree.read(rel)

        def fix(m: re.Match[str], exists: Callable[[Path], bool], path: Path = path, rel: str = rel) -> str:
            levels = int(m["n"]) + 1 if m["n"] is not None else m["up"].count(".parent")
            if exists(path.parents[levels - 1]):
                return m[0]
            for shift in range(1, depth(rel) + 1):
                if levels - 1 + shift < len(path.parents) and exists(path.parents[levels - 1 + shift]):
                    return rechain(m[0], shift)
            print(f"check by hand, {rel}: {m[0].strip()!r} names nothing that exists")
            return m[0]

        new = CHAIN_TO.sub(lambda m: fix(m, lambda d, c=m["comp"]: (d / c).exists()), text)
        new = ROOT_CHAIN.sub(lambda m: fix(m, lambda d: (d / "pyproject.toml").exists()), new)
        tree.write(rel, new, "paths of lines merged in from before the move")


def drop_params(source: str, names: tuple[str, ...]) -> str:
    def fix(m: re.Match[str]) -> str:
        params = [p for p in (s.strip() for s in m["params"].split(",")) if p and p not in names]
        return f"{m['head']}({', '.join(params)}){m['tail']}"

    return re.sub(r"(?P<head>^def \w+)\((?P<params>[^()]*)\)(?P<tail>[^\n]*:)", fix, source, flags=re.M)


def docstring(text: str) -> str:
    paragraphs = [textwrap.fill(" ".join(p.split()), width=114) for p in text.split("\n\n")]
    return '"""' + "\n\n".join(paragraphs) + '"""'


def do_splits(tree: Tree) -> None:
    for rel, split in SPLITS.items():
        if not (tree.root / rel).exists():
            continue
        _, parts = parts_of(tree.read(rel), rel)
        imports = [p.source for p in parts if p.is_import and p.source != "from __future__ import annotations"]
        defs = [p for p in parts if not p.is_import]
        where: dict[str, tuple[str, ...]] = {
            p.name: (split.place[p.name],) if isinstance(split.place[p.name], str) else split.place[p.name]
            for p in defs}
        helper_names = {name for name, targets in where.items()
                        for t in targets if not Path(t).name.startswith("test_")}
        for target, doc in split.docstrings.items():
            mine = [p for p in defs if target in where[p.name]]
            bodies = [split.replace.get(p.name, p.source) for p in mine]
            if split.drop_params:
                bodies = [drop_params(b, split.drop_params) for b in bodies]
            uses = set().union(*(p.uses for p in mine))
            is_helper = not Path(target).name.startswith("test_")
            borrowed = []
            if not is_helper:
                for name in sorted(uses & helper_names - {p.name for p in mine}):
                    (home,) = [t for t in where[name] if not Path(t).name.startswith("test_")]
                    borrowed.append(f"from {home.removesuffix('.py').replace('/', '.')} import {name}")
            head = [docstring(doc), "", "from __future__ import annotations", ""]
            head += list(split.helper_imports if is_helper else ()) + imports + borrowed
            text = "\n".join(head) + "\n\n\n" + "\n\n\n".join(bodies) + "\n"
            text = rechain(text, depth(target) - depth(rel))
            tree.write(target, text, f"split {rel}")
        tree.remove(rel)


def make_packages(tree: Tree) -> None:
    """An empty `__init__.py` in tests/ and in every folder of it that holds tests (not in data/)."""
    targets = [*MOVES.values(), *(t for s in SPLITS.values() for t in s.docstrings)]
    targets += [p.relative_to(tree.root).as_posix() for p in (tree.root / "tests").rglob("test_*.py")
                if "data" not in p.relative_to(tree.root / "tests").parts]
    folders = set()
    for target in targets:
        folders |= {f for f in Path(target).parents if f.parts[:1] == ("tests",)}
    for folder in sorted(folders):
        init = (folder / "__init__.py").as_posix()
        if not (tree.root / init).exists():
            tree.write(init, "", "package")


def helper_modules(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "tests").glob("*.py") if not p.name.startswith("test_")
                  and p.name != "__init__.py")


def test_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "tests").rglob("*.py")
                  if "data" not in p.relative_to(root / "tests").parts and p.name != "__init__.py")


def module_names(root: Path) -> dict[str, str]:
    """Top-level module names the tests import one another by (`from test_html import browse`, `from scripted
    import ...`) -> their dotted names in the tests package."""
    names = {stem: f"tests.{stem}" for stem in helper_modules(root)}
    for old, new in MOVES.items():
        if (root / new).exists():
            names[Path(old).stem] = new.removesuffix(".py").replace("/", ".")
    return names


def fix_imports(tree: Tree) -> None:
    names = module_names(tree.root)
    helpers = "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
    pattern = re.compile(rf"^(?P<indent>[ \t]*)(?P<kw>from|import) (?P<mod>{helpers})\b(?=[ \n,])", re.M)
    for path in test_files(tree.root):
        rel = path.relative_to(tree.root).as_posix()
        text = tree.read(rel)
        new = pattern.sub(lambda m: f"{m['indent']}{m['kw']} {names[m['mod']]}", text)
        if re.search(r"^[ \t]*import tests\.[\w.]+$", new, re.M):
            raise LayoutError(f"{rel}: `import <helper>` used as a module name; rewrite it to `from tests import ...`")
        tree.write(rel, new, "helper imports")


def mentions(root: Path) -> list[Path]:
    out = []
    for name in MENTIONS_IN:
        p = root / name
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += [f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix in MENTION_SUFFIXES
                    and "__pycache__" not in f.parts and not f.name.endswith(".pyc")]
    return out


def fix_mentions(tree: Tree) -> None:
    renamed = {old: new for old, new in MOVES.items() if old != new}
    renamed |= {rel: s.mentioned_as for rel, s in SPLITS.items()}
    if not renamed:
        return
    full = re.compile(r"(?<![\w/.])(" + "|".join(map(re.escape, sorted(renamed, key=len, reverse=True))) + r")\b")
    bare = {Path(old).name: new for old, new in renamed.items()}
    short = re.compile(r"(?<![\w/.\"'])(" + "|".join(map(re.escape, sorted(bare, key=len, reverse=True)))
                       + r")(?![\w])")
    for path in mentions(tree.root):
        rel = path.relative_to(tree.root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue

        new = full.sub(lambda m, rel=rel: beside(rel, renamed[m[1]]), text)
        if rel.startswith("tests/"):  # `(test_suite.py)` in a test's docstring: the file it means
            new = short.sub(lambda m, rel=rel: beside(rel, bare[m[1]]), new)
        if rel.endswith(".py"):
            new = rewrap_long_comments(rel, text, new)
        tree.write(rel, new, "mentions of moved tests")


def beside(rel: str, new: str) -> str:
    """How file `rel` names the moved test `new`: a test names a test beside it by its file name."""
    near = rel.startswith("tests/") and Path(new).parent == Path(rel).parent and new.endswith(".py")
    return Path(new).name if near else new


def rewrap_long_comments(rel: str, old: str, new: str, width: int = 120) -> str:
    """Comment lines a longer path pushed past the line length, broken in two; other such lines are shown."""
    before = set(old.splitlines())
    out = []
    for line in new.splitlines(keepends=True):
        body = line.rstrip("\n")
        if len(body) <= width or body in before:
            out.append(line)
            continue
        m = (re.match(r"(?P<indent>\s*)(?P<code>)(?P<hash>#\s*)(?P<text>.*)$", body)  # a comment line
             or re.match(r"(?P<indent>\s*)(?P<code>.*?)(?P<hash>#\s*)(?P<text>[^#\"']*)$", body))
        if m and m["text"]:
            cut = body.rfind(" ", 0, width + 1)
            if cut > len(m["indent"]) + len(m["code"]) + len(m["hash"]):
                out.append(body[:cut] + "\n")
                pad = m["indent"] + (" " * len(m["code"]) if m["code"] else "")
                out.append(f"{pad}# {body[cut + 1:]}" + line[len(body):])
                continue
        print(f"check by hand, {rel}: a line past {width} characters: {body.strip()[:80]}...")
        out.append(line)
    return "".join(out)


def do_fixups(tree: Tree) -> None:
    for rel, old, new in FIXUPS:
        if (tree.root / rel).exists():
            text = tree.read(rel)
            if old in text:
                tree.write(rel, text.replace(old, new), "fixup")


def find_ruff() -> list[str]:
    """The ruff command (beside this Python, on PATH, or as its module), checked before anything changes."""
    beside = Path(sys.executable).parent / "ruff"
    ruff = [str(beside)] if beside.exists() else [shutil.which("ruff") or ""]
    if not ruff[0]:
        ruff = [sys.executable, "-m", "ruff"]
    if subprocess.run([*ruff, "--version"], capture_output=True).returncode != 0:
        raise LayoutError("ruff is needed to sort the imports of the files written: put it on PATH; nothing changed")
    return ruff


def sort_imports(tree: Tree, files: list[str], ruff: list[str]) -> None:
    files = [f for f in sorted(set(files)) if f.endswith(".py") and (tree.root / f).exists()]
    if not files or tree.dry_run:
        return
    split_targets = {t for s in SPLITS.values() for t in s.docstrings}
    for select, group in (("I001", files), ("I001,F401", [f for f in files if f in split_targets])):
        if group:
            subprocess.run([*ruff, "check", "--fix", "--select", select, "-q", *group], cwd=tree.root, check=False)
    tree.git("add", *files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if not (root / "normreg").is_dir() or not (root / "tests").is_dir():
        print("run this from the repository root (the folder holding normreg/ and tests/)", file=sys.stderr)
        return 2
    problems = [f"{rel}: no row in MOVES or SPLITS" for rel in unmapped(root)] + unplaced(root)
    if problems:
        print(f"layout_tests: nothing changed; map these first (in {__file__}: MOVES / SPLITS):",
              *problems, sep="\n  ", file=sys.stderr)
        return 1
    ruff = find_ruff()
    tree = Tree(root, args.dry_run)
    do_moves(tree)
    do_splits(tree)
    make_packages(tree)
    fix_imports(tree)
    check_chains(tree)
    fix_mentions(tree)
    do_fixups(tree)
    sort_imports(tree, sorted(tree.written), ruff)
    print("\n".join(tree.changes) if tree.changes else "layout_tests: nothing to do (tests/ already laid out)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LayoutError as e:
        print(f"layout_tests: {e}", file=sys.stderr)
        sys.exit(1)
