"""Helpers shared by the TFF tests: compile spec text to a program namespace, run the `fedlang`
CLI in a subprocess, and find leaked TFF workers. (Fixtures are in conftest.py.)"""

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
    exec(compile(compiled.program_bytes(), f"<emitted from {compiled.source.name}>", "exec", dont_inherit=True),
         namespace)  # noqa: S102
    return namespace


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # PYTHONFAULTHANDLER: a hung child can be made to dump every thread's stack with SIGABRT.
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONFAULTHANDLER="1", **extra)
    env[TOKEN_VAR] = TOKEN
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


QUICKSTART_ROUNDS = 10


def quickstart_spec_text(evaluate_every: int = 5) -> str:
    """examples/quickstart.fed with `evaluate { every N }` (so a short run has two evaluations)."""
    import re

    text = QUICKSTART.read_text()
    block = f"evaluate {{ every {evaluate_every} }}"
    text, n = re.subn(r"evaluate\s*\{[^}]*\}", block, text)
    return text if n else text.rstrip() + "\n\n" + block + "\n"


def parse_printed_rows(stdout: str) -> list[dict[str, str]]:
    """The per-round lines an emitted program prints, as {name: value text} (values unparsed)."""
    import re

    rows = []
    for line in stdout.splitlines():
        match = re.fullmatch(r"round\s+(\d+)\s+(.*?)\s+\(\d+\.\d+ s\)", line.strip())
        if match:
            fields = match.group(2).split()
            row = {"round": match.group(1)}
            row.update(zip(fields[0::2], fields[1::2]))
            rows.append(row)
    return rows
