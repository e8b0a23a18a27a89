"""`--executor ray --ray-address` on a real cluster that normreg did not start, set up as a user sets one up: a head
started with `ray start --head` and two nodes joined with `ray start --address`, each its own raylet, with token
authentication on (as `ray start` turns it on). The head offers no CPUs, so every run is a task on another node, and
the nodes start in another folder with the suite's folder nowhere on their path: they import the user's models
from the copy Ray shipped. On a GPU machine (`pytest -m slow` there) one node also offers the GPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from normreg.pipeline import run_suites
from tests.processes import new_tag, none_left, tagged

pytest.importorskip("ray")

SUITES = Path(__file__).parents[2] / "data" / "suites"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _end(tag: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, _, _ in tagged(tag):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if not tagged(tag):
            return


@pytest.mark.slow  # about 70 s on 2 cores: three raylets, Ray's 20 s of retries on a missing token, two runs
@pytest.mark.skipif(sys.platform != "linux", reason="uses ps and /proc to end the cluster")
def test_a_cluster_started_apart_trains_the_suite_on_its_nodes(tmp_path: Path, local_executor) -> None:
    name, value = new_tag()
    project, nodes_home = tmp_path / "project", tmp_path / "nodes"
    project.mkdir()
    nodes_home.mkdir()
    for f in ("tiny.yaml", "tiny_models.py"):
        shutil.copy(SUITES / f, project / f)
    token = tmp_path / "token"
    token.write_text(uuid.uuid4().hex)  # as `ray get-auth-token --generate` makes one (a uuid4's hex)
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    cluster = {**base, name: value, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
               "RAY_raylet_start_wait_time_s": "300"}
    gpus = _gpus()
    try:
        _ray(["start", "--head", "--port", str(port), "--num-cpus", "0", "--num-gpus", "0",
              "--include-dashboard", "false", "--disable-usage-stats"], cluster, nodes_home)
        for node_gpus in (gpus, 0):
            _ray(["start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--num-gpus", str(node_gpus)],
                 cluster, nodes_home)

        def normreg(out: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "normreg.cli", "run", "tiny.yaml", "--executor", "ray", "--ray-address",
                 f"127.0.0.1:{port}", "--seeds", "1", "--out", out, "--baselines", str(tmp_path / "b"),
                 *(["--accelerator", "gpu"] if gpus else [])],
                env={**env, name: value}, cwd=project, capture_output=True, text=True, timeout=600)

        refused = normreg("refused", base)  # no token: said what to set, instead of Ray's retries
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "uses token authentication" in refused.stdout + refused.stderr
        assert "RAY_AUTH_MODE=token" in refused.stdout + refused.stderr
        assert not (project / "refused" / "tiny" / "runs.jsonl").exists()

        ran = normreg("ran", {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
        assert ran.returncode == 3, ran.stdout + ran.stderr  # the broken variant fails, as it does locally
        runs = json.loads((project / "ran" / "report.json").read_text())["runs"]
    finally:
        _end(f"{name}={value}")
    local = run_suites([project / "tiny.yaml"], seeds=1, out=tmp_path / "local", baselines=tmp_path / "b",
                       executor=local_executor(workers=0, accelerator="gpu" if gpus else "cpu"))

    def values(rows):
        return {(r["variant"], r["seed"]): (r["status"], r["metrics"], r["error"]) for r in rows}

    assert values(runs) == values(r.to_json() for r in local.runs)
    assert values(runs)[("a", 0)][0] == "ok"
    host = socket.gethostname()
    expected = {f"cuda:0 ({_gpu_name()}) on {host}"} if gpus else {f"cpu on {host}"}
    assert {r["device"] for r in runs if r["status"] == "ok"} == expected
    none_left(f"{name}={value}")


def _gpus() -> int:
    torch = pytest.importorskip("torch")
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)
