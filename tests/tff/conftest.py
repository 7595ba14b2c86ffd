"""Shared helpers for the TFF tests: compile spec text to a program namespace, a module-scoped
local TFF worker, running the `fedlang` CLI in a subprocess, and finding leaked workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(__file__).resolve().parent / "specs"
QUICKSTART = REPO / "examples" / "quickstart.fed"

# Every subprocess the tests start carries this token in its environment; worker_binary
# inherits it, so a leaked worker of ours can be told apart from other users' workers.
TOKEN_VAR = "FEDLANG_TEST_TOKEN"
TOKEN = uuid.uuid4().hex


def compile_text(text: str, name: str = "test.fed", base_dir: Path | None = None):
    """Spec text -> fedlang Compiled (front end only; no TensorFlow)."""
    from fedlang.diagnostics import Source
    from fedlang.pipeline import compile_source

    return compile_source(Source(name, text), base_dir)


def load_program(compiled) -> dict:
    """Exec the emitted program (as `fedlang run` does) and return its namespace."""
    namespace: dict = {"__name__": "fedlang_test_program", "__file__": "<emitted>"}
    exec(compile(compiled.program(), f"<emitted from {compiled.source.name}>", "exec"), namespace)  # noqa: S102
    return namespace


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0", **extra)
    env[TOKEN_VAR] = TOKEN
    env.pop("PYTHONPATH", None)
    return env


def run_fedlang(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m fedlang ARGS` with stdout/stderr piped (so a leaked worker would hang it)."""
    return subprocess.run([sys.executable, "-m", "fedlang", *map(str, args)], cwd=cwd or REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, env=subprocess_env())


def our_workers() -> list[psutil.Process]:
    """Live worker_binary processes started (directly or not) by this test session."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if "worker_bin" not in (proc.info["name"] or "") or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TOKEN_VAR) == TOKEN or proc.ppid() == os.getpid():
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def assert_no_worker_left(within: float = 10.0) -> None:
    """Fail (after killing them) if any worker_binary of ours is still alive after `within` s."""
    deadline = time.monotonic() + within
    while (left := our_workers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        pids = [p.pid for p in left]
        for p in left:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        pytest.fail(f"worker_binary processes left alive: {pids}")


@pytest.fixture(scope="module")
def tff_worker():
    """One local TFF worker per test module, set as TFF's default context; closed afterwards."""
    from fedlang.lib.tff_worker import use_local_tff_worker

    worker = use_local_tff_worker()
    yield worker
    worker.close()
    assert worker.process.poll() is not None, "the module's worker_binary did not stop"


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_workers_at_end():
    yield
    assert_no_worker_left(within=5.0)
