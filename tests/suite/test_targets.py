"""Target resolution: every way a target can be wrong is a SuiteError naming the suite line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from normreg.errors import SuiteError
from normreg.suite.spec import load_suite
from normreg.suite.targets import build

SUITE = Path(__file__).parents[1] / "data" / "suites" / "bad_targets.yaml"

CASES = [
    ("missing_module", "cannot import module 'no_such_module_xyz'", ".target"),
    ("missing_attr", "has no attribute 'Clasifier'. Did you mean 'tiny_models:Classifier'?", ".target"),
    ("bad_arg", "takes no argument 'hiden'. Did you mean 'hidden'?", ".args.hiden"),
    ("wrong_kind", "returned builtins.object, but a 'model' target must return a LightningModule", ".target"),
    ("data_as_model", "returned tiny_models.Blobs, but a 'model' target must return a LightningModule", ".target"),
]


@pytest.mark.parametrize("variant,fragment,suffix", CASES, ids=[c[0] for c in CASES])
def test_bad_target(variant: str, fragment: str, suffix: str) -> None:
    suite = load_suite(SUITE)
    v = suite.variant(variant)
    with pytest.raises(SuiteError) as info:
        build(suite, v.model, "model")
    assert fragment in str(info.value)
    assert info.value.key == f"variants.{variant}.model{suffix}"
    assert info.value.line == v.model.line and info.value.path == str(SUITE)


def test_module_next_to_the_suite_imports_from_any_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    suite = load_suite(Path(__file__).parents[1] / "data" / "suites" / "tiny.yaml")
    model = build(suite, suite.variant("a").model, "model")
    assert type(model).__name__ == "Classifier"
    data = build(suite, suite.variant("a").data, "data")
    assert type(data).__name__ == "Blobs"


def test_a_suite_folder_already_on_the_path_goes_first(tmp_path, monkeypatch) -> None:
    """Another suite's folder met earlier in the process (a worker's inherited path) must not shadow this one's."""
    import sys

    from normreg.suite.targets import importable

    earlier, this = tmp_path / "earlier", tmp_path / "this"
    earlier.mkdir()
    this.mkdir()
    monkeypatch.setattr(sys, "path", [str(earlier.resolve()), str(this.resolve()), *sys.path])
    importable([this])
    assert sys.path[0] == str(this.resolve()) and sys.path.count(str(this.resolve())) == 1


def test_a_module_of_the_same_name_imported_for_another_suite_does_not_win(tmp_path: Path, monkeypatch) -> None:
    """Two suites in two folders, each with its own `shared_name.py`, built one after the other in one process
    (the Python API, the pytest plugin, `--workers 0`): each gets its own module, not the one imported first."""
    import sys

    from normreg.suite.targets import resolve

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    suites = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "shared_name.py").write_text(f"def which():\n    return {name!r}\n")
        (folder / "s.yaml").write_text("name: s\nmetrics: {acc: {}}\nvariants: {a: {model: shared_name:which}}\n")
        suites.append(load_suite(folder / "s.yaml"))
    for suite, name in zip([*suites, suites[0]], ("first", "second", "first")):
        assert resolve(suite, suite.variant("a").model)() == name
