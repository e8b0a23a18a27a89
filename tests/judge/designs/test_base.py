"""A statistical design is one file: nothing outside `judge/designs/` names a design, and a design registered
anywhere (here, in a test file) reaches a pair check of `normreg run` end to end, with a fake runner."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from normreg import choices
from normreg.judge import designs
from normreg.judge.designs.base import DESIGNS, Look, TTest, register
from normreg.judge.stats import Comparison, PowerModel, _chi2_nodes
from normreg.suite.model import MetricSpec
from normreg.suite.spec import load_suite

PACKAGE = Path(__file__).resolve().parents[3] / "normreg"


def _strings(node: ast.AST) -> Iterator[ast.Constant]:
    """String constants an operand of a comparison holds: itself, or the items of a tuple, list or set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for item in node.elts:
            yield from _strings(item)


def design_names_outside(package: Path, names: Sequence[str]) -> list[str]:
    """Where a module outside `judge/designs/` names a design: a comparison with a design's name (`== "paired"`,
    `in ("welch", "paired")`), or any other string constant equal to one, bar `choices.DEFAULT_DESIGN`."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.startswith("judge/designs/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        compared: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                for operand in (node.left, *node.comparators):
                    for const in (s for s in _strings(operand) if s.value in names):
                        found.append(f"{rel}:{node.lineno} compares with the design name {const.value!r}")
                        compared.add(id(const))
        default = {id(node.value) for node in ast.walk(tree) if rel == "choices.py" and isinstance(node, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "DEFAULT_DESIGN" for t in node.targets)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in compared | default:
                found.append(f"{rel}:{node.lineno} names the design {node.value!r}")
    return found


def test_no_module_outside_the_designs_names_a_design():
    """Whatever differs between designs is a property or method of the design (`StatTest`), never a string test
    on its name elsewhere: adding a design is adding a file."""
    assert design_names_outside(PACKAGE, designs.names()) == []
    assert choices.DEFAULT_DESIGN in designs.names()


def test_the_scan_finds_a_string_test_on_a_design_name(tmp_path: Path):
    (tmp_path / "judge" / "designs").mkdir(parents=True)
    (tmp_path / "judge" / "designs" / "mine.py").write_text('NAME = "paired"\n')  # inside: allowed
    (tmp_path / "planning.py").write_text('def f(design):\n    return design == "paired" or design in ("x", "welch")\n')
    (tmp_path / "choices.py").write_text('DEFAULT_DESIGN = "welch"\nOTHER = "permutation"\n')
    assert design_names_outside(tmp_path, ("welch", "paired", "permutation")) == [
        "choices.py:2 names the design 'permutation'",
        "planning.py:2 compares with the design name 'paired'",
        "planning.py:2 compares with the design name 'welch'",
    ]


# ------------------------------------------------------------------- a design added in a test file, end to end


@dataclass(frozen=True)
class PooledPower(PowerModel):
    """Student's test estimates one pooled variance with n_a + n_b - 2 degrees of freedom."""

    def draws(self) -> tuple[float, np.ndarray, np.ndarray]:
        df = self.n_a + self.n_b - 2
        pooled = ((self.n_a - 1) * self.sd_a**2 + (self.n_b - 1) * self.sd_b**2) / df
        scale = math.sqrt(pooled * (1 / self.n_a + 1 / self.n_b))
        return (math.sqrt(self.sd_a**2 / self.n_a + self.sd_b**2 / self.n_b), scale * np.sqrt(_chi2_nodes(df)),
                np.full(len(_chi2_nodes(df)), float(df)))


class Student(TTest):
    """Student's t-test with a pooled variance: what a design file in `judge/designs/` would hold."""

    name = "student_pooled"
    summary = "Student's t-test: unpaired, one pooled variance"
    label = "Student's"

    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        base, done = self.describe(a, b, spec, alpha, a_name, b_name)
        if done is not None:
            return done
        n_a, n_b, sd_a, sd_b = base["n_a"], base["n_b"], base["sd_a"], base["sd_b"]
        df = n_a + n_b - 2
        se = math.sqrt(((n_a - 1) * sd_a**2 + (n_b - 1) * sd_b**2) / df * (1 / n_a + 1 / n_b))
        return self.t_comparison(base, se, float(df), spec, alpha, self.power_model(sd_a, sd_b, n_a, n_b))

    def power_model(self, sd_a: float, sd_b: float, n_a: float, n_b: float,
                    sd_diff: float | None = None) -> PowerModel:
        return PooledPower(sd_a, sd_b, n_a, n_b)

    def array_stats(self, a: np.ndarray, b: np.ndarray) -> Look:
        n_a, n_b = a.shape[-1], b.shape[-1]
        df = n_a + n_b - 2
        pooled = ((n_a - 1) * a.var(-1, ddof=1) + (n_b - 1) * b.var(-1, ddof=1)) / df
        return b.mean(-1) - a.mean(-1), np.sqrt(pooled * (1 / n_a + 1 / n_b)), np.full(a.shape[:-1], float(df))

    def null_looks(self, a: np.ndarray, b: np.ndarray, sizes_a: Sequence[int],
                   sizes_b: Sequence[int]) -> list[list[Look]]:
        return [[self.array_stats(a[:, :na], b[:, :nb]) for na, nb in zip(sizes_a, sizes_b)]]


@pytest.fixture
def student(monkeypatch: pytest.MonkeyPatch) -> Student:
    """Student's test registered as a design file would register it, into a copy of the registry (undone after)."""
    DESIGNS.names()  # the package's own designs first
    monkeypatch.setattr(DESIGNS, "_parts", dict(DESIGNS._parts))
    register(Student.name)(Student)
    return designs.get(Student.name)  # type: ignore[return-value]


def test_a_design_registered_in_a_test_file_reaches_a_pair_check(tmp_path: Path, student: Student):
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites
    from normreg.render.terminal import render

    values = {"ref": {"acc": [0.900, 0.912, 0.905, 0.898, 0.910]}, "new": {"acc": [0.870, 0.881, 0.866, 0.879, 0.872]}}
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nseeds: 5\nreference: ref\nmetrics: {acc: {goal: max, min_effect: 0.005}}\nvariants:\n"
                    "  ref: {model: m:M}\n  new: {model: m:M}\n")
    suite = load_suite(path)
    suite = replace(suite, stats=replace(suite.stats, design=Student.name))
    report = run_suites([suite], executor=FakeRunner(values), out=tmp_path / "run", baselines=tmp_path / "b")
    (check,) = [c for c in report.checks if c.kind == "pair"]
    c = check.comparison
    ref = st.ttest_ind(values["new"]["acc"], values["ref"]["acc"], equal_var=True)
    assert (c.design, c.df, c.verdict) == (Student.name, 8.0, "regressed")
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert c.power == pytest.approx(student.power_model(c.sd_a, c.sd_b, 5, 5).verdict_power(0.01, 0.005, 0.05))
    assert report.verdict == "fail" and "regressed" in render(report)
    assert report.to_json()["suites"][0]["design"] == Student.name


def test_a_registered_design_serves_staged_seeding_and_planning(student: Student, monkeypatch: pytest.MonkeyPatch):
    """Staged seeding calibrates its boundaries from the design's own `null_looks` and judges each look with its
    own `array_stats`; `plan` asks its power model. Each is checked to be the registered design's, not Welch's."""
    from normreg.judge.sequential import simulate, t_correction

    looked: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    own_looks = Student.null_looks

    def null_looks(self: Student, a: np.ndarray, b: np.ndarray, sizes_a: Sequence[int],
                   sizes_b: Sequence[int]) -> list[list[Look]]:
        looked.append((tuple(sizes_a), tuple(sizes_b)))
        return own_looks(self, a, b, sizes_a, sizes_b)

    monkeypatch.setattr(Student, "null_looks", null_looks)
    r = t_correction((3, 6, 9), (3, 6, 9), Student.name, "pocock", 0.05)  # looks no other test plans: not cached
    assert looked == [((3, 6, 9), (3, 6, 9))]
    assert 0.5 < r < 1.0  # t statistics at few seeds: the level is lowered
    # Welch's correction is the worst over five spread ratios; the pooled test's, over its one set of looks
    assert r != t_correction((3, 6, 9), (3, 6, 9), "welch", "pocock", 0.05)

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2000, 8)), rng.standard_normal((2000, 8))
    codes, _ = simulate(a, b, MetricSpec("m", "max", 0.0), design=Student.name, stages=(3, 5, 8))
    assert float(np.mean(codes < 2)) == pytest.approx(0.05, abs=0.015)
    # spreads 1 and 4 at equal seeds: the pooled test's t is Welch's, but its n_a + n_b - 2 degrees of freedom
    # overstate what the data hold, so it finds more differences that are not there
    wide = 4.0 * b
    alarms = {d: float(np.mean(simulate(a, wide, MetricSpec("m", "max", 0.0), design=d, stages=(3, 5, 8))[0] < 2))
              for d in (Student.name, "welch")}
    assert alarms[Student.name] > alarms["welch"] + 0.01, alarms

    n = student.seeds_for(0.02, 0.01, 0.01, 0.05, 0.8, delta=0.01)
    assert n is not None and student.power_model(0.01, 0.01, n, n).verdict_power(0.02, 0.01, 0.05) >= 0.8
    assert student.power_model(0.01, 0.01, n - 1, n - 1).verdict_power(0.02, 0.01, 0.05) < 0.8  # the fewest
