"""`normreg bisect` on generated git repositories: the search, skips, the cache, exit codes, the report.

The default tests train nothing: the runs of a commit come from that commit's own `model.py` (imported from
the temporary worktree, so the code really is the commit's), which scores each seed. The slow test trains a tiny
Lightning model with a BatchNorm bug introduced at commit 5, through the real subprocess runner.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normreg import cli
from normreg.bisect import bisect
from normreg.errors import InputError, NormregError
from normreg.execution.results import RunResult
from normreg.suite.spec import load_suite

SUITE = """\
trainer: {max_epochs: 1}
seeds: 3
metrics: {acc: {goal: max, min_effect: 0.02}}
variants:
  model: {model: "model:Model"}
"""

GOOD_MODEL = """\
NOISE = [0.004, -0.003, 0.001, 0.002, -0.004]
BUG = False


def score(seed):
    return (0.70 if BUG else 0.90) + NOISE[seed % 5]
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, bug_at: int = 5, broken_suite_at: Sequence[int] = (), crash_at: Sequence[int] = (),
              model_text: str = GOOD_MODEL) -> tuple[Path, list[str]]:
    """8 commits; commit `bug_at` introduces the bug, later commits touch other things. Returns the commit ids."""
    repo = root / "repo"
    (repo / "suites").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "Dev")
    commits = []
    for n in range(1, 9):
        model = model_text.replace("BUG = False", f"BUG = {n >= bug_at}")
        if n in crash_at:
            model += "\nraise_at_import = 1 / 0\n"
        (repo / "model.py").write_text(model + f"\n# revision {n}\n")
        (repo / "suites" / "tiny.yaml").write_text(SUITE + ("  broken: [\n" if n in broken_suite_at else ""))
        (repo / "NOTES.md").write_text(f"note {n}\n")
        _git(repo, "add", "-A")
        title = "Run both sources through the network separately" if n == bug_at else f"Change {n}"
        _git(repo, "commit", "-q", "-m", title)
        commits.append(_git(repo, "rev-parse", "HEAD").strip())
    return repo, commits


class ScoreExecutor:
    """Runs of a commit from its worktree's model.py, imported afresh; counts what it was asked to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def __call__(self, worktree: Path, suite_path: Path, variant: str, seeds: Sequence[int],
                 overrides: Sequence[str], out: Path) -> None:
        self.calls.append((worktree.name, tuple(seeds)))
        lines = []
        try:
            suite = load_suite(suite_path, overrides)
        except NormregError as e:
            lines.append({"load_error": f"{type(e).__name__}: {e}"})
        else:
            spec = importlib.util.spec_from_file_location(f"model_{uuid.uuid4().hex}", worktree / "model.py")
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
                results = [RunResult(suite.name, variant, s, "ok", {"acc": module.score(s)}) for s in seeds]
            except Exception as e:  # a run that fails, as the runner records it
                results = [RunResult(suite.name, variant, s, "failed", {}, 0.0, f"{type(e).__name__}: {e}")
                           for s in seeds]
            lines += [r.to_json() for r in results]
        out.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _bisect(repo: Path, good: str, bad: str, cache: Path, executor: ScoreExecutor, **kw):
    return bisect(repo / "suites" / "tiny.yaml", good, bad, cache=cache, execute=executor, device="test", **kw)


def test_bisect_names_the_commit_that_brought_the_bug_and_the_rerun_trains_nothing(tmp_path):
    repo, commits = make_repo(tmp_path)
    status_before = _git(repo, "status", "--porcelain")
    head_before = _git(repo, "rev-parse", "HEAD")
    ex = ScoreExecutor()
    result = _bisect(repo, commits[0], commits[7], tmp_path / "cache", ex)
    assert result.outcome == "found" and result.exit_code == 0
    assert result.culprit == commits[4] and result.culprit_subject == "Run both sources through the network separately"
    assert result.search_steps <= 4
    assert "model.py | " in result.culprit_stat and "NOTES.md" in result.culprit_stat
    assert result.trained == 3 * (2 + result.search_steps) and ex.calls
    # the user's working tree, index and HEAD are as they were; no worktree is left behind
    assert _git(repo, "status", "--porcelain") == status_before and _git(repo, "rev-parse", "HEAD") == head_before
    assert _git(repo, "worktree", "list").count("\n") == 1
    again = ScoreExecutor()
    rerun = _bisect(repo, commits[0], commits[7], tmp_path / "cache", again)
    assert rerun.culprit == commits[4] and rerun.trained == 0 and again.calls == []
    assert [s.cached for s in rerun.steps] == [3] * len(rerun.steps)
    assert [s.commit for s in rerun.steps] == [s.commit for s in result.steps]


def test_staged_seeds_stop_at_the_first_decisive_stage(tmp_path):
    repo, commits = make_repo(tmp_path)
    ex = ScoreExecutor()
    result = _bisect(repo, commits[0], commits[7], tmp_path / "cache", ex, seeds="auto")
    assert result.culprit == commits[4]
    compared = [s.comparison for s in result.steps if s.comparison is not None]
    assert compared and all(c.stages == (3,) for c in compared)
    assert {seeds for _, seeds in ex.calls} == {(0, 1, 2)}  # decisive at 3 seeds: no commit ran a second stage


NOISY_MODEL = """\
import math

BUG = False


def score(seed):
    return (0.85 if BUG else 0.90) + 0.03 * math.sin(2.4 * seed + 1.0)
"""


def test_staged_seeds_add_stages_until_the_verdict_is_decisive(tmp_path):
    repo, commits = make_repo(tmp_path, model_text=NOISY_MODEL)
    result = _bisect(repo, commits[0], commits[7], tmp_path / "cache", ScoreExecutor(), seeds="auto")
    assert result.culprit == commits[4], [(s.commit[:8], s.status, s.reason) for s in result.steps]
    bad = result.steps[1].comparison
    assert len(bad.stages) > 1 and bad.verdict == "regressed"  # the first stage alone did not decide


def test_a_commit_whose_runs_fail_is_skipped_and_said(tmp_path):
    repo, commits = make_repo(tmp_path, crash_at=(6,))
    result = _bisect(repo, commits[0], commits[7], tmp_path / "cache", ScoreExecutor())
    assert result.culprit == commits[4]
    skipped = [s for s in result.steps if s.status == "skip"]
    assert [s.commit for s in skipped] == [commits[5]]
    assert "skipped: 3 of 3 runs failed: seed 0: ZeroDivisionError" in skipped[0].reason


def test_a_skip_next_to_the_culprit_leaves_it_undecided(tmp_path):
    repo, commits = make_repo(tmp_path, broken_suite_at=(4,))
    result = _bisect(repo, commits[0], commits[7], tmp_path / "cache", ScoreExecutor())
    assert result.outcome == "undecided" and result.exit_code == 3
    assert result.suspects == (commits[3], commits[4])
    step = next(s for s in result.steps if s.commit == commits[3])
    assert step.status == "skip" and "SuiteError" in step.reason


def test_the_training_process_reports_a_suite_that_does_not_load(tmp_path):
    """The real subprocess path, up to the point where it would train: a broken suite, an unknown variant."""
    from normreg.bisect import execute_in_subprocess

    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "tiny.yaml").write_text(SUITE + "  broken: [\n")
    out = tmp_path / "broken.jsonl"
    execute_in_subprocess(tmp_path, tmp_path / "suites" / "tiny.yaml", "model", [0, 1], [], out)
    (record,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert record["load_error"].startswith("SuiteError: ") and "tiny.yaml" in record["load_error"]
    (tmp_path / "suites" / "tiny.yaml").write_text(SUITE)
    out = tmp_path / "variant.jsonl"
    execute_in_subprocess(tmp_path, tmp_path / "suites" / "tiny.yaml", "other", [0], [], out)
    assert json.loads(out.read_text()) == {"load_error": "the suite has no variant 'other' at this commit"}


def test_a_bad_commit_that_is_not_worse_exits_1(tmp_path):
    repo, commits = make_repo(tmp_path)
    result = _bisect(repo, commits[0], commits[3], tmp_path / "cache", ScoreExecutor())
    assert result.outcome == "not_worse" and result.exit_code == 1 and result.culprit is None


def test_bad_input_is_refused(tmp_path):
    repo, commits = make_repo(tmp_path)
    ex = ScoreExecutor()
    with pytest.raises(InputError, match="--good nosuchrev: unknown revision"):
        _bisect(repo, "nosuchrev", commits[7], tmp_path / "c", ex)
    with pytest.raises(InputError, match="is not an ancestor of --bad"):
        _bisect(repo, commits[7], commits[0], tmp_path / "c", ex)
    with pytest.raises(InputError, match="--variant modle: the suite at .* has no such variant. Did you mean 'model'"):
        _bisect(repo, commits[0], commits[7], tmp_path / "c", ex, variant="modle")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "tiny.yaml").write_text(SUITE)
    with pytest.raises(InputError, match="not inside a git repository"):
        bisect(plain / "tiny.yaml", "HEAD~1", "HEAD", cache=tmp_path / "c", execute=ex, device="test")
    assert ex.calls == []


def test_the_command_prints_each_step_and_writes_the_report(tmp_path, monkeypatch):
    import normreg.bisect as bisect_module

    repo, commits = make_repo(tmp_path)
    ex = ScoreExecutor()
    real = bisect_module.bisect
    monkeypatch.setattr(bisect_module, "bisect", lambda *a, **kw: real(*a, **{**kw, "execute": ex, "device": "t"}))
    report = tmp_path / "bisect.json"
    r = CliRunner().invoke(cli.app, ["bisect", str(repo / "suites" / "tiny.yaml"), "--good", commits[0][:8],
                                     "--bad", "main", "--cache", str(tmp_path / "cache"), "--report", str(report)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith(f"good {commits[0][:10]} 'Change 1': 0.9007 ± 0.0035 (n=3) -> good")
    assert lines[1].startswith(f"bad  {commits[7][:10]} 'Change 8': 0.7007 ± 0.0035 (n=3) -> BAD: regressed vs good "
                               "(diff -0.2")
    assert any(x.startswith(f"step {commits[4][:10]} 'Run both sources through the network separately'")
               and x.endswith("[trained 3, cached 0]") for x in lines)
    assert f"First bad commit: {commits[4]} 'Run both sources through the network separately'" in r.output
    assert "model.py" in r.output and "Outcome: found (exit 0)" in r.output
    data = json.loads(report.read_text())
    assert data["schema"] == "normreg.bisect/1" and data["culprit"] == commits[4] and data["exit_code"] == 0
    assert data["steps"][0]["role"] == "good" and data["steps"][1]["comparison"]["verdict"] == "regressed"
    bad = CliRunner().invoke(cli.app, ["bisect", str(repo / "suites" / "tiny.yaml"), "--good", "v9", "--bad", "main",
                                       "--cache", str(tmp_path / "cache")])
    assert bad.exit_code == 2 and bad.output.startswith("InputError: --good v9: unknown revision")


# -------------------------------------------------------------------------- real training (slow)

TINY_SUITE = """\
trainer: {max_epochs: 2}
seeds: 3
metrics: {test_acc: {goal: max, min_effect: 0.02}}
variants:
  model: {model: "tinymodel:Model"}
"""

TINY_MODEL = '''\
"""A tiny classifier learning from two sources, negatives and positives, one batch of each per step."""

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

W = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]) / 8**0.5  # the direction that tells them apart


def sources(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g) - 1.5 * W, torch.randn(n, 8, generator=g) + 1.5 * W


class Model(pl.LightningModule):
    def __init__(self, lr=0.1, hidden=256):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        neg, pos = batch
        logits = self(torch.cat([neg, pos]))
        labels = torch.cat([torch.zeros(len(neg)), torch.ones(len(pos))]).long()
        return nn.functional.cross_entropy(logits, labels)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self(x).argmax(1) == y).float().mean(), batch_size=len(x))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    def train_dataloader(self):
        return DataLoader(TensorDataset(*sources(256, 0)), batch_size=32, shuffle=True)

    def test_dataloader(self):
        neg, pos = sources(256, 1)
        y = torch.cat([torch.zeros(256), torch.ones(256)]).long()
        return DataLoader(TensorDataset(torch.cat([neg, pos]), y), batch_size=256)
'''

# What each commit changes; commit 5 feeds the two sources through the network separately, so BatchNorm
# normalises the negatives and the positives each with their own statistics in training.
TINY_HISTORY = [
    ("Add a tiny two-source classifier", lambda m: m),
    ("Document the data", lambda m: m.replace("def sources(n, seed):\n",
                                              "def sources(n, seed):\n    \"\"\"n negatives and n positives.\"\"\"\n")),
    ("Notes on the suite", lambda m: m),
    ("Name the hidden width", lambda m: m.replace("hidden=256", "hidden: int = 256")),
    ("Run both sources through the network separately",
     lambda m: m.replace("logits = self(torch.cat([neg, pos]))", "logits = torch.cat([self(neg), self(pos)])")),
    ("Larger test batches", lambda m: m.replace("batch_size=256)", "batch_size=512)")),
    ("More notes", lambda m: m),
    ("Tidy the optimizer line", lambda m: m.replace("momentum=0.9)", "momentum=0.9)  # plain SGD with momentum")),
]


def make_tiny_repo(root: Path) -> tuple[Path, list[str]]:
    """A git repository of 8 commits of a tiny Lightning model; commit 5 brings the BatchNorm bug."""
    repo = root / "tiny-repo"
    (repo / "suites").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "Dev")
    model, commits = TINY_MODEL, []
    for n, (title, change) in enumerate(TINY_HISTORY, start=1):
        model = change(model)
        (repo / "tinymodel.py").write_text(model)
        (repo / "suites" / "tiny.yaml").write_text(TINY_SUITE)
        (repo / "NOTES.md").write_text("".join(f"- {t}\n" for t, _ in TINY_HISTORY[:n]))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", title)
        commits.append(_git(repo, "rev-parse", "HEAD").strip())
    return repo, commits


@pytest.mark.slow
def test_bisect_finds_the_batchnorm_bug_by_training_each_commit(tmp_path):
    """Real Lightning training at each commit, in a fresh process from a temporary worktree."""
    repo, commits = make_tiny_repo(tmp_path)
    (repo / "suites" / "tiny.yaml").write_text("this: [is the user's uncommitted edit\n")  # never looked at
    cache = tmp_path / "cache"
    result = bisect(repo / "suites" / "tiny.yaml", commits[0], commits[7], cache=cache, workers=0)
    assert result.outcome == "found", [(s.commit[:8], s.status, s.reason) for s in result.steps]
    assert result.culprit == commits[4] and result.search_steps <= 4
    assert result.steps[1].comparison.verdict == "regressed"
    assert result.trained == 3 * (2 + result.search_steps)
    assert _git(repo, "status", "--porcelain") == " M suites/tiny.yaml\n"
    rerun = bisect(repo / "suites" / "tiny.yaml", commits[0], commits[7], cache=cache, workers=0)
    assert rerun.culprit == commits[4] and rerun.trained == 0
