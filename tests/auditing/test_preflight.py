"""The up-front check of `normreg run`: every mistake that used to surface after training fails first, exit 2,
one line with a did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from normreg.errors import InputError, SuiteError
from normreg.pipeline import run_suites
from normreg.suite.spec import load_suite

TINY = Path(__file__).parents[1] / "data" / "suites" / "tiny.yaml"
WINE = Path(__file__).parents[1] / "data" / "suites" / "userproj" / "wine.yaml"


def _run(tmp_path: Path, suite: Path, *overrides: str) -> None:
    from normreg.execution.executors.local import LocalExecutor, LocalOptions

    with LocalExecutor(LocalOptions(workers=0)) as executor:
        run_suites([suite], executor=executor, out=tmp_path / "run", baselines=tmp_path / "b",
                   overrides=list(overrides))


def _untouched(tmp_path: Path) -> bool:
    return not list(tmp_path.rglob("results.csv"))


@pytest.mark.parametrize(("overrides", "match"), [
    (["trainer={max_epoch: 1}"], r"tiny.yaml: trainer.max_epoch: 'max_epoch' is not an option of "
                                 r"pytorch_lightning.Trainer. Did you mean 'max_epochs'\?"),
    (["trainer={max_epochs: one}"], r"trainer option 'max_epochs' expects int or null, but found str 'one'"),
    (["trainer={deterministic: maybe}"], r"'deterministic' expects bool or 'warn' or null, but found str 'maybe'"),
    (["trainer={max_epochs: true}"], r"'max_epochs' expects int or null, but found bool True"),
], ids=["misspelt", "mistyped", "literal", "bool-for-int"])
def test_trainer_options_are_checked_before_training(tmp_path: Path, overrides: list[str], match: str) -> None:
    with pytest.raises(SuiteError, match=match):
        _run(tmp_path, TINY, *overrides)
    assert _untouched(tmp_path)


def test_trainer_error_names_the_line(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    # a module name of its own: workers spawned later inherit sys.path, and must still find the real tiny_models
    suite.write_text(TINY.read_text().replace("trainer: {max_epochs: 2}", "trainer:\n  max_epoch: 2")
                     .replace("tiny_models:", "preflight_line_models:"))
    (tmp_path / "preflight_line_models.py").write_text((TINY.parent / "tiny_models.py").read_text())
    with pytest.raises(SuiteError) as info:
        _run(tmp_path, suite)
    assert (info.value.line, info.value.key) == (5, "trainer.max_epoch")


def test_variant_trainer_options_are_checked_with_the_models_flavour(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"variants.base.trainer.max_epoch: 'max_epoch' is not an option of "
                                         r"lightning.pytorch.Trainer"):
        _run(tmp_path, WINE, "variants.base.trainer={max_epoch: 1}")


def test_good_trainer_options_pass() -> None:
    from normreg.auditing.preflight import preflight

    preflight(load_suite(TINY, ["trainer={max_epochs: 1, limit_train_batches: 0.5, precision: 32-true, "
                                "max_time: '00:00:01:00', devices: 1, deterministic: warn}"]))


def test_a_metric_the_model_does_not_log_fails_before_training(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"metrics.accuracy: variant 'a' does not log 'accuracy': one test_step on "
                                         r"one batch logged acc. Log it with self.log\('accuracy', value\)"):
        _run(tmp_path, TINY, "metrics={accuracy: {goal: max}}")
    assert _untouched(tmp_path)


def test_a_validation_only_model_is_checked_on_its_validation_step(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"wine_val.yaml:6: metrics.val_acc: variant 'validated' does not log "
                                         r"'val_acc': one validation_step on one batch logged test_acc."):
        _run(tmp_path, WINE.parent / "wine_val.yaml")


# ----------------------------------------------------------------------------------------- --set paths


@pytest.mark.parametrize(("override", "match"), [
    ("variants.bb.model.args.hidden=4", r"--set variants.bb.model.args.hidden: there is no 'bb' under 'variants'. "
                                        r"Did you mean 'b'\? To add one, set it whole: --set variants.bb=\{...\}"),
    ("metrics.acc2.goal=min", r"there is no 'acc2' under 'metrics'. Did you mean 'acc'\?"),
    ("variants.a.modle.args.x=1", r"there is no 'modle' under 'variants.a'. Did you mean 'model'\?"),
], ids=["variant", "metric", "key"])
def test_set_never_invents_an_entry(override: str, match: str) -> None:
    with pytest.raises(SuiteError, match=match):
        load_suite(TINY, [override])


def test_set_creates_what_the_schema_allows() -> None:
    suite = load_suite(TINY, ["variants.c={model: tiny_models:Classifier}", "stats.alpha=0.01",
                              "variants.a.trainer.max_epochs=1", "variants.b.model.args.hidden=4",
                              "expect.broken.acc=regressed"])
    assert [v.name for v in suite.variants] == ["a", "b", "broken", "c"]
    assert suite.stats.alpha == 0.01 and suite.variant("a").trainer["max_epochs"] == 1
    assert suite.variant("b").model.args == {"hidden": 4}
    short = load_suite(WINE, ["variants.base.model.args.hidden=4"])  # `model: wine:WineNet` written short
    assert short.variant("base").model.spec == "wine:WineNet" and short.variant("base").model.args == {"hidden": 4}


# ---------------------------------------------------------------------------------------- output paths


@pytest.mark.parametrize("option", ["--report", "--html", "--markdown", "--junit"])
def test_a_report_path_that_is_a_folder_fails_first(option: str, tmp_path: Path, write_suite, cli) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import SAME

    folder = tmp_path / "reports"
    folder.mkdir()
    result = cli("run", write_suite(), "--out", tmp_path / "run", option, folder, script=SAME)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"InputError: {option} {folder}: is a folder; give a file name, "
                                                  f"e.g. {folder}/report{_suffix(option)}"]
    assert not (tmp_path / "run").exists()


def _suffix(option: str) -> str:
    return {"--html": ".html", "--markdown": ".md", "--junit": ".xml"}.get(option, ".json")


def test_every_output_format_gives_its_own_suffix_in_the_folder_hint(tmp_path: Path) -> None:
    from normreg.errors import InputError
    from normreg.fileio import check_outputs
    from normreg.render.outputs import FORMATS, option_suffixes

    for f in FORMATS.parts():
        with pytest.raises(InputError, match=f"e.g. {tmp_path}/report\\{f.suffix}$"):
            check_outputs({f"--{f.name}": tmp_path}, suffixes=option_suffixes())


def test_unusable_run_and_baseline_folders_fail_first(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    from normreg.execution.fake import FakeRunner
    from tests.conftest import SAME

    suite, a_file = write_suite(), tmp_path / "a-file"
    a_file.write_text("")
    cases = [({"out": a_file}, r"--out .*a-file: is a file, not a folder"),
             ({"out": a_file / "run"}, r"--out .*a-file/run: .*a-file is a file"),
             ({"baselines": a_file}, r"--baselines .*a-file: is a file, not a folder"),
             ({"baselines": Path("/proc/normreg-baselines"), "update_baseline": True},
              r"--baselines /proc/normreg-baselines: cannot write there"),
             ({"out": Path("/proc/normreg-run")}, r"--out /proc/normreg-run: cannot write there")]
    for kwargs, match in cases:
        runner = FakeRunner(SAME)
        options = {"out": tmp_path / "run", "baselines": tmp_path / "b", **kwargs}
        with pytest.raises(InputError, match=match):
            run_suites([suite], executor=runner, **options)
        assert runner.jobs == []
    run_suites([suite], executor=FakeRunner(SAME), out=tmp_path / "run", baselines=Path("/proc/normreg-baselines"))


@pytest.mark.parametrize(("accelerator", "match"), [
    ("tpu", r"trainer.accelerator: accelerator 'tpu': this machine has no TPU \(its support for torch is not "
            r"installed or finds no device\); use cpu or auto"),
    ("gpus", r"trainer.accelerator: unknown accelerator 'gpus'. Did you mean 'gpu'\?"),
], ids=["lacking", "unknown"])
def test_an_accelerator_the_machine_lacks_is_refused_before_training(tmp_path: Path, accelerator: str,
                                                                     match: str) -> None:
    with pytest.raises(SuiteError, match=match):
        _run(tmp_path, TINY, f"trainer.accelerator={accelerator}")
    assert not (tmp_path / "run").exists()  # the run directory it made is gone again


def test_a_gpu_accelerator_without_a_gpu_is_refused(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SuiteError, match=r"accelerator 'gpu': this machine has no GPU that torch can use"):
        _run(tmp_path, TINY, "trainer.accelerator=gpu")


@pytest.mark.parametrize("overrides", [["metrics={accuracy: {goal: max}}"], ["trainer={max_epoch: 1}"],
                                       ["variants.a.model.target=tiny_models:Clasifier"]],
                         ids=["metric", "trainer", "class"])
@pytest.mark.parametrize("out", ["new", "empty", "default"])
def test_a_mistake_found_before_training_leaves_nothing_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                overrides: list[str], out: str) -> None:
    from normreg.execution.executors.local import LocalExecutor, LocalOptions

    monkeypatch.chdir(tmp_path)
    if out == "empty":
        (tmp_path / "run").mkdir()  # the user's own empty folder stays, empty
    with pytest.raises(SuiteError), LocalExecutor(LocalOptions(workers=0)) as executor:
        run_suites([TINY], executor=executor, out=None if out == "default" else tmp_path / "run",
                   baselines=tmp_path / "b", overrides=overrides)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == (
        ["run"] if out == "empty" else ["runs"] if out == "default" else [])
