"""The package layout: each stage imports only from the stages before it, and nothing imports in a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "normreg"
# What each part may import from normreg, besides itself and the shared modules.
SHARED = {"errors", "fileio", "environment", "choices", "names", "registry", "version"}
ALLOWED = {
    "suite": set(),
    "execution": {"suite"},
    "judge": {"suite", "execution"},
    "auditing": {"suite", "execution"},
    "report": {"suite", "execution", "judge", "auditing"},
    "render": {"suite", "execution", "judge", "auditing", "report"},
}


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at `root` by its dotted name (a package by its own name, for its __init__)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the package that module `name` (at `path`) imports, in every form: `import a.b`,
    `from a import b` (b a module or a name), relative imports, `importlib.import_module("a.b")` and
    `__import__("a.b")` with a literal name, at module level, inside functions and under TYPE_CHECKING alike.
    An import names the module it names; the packages above it, which Python also runs, are not edges (a package
    that re-exports its modules would otherwise be a cycle with each of them)."""
    top = name.split(".")[0]
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]  # the package relative imports start in
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets |= {f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names}
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (isinstance(node.func, ast.Name) and node.func.id == "__import__"
                   or isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")):
            targets.add(node.args[0].value)
    found = set()
    for target in targets:
        while target and target.split(".")[0] == top and target not in known:  # `a.b.name` names module `a.b`
            target = target.rpartition(".")[0]
        if target in known and target != name:
            found.add(target)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules that import each other (Tarjan), as
    `[a, b, ..., a]`; empty when the imports form no cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges.get(v, ()):
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    out = []
    for group in groups:  # walk inside the group from its first module until a module repeats
        path = [min(group)]
        while path.count(path[-1]) < 2:
            path.append(min(w for w in edges[path[-1]] if w in group))
        out.append(path[path.index(path[-1]):])
    return out


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_each_stage_imports_only_earlier_stages():
    bad = []
    for module, targets in graph(PACKAGE).items():
        if part(module) in ALLOWED:
            wrong = {part(t) for t in targets} - ALLOWED[part(module)] - SHARED - {part(module)}
            if wrong:
                bad.append(f"{module} imports normreg.{', normreg.'.join(sorted(wrong))}")
    assert bad == []


def test_shared_modules_import_no_stage():
    edges = graph(PACKAGE)
    for name in SHARED:
        assert {part(t) for t in edges[f"normreg.{name}"]} <= SHARED, name


# The suite package in layers, each importing only those before it: the YAML-free model; reading bounded YAML
# with the line of every key; building a Suite from it; files in, suites out; and resolving targets.
SUITE_LAYERS = {
    "normreg.suite.model": set(),
    "normreg.suite.diff": set(),
    "normreg.suite.loading": {"normreg.suite.model"},
    "normreg.suite.building": {"normreg.suite.model", "normreg.suite.loading"},
    "normreg.suite.spec": {"normreg.suite.model", "normreg.suite.loading", "normreg.suite.building"},
    "normreg.suite.targets": {"normreg.suite.model"},
}
# What judging, reporting and rendering may know of the suite: its frozen model (and which keys changed), never
# how a suite file is read.
YAML_FREE = ("judge", "report", "render")
SUITE_MODEL = {"normreg.suite.model", "normreg.suite.diff"}


def reached(edges: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for t in edges.get(todo.pop(), ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def imports_yaml(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(isinstance(n, ast.Import) and any(a.name.split(".")[0] == "yaml" for a in n.names)
               or isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "yaml" and not n.level
               for n in ast.walk(tree))


def test_suite_modules_import_in_one_direction():
    edges = graph(PACKAGE)
    suite = {m for m in edges if m.startswith("normreg.suite.")}
    assert suite == set(SUITE_LAYERS)  # a new suite module takes its place in the layers
    bad = [f"{m} imports {t}" for m in sorted(suite) for t in sorted(edges[m] & suite - SUITE_LAYERS[m])]
    assert bad == []


def test_judge_report_and_render_know_only_the_suite_model():
    known = modules(PACKAGE)
    edges = graph(PACKAGE)
    bad = []
    for module in sorted(edges):
        if part(module) in YAML_FREE:
            through = {t for t in reached(edges, module) if t.startswith("normreg.suite.")} - SUITE_MODEL
            bad += [f"{module} reaches {t}" for t in sorted(through)]
            bad += [f"{module} imports yaml"] if imports_yaml(known[module]) else []
    assert bad == []
    assert not any(imports_yaml(known[m]) for m in SUITE_MODEL)


def test_importing_judge_report_and_render_loads_no_suite_reader():
    # at run time too: a package's __init__ runs whenever one of its modules is imported, which the import graph
    # above leaves out (auditing/__init__ once pulled suite loading into render/audit.py this way)
    names = sorted(m for m in modules(PACKAGE) if part(m) in YAML_FREE)
    code = "import sys\n" + "".join(f"import {m}\n" for m in names) + (
        "print(sorted(m for m in sys.modules if m == 'yaml' or m.startswith('normreg.suite.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sorted(SUITE_MODEL))


def defined(path: Path) -> set[str]:
    """The names a module defines at its top level (functions, classes, assignments), not those it imports."""
    out: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out |= {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}
    return out


def test_suite_names_are_imported_from_the_module_that_defines_them():
    # so that no suite module turns into a re-export of another (`from normreg.suite.spec import Suite` would
    # work, as spec imports Suite, and tie its importer to YAML loading)
    known = modules(PACKAGE)
    homes = {name: defined(path) for name, path in known.items() if name.startswith("normreg.suite.")}
    bad = []
    for root in (PACKAGE, PACKAGE.parent / "tests", PACKAGE.parent / "benchmarks"):
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                if isinstance(node, ast.ImportFrom) and node.module in homes:
                    bad += [f"{path.name}: {a.name} from {node.module}" for a in node.names
                            if a.name not in homes[node.module]]
    assert bad == []


def test_no_module_imports_in_a_cycle():
    assert cycles(graph(PACKAGE)) == []


def test_no_module_is_named_like_an_api_function():
    # normreg.run / .compare / .audit are functions (normreg/api.py); a module of that name would be bound over
    # them on the package whenever it is imported.
    # (names built, so that re-running the rename script, which rewrites module names in strings, leaves them)
    assert {f"normreg.{name}" for name in ("run", "compare", "audit")} & set(modules(PACKAGE)) == set()


def test_a_planted_cycle_is_found_in_every_import_form(tmp_path: Path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def api():\n    from pkg import a  # function-level, `from package import`\n")
    (pkg / "a.py").write_text("import pkg.sub.b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from ..c import thing\n")
    (pkg / "c.py").write_text("import importlib\nthing = 1\ndef f():\n    return importlib.import_module('pkg')\n")
    (pkg / "d.py").write_text("from . import a\n")  # imports into the cycle, is not part of it
    assert cycles(graph(pkg)) == [["pkg", "pkg.a", "pkg.sub.b", "pkg.c", "pkg"]]
    (pkg / "c.py").write_text("thing = 1\n")
    assert cycles(graph(pkg)) == []
    (pkg / "c.py").write_text("if True:\n    from pkg.sub import b\n")
    assert cycles(graph(pkg)) == [["pkg.c", "pkg.sub.b", "pkg.c"]]


# A function a reader cannot hold in one screen is a sign that a step wants its own name (docs/development.md).
LONGEST_FUNCTION = 60  # lines, from `def` to the last line of the body
# The functions over it, each no longer than now, until they are split: (module, function) -> its length today.
LONG_FUNCTIONS = {
    ("normreg/auditing/checks/batch_independence.py", "batch_independence"): 74,  # one probe, step by step
    ("normreg/auditing/checks/pair_divergence.py", "pair_findings"): 65,
    ("normreg/render/markdown.py", "render_markdown"): 73,  # the page's sections in their order
    ("normreg/render/terminal.py", "render"): 76,  # the terminal summary's sections in their order
    ("normreg/suite/building.py", "_build_suite"): 83,  # the schema checks of a suite, key by key
}


def function_lengths(root: Path) -> dict[tuple[str, str], int]:
    """The length in lines of every function (methods and nested ones too) of the package at `root`, the longest
    of a name in a module."""
    lengths: dict[tuple[str, str], int] = {}
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = (where, node.name)
                lengths[key] = max(lengths.get(key, 0), node.end_lineno - node.lineno + 1)  # type: ignore[operator]
    return lengths


def test_the_length_counter_counts_from_def_to_the_last_line(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("@decorated\ndef f(\n    x,\n):\n    def inner():\n        pass\n\n    return x\n")
    assert function_lengths(pkg) == {("pkg/m.py", "f"): 7, ("pkg/m.py", "inner"): 2}


def test_no_function_is_longer_than_a_screen() -> None:
    lengths = function_lengths(PACKAGE)
    too_long = {key: n for key, n in lengths.items() if n > max(LONGEST_FUNCTION, LONG_FUNCTIONS.get(key, 0))}
    assert too_long == {}, f"split these into named steps (at most {LONGEST_FUNCTION} lines each)"
    assert not any(module == "normreg/cli.py" for module, _ in LONG_FUNCTIONS)
