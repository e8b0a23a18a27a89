"""The suite loader: valid suites become frozen objects; every kind of bad input names file, line and key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from normreg.errors import InputError, SuiteError
from normreg.suite.spec import discover, load_suite

DATA = Path(__file__).parents[1] / "data" / "suites"

BAD = Path(__file__).parents[1] / "data" / "bad"

# file, line, key path, a fragment of the message
CASES = [
    ("misspelt_top_key", 3, "varients", "Did you mean 'variants'?"),
    ("misspelt_nested_key", 2, "metrics.acc.min_efect", "Did you mean 'min_effect'?"),
    ("missing_variants", 1, None, "missing required key 'variants'"),
    ("bad_goal", 3, "metrics.acc.goal", "expected 'max' or 'min', but found a string ('maximum')"),
    ("bad_reference", 2, "reference", "'merge' is not a variant. Did you mean 'merged'?"),
    ("bad_seeds", 2, "seeds", "expected a count of seeds, a non-empty list of seeds"),
    ("bad_target_form", 5, "variants.a.model.target", "expected 'package.module:callable'"),
    ("bad_alpha", 5, "stats.alpha", "expected a number in (0.0, 0.5)"),
    ("bad_expect", 6, "expect.b", "Did you mean 'regressed'?"),
    ("invalid_yaml", 2, None, "invalid YAML"),
    ("not_a_mapping", 1, None, "expected a mapping of suite keys"),
    ("negative_min_effect", 2, "metrics.acc.min_effect", "expected a number in [0.0, inf]"),
    ("unknown_variant_key", 5, "variants.a.trainr", "Did you mean 'trainer'?"),
    # bounded loading: each is refused from the node graph, before anything is expanded
    ("alias_bomb", 6, None, "expands to more than 100000 nodes"),
    ("recursive_alias", 4, None, "a recursive alias"),
    ("deep_nesting", 4, None, "nested more than 64 levels deep"),
    ("seeds_huge", 2, "seeds", "expected 1 to 1000 seeds per variant, but found 1000000000"),
    ("seeds_plan_huge", 2, "seeds.max", "expected at most 1000 seeds per variant, but found 1000000000"),
    ("seed_beyond_numpy", 2, "seeds.1", "from 0 to 4294967295 (numpy's range), but found a number (4294967296)"),
    ("min_effect_inf", 2, "metrics.acc.min_effect", "expected a finite number, but found inf"),
    ("nul_in_suite_name", 1, "name", "control characters"),
    ("nul_in_variant_name", 3, "variants.a\x00b", "control characters"),
    ("duplicate_key", 5, None, "duplicate key 'seeds' (first on line 2, again on line 5)"),
    ("duplicate_variant", 5, None, "duplicate key 'a' (first on line 3, again on line 5)"),
    # issue 23: the parser's limits, and names that passed and broke later
    ("suite_huge_int", 2, None, "an integer of 5000 digits, over the limit of 100"),
    ("suite_lone_surrogate", 3, None, "a string holding a lone surrogate (a\\ud800)"),
    ("suite_named_report_json", 1, "name", "'report.json' is a file of the run directory"),
    ("suite_name_256", 1, "name", "a name is at most 128 bytes (UTF-8), as it becomes part of file names; this one "
                                  "is 256"),
    ("variant_name_250", 4, "variants." + "v" * 250, "a name is at most 128 bytes"),
    ("variant_bidi_override", 4, "variants.b\u202etxt.exe", "'\\u202e' at position 1 is not"),
    # issue 23 item 9: the time limit per run
    ("run_timeout_negative", 2, "run_timeout", "expected a duration: seconds (e.g. 600) or a number with s, m or h "
                                               "(e.g. 30m), positive and finite, but found '-5m'"),
    ("run_timeout_words", 4, "run_timeout", "but found a string ('forever')"),
]


@pytest.mark.parametrize("name,line,key,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_suite_names_file_line_and_key(name: str, line: int, key: str | None, fragment: str) -> None:
    path = BAD / f"{name}.yaml"
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line
    assert err.key == key
    assert fragment in str(err)
    assert str(err).startswith(f"{path}:{line}")
    assert "\n" not in str(err) and str(err).isprintable()


def test_every_file_of_the_bad_corpus_is_tested() -> None:
    suites = {p.stem for p in BAD.glob("*.yaml")}
    tested = {c[0] for c in CASES} | {"seeds_min_above_max", "seeds_plan_one", "seeds_typo", "stats_correction",
                                      "stats_design"}  # the last five: below
    tested |= {"repro_injection"}  # valid; its names were code in repro's script (tests/end_to_end/test_refused.py)
    assert suites <= tested


def test_a_suite_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    from normreg.suite.loading import MAX_SUITE_BYTES

    path = tmp_path / "huge.yaml"
    path.write_text("metrics: {acc: {}}\nvariants: {a: {model: m:A}}\ndescription: " + "x" * MAX_SUITE_BYTES + "\n")
    with pytest.raises(SuiteError, match=rf"over the {MAX_SUITE_BYTES}-byte limit for a suite file"):
        load_suite(path)


def test_overrides_are_loaded_with_the_same_bounds(write_suite) -> None:
    path = write_suite()
    levels = ["&l0 [x,x,x,x,x,x,x,x,x,x]"] + [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 8)]
    with pytest.raises(SuiteError, match=r"--set trainer.callbacks: the YAML expands to more than 100000"):
        load_suite(path, ["trainer.callbacks=[" + ",".join(levels) + "]"])
    with pytest.raises(SuiteError, match=r"--set description is not valid YAML: brackets nested more than 64"):
        load_suite(path, ["description=" + "[" * 5000 + "]" * 5000])
    with pytest.raises(SuiteError, match=r"--set seeds: duplicate key 'min'"):
        load_suite(path, ["seeds={min: 2, min: 3, max: 5}"])
    with pytest.raises(SuiteError, match="set on the command line"):
        load_suite(path, ["seeds=1000000000"])
    assert load_suite(path, ["trainer.callbacks=[&x {a: 1}, *x]"]).variant("twin").trainer["callbacks"] == [
        {"a": 1}, {"a": 1}]


def test_anchors_and_merge_keys_still_work(write_suite) -> None:
    path = write_suite("""
        metrics: {acc: {}}
        defaults: &d {model: m:A, trainer: {max_epochs: 2}}
        variants:
          a: *d
          b: {<<: *d, model: m:B}
        """)
    with pytest.raises(SuiteError, match="unknown key 'defaults'"):  # anchors are fine; the key is not
        load_suite(path)
    path.write_text(path.read_text().replace("defaults: &d", "trainer: &d").replace(
        "{model: m:A, trainer: {max_epochs: 2}}", "{max_epochs: 2}").replace("a: *d", "a: {model: m:A, trainer: *d}")
        .replace("b: {<<: *d, model: m:B}", "b: {model: m:B, trainer: {<<: *d, max_epochs: 3}}"))
    s = load_suite(path)
    assert s.variant("a").trainer["max_epochs"] == 2 and s.variant("b").trainer["max_epochs"] == 3


def test_valid_suite_is_frozen_and_complete(write_suite) -> None:
    path = write_suite(extra="trainer: {max_epochs: 3}\nexpect: {twin: regressed}\nstats: {alpha: 0.01}\n")
    s = load_suite(path)
    assert s.name == "pair" and s.reference == "merged"
    assert [v.name for v in s.variants] == ["merged", "twin"]
    assert s.seeds == (0, 1, 2, 3, 4)
    assert s.stats.alpha == 0.01
    assert s.metric("loss").goal == "min" and s.metric("loss").min_effect == 0.05
    assert s.variant("twin").trainer["max_epochs"] == 3
    assert s.variant("twin").trainer["logger"] is False  # no log files unless asked
    assert s.expected("twin", "acc") == "regressed"
    assert s.expected("merged", "acc") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"  # type: ignore[misc]


def test_name_defaults_to_file_stem_and_reference_to_first_variant(write_suite) -> None:
    path = write_suite("""
        metrics: {acc: {}}
        seeds: [3, 7]
        variants:
          first: {model: tiny_models:Classifier}
          second: {model: {target: tiny_models:Classifier}, trainer: {max_epochs: 1}}
        """, filename="my_suite.yaml")
    s = load_suite(path)
    assert s.name == "my_suite" and s.reference == "first" and s.seeds == (3, 7)
    assert s.metric("acc").goal == "max" and s.metric("acc").min_effect == 0.0
    assert s.variant("first").model.spec == "tiny_models:Classifier"


def test_variant_overrides_data_and_merges_trainer(write_suite) -> None:
    path = write_suite("""
        data: {target: m:Data, args: {batch_size: 8}}
        trainer: {max_epochs: 5, gradient_clip_val: 1.0}
        metrics: {acc: {}}
        variants:
          a: {model: m:A}
          b: {model: m:B, data: {target: m:Other}, trainer: {max_epochs: 2}}
        """)
    s = load_suite(path)
    assert s.variant("a").data.spec == "m:Data" and s.variant("a").data.args == {"batch_size": 8}
    assert s.variant("b").data.spec == "m:Other"
    assert s.variant("b").trainer["max_epochs"] == 2 and s.variant("b").trainer["gradient_clip_val"] == 1.0


def test_overrides_apply_before_validation_and_are_named_in_errors(write_suite) -> None:
    path = write_suite()
    s = load_suite(path, ["trainer.max_epochs=1", "seeds=2"])
    assert s.variant("twin").trainer["max_epochs"] == 1 and s.seeds == (0, 1)
    with pytest.raises(SuiteError, match=r"seeds: expected a count.*set on the command line with --set"):
        load_suite(path, ["seeds=zero"])
    with pytest.raises(SuiteError, match=r"expected --set KEY.PATH=VALUE"):
        load_suite(path, ["seeds"])


def test_digest_ignores_comments_but_not_content(write_suite, tmp_path: Path) -> None:
    a = load_suite(write_suite())
    commented = tmp_path / "pair2.yaml"
    commented.write_text("# a comment\n" + (tmp_path / "pair.yaml").read_text())
    assert load_suite(commented).digest == a.digest
    assert load_suite(write_suite(seeds=3, name="pair")).digest != a.digest


def test_expect_rules(write_suite) -> None:
    ok = write_suite(extra="expect: {twin: {acc: regressed}, merged: failed}\n")
    s = load_suite(ok)
    assert s.expected("twin", "acc") == "regressed" and s.expected("twin", "loss") is None
    assert s.expected("merged", "*") == "failed"
    assert s.expects_failure("merged") and not s.expects_failure("twin") and not s.expects_failure("absent")
    with pytest.raises(SuiteError, match="is the reference"):
        load_suite(write_suite(extra="expect: {merged: regressed}\n"))
    with pytest.raises(SuiteError, match=r"'twn' is not a variant. Did you mean 'twin'\?"):
        load_suite(write_suite(extra="expect: {twn: regressed}\n"))
    with pytest.raises(SuiteError, match="applies to a whole variant"):
        load_suite(write_suite(extra="expect: {twin: {acc: failed}}\n"))


def test_missing_file_and_discovery(tmp_path: Path, write_suite) -> None:
    with pytest.raises(SuiteError, match="no such suite file"):
        load_suite(tmp_path / "nope.yaml")
    write_suite(name="b")
    write_suite(name="a")
    assert [p.name for p in discover([tmp_path])] == ["a.yaml", "b.yaml"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SuiteError, match="holds no .yaml suite files"):
        discover([empty])


def test_loading_a_suite_does_not_import_torch() -> None:

    code = ("import sys; from normreg.suite.spec import load_suite; from normreg.judge.designs.welch import welch; "
            "print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_seed_plan_and_stats_keys_load():
    s = load_suite(DATA / "staged.yaml")
    assert (s.seed_plan.min, s.seed_plan.max, s.seed_plan.stages) == (3, 20, (3, 5, 8, 12, 18, 20))
    assert s.seeds == tuple(range(20))
    assert (s.stats.design, s.stats.correction, s.stats.spending) == ("welch", "holm", "pocock")
    p = load_suite(DATA / "staged.yaml", ["stats.design=paired", "stats.correction=none"])
    assert (p.stats.design, p.stats.correction) == ("paired", "none")


@pytest.mark.parametrize("name, match", [
    ("seeds_typo", r"seeds_typo.yaml:2: seeds.maxx: unknown key 'maxx'. Did you mean 'max'\?"),
    ("seeds_min_above_max", r"seeds_min_above_max.yaml:3: seeds.min: min \(8\) is above max \(5\)"),
    ("seeds_plan_one", r"seeds_plan_one.yaml:2: seeds.min: expected at least 2 seeds"),
    ("stats_design", r"stats_design.yaml:4: stats.design: expected one of welch, paired, permutation, but found a "
                     r"string \('pared'\). Did you mean 'paired'\?"),
    ("stats_correction", r"stats_correction.yaml:3: stats.correction: .*Did you mean 'holm'\?"),
])
def test_bad_seed_and_stats_keys_name_file_line_and_key(name, match):
    with pytest.raises(SuiteError, match=match):
        load_suite(DATA.parent / "bad" / f"{name}.yaml")


def test_run_timeout_is_read_and_left_out_of_the_digest(tmp_path: Path) -> None:
    base = "metrics: {acc: {}}\nvariants:\n  a: {model: {target: m:C}}\n"
    (tmp_path / "a.yaml").write_text(base)
    (tmp_path / "b.yaml").write_text(base + "run_timeout: 1.5h\n")
    a, b = load_suite(tmp_path / "a.yaml"), load_suite(tmp_path / "b.yaml")
    assert (a.run_timeout, b.run_timeout) == (None, 5400.0)
    assert a.digest == b.digest  # how long a run may take does not change what it computes: --resume still works


def test_variant_names_and_check_variant(write_suite) -> None:
    s = load_suite(write_suite())
    assert s.variant_names == ("merged", "twin") and s.check_variant("twin") == "twin"
    with pytest.raises(InputError, match=r"pair\.yaml: unknown variant 'twn'\. Did you mean 'twin'\? "
                                         r"Variants: merged, twin$"):
        s.check_variant("twn")
