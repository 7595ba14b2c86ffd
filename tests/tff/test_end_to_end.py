"""`fedlang run` end to end, as a user runs it: a subprocess with piped output (a worker that kept
our stdout open would hang it), the run directory, the saved model, and Ctrl-C."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from .support import (QUICKSTART_ROUNDS, REPO, assert_no_worker_left, compile_text, quickstart_spec_text,
                      read_jsonl, subprocess_env)

pytestmark = [pytest.mark.tff, pytest.mark.slow]

RUN_FILES = ("metrics.jsonl", "metrics.csv", "summary.json", "model.keras", "metrics.png", "program.py", "spec.fed")


def test_run_writes_a_complete_run_directory(quickstart_run):
    spec, out, result = quickstart_run
    assert result.returncode == 0, result.stderr[-3000:]
    for name in RUN_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "spec.fed").read_text() == spec.read_text()
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["round"] for r in rows] == list(range(1, QUICKSTART_ROUNDS + 1))
    evaluated = [r["round"] for r in rows if "eval_accuracy" in r]
    assert evaluated == [5, 10]
    for row in rows:
        assert row["clients"] == 10
        assert all(math.isfinite(v) for k, v in row.items() if k.startswith(("train_", "eval_")))

    with open(out / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    for line, row in zip(table, rows):
        assert {k: float(v) for k, v in line.items() if v != ""} == pytest.approx(row, rel=1e-12)

    # It learns: train loss falls, and the second evaluation beats the first.
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    first, last = (r for r in rows if "eval_accuracy" in r)
    assert last["eval_accuracy"] > first["eval_accuracy"]
    assert last["eval_loss"] < first["eval_loss"]

    summary = json.loads((out / "summary.json").read_text())
    compiled = compile_text(spec.read_text())
    assert summary["status"] == "completed"
    assert summary["rounds_planned"] == summary["rounds_completed"] == QUICKSTART_ROUNDS
    assert summary["final"] == rows[-1]
    assert summary["seed"] == compiled.checked.seed
    assert summary["model_parameters"] == compiled.checked.model.param_count

    # The per-round table went to (piped) stdout, one line per round.
    table_lines = [l for l in result.stdout.splitlines() if l.split()[:1] and l.split()[0].isdigit()]
    assert [int(l.split()[0]) for l in table_lines] == list(range(1, QUICKSTART_ROUNDS + 1))
    assert "done:" in result.stdout


def test_saved_model_reproduces_the_final_evaluation(quickstart_run):
    tf = pytest.importorskip("tensorflow")
    _, out, result = quickstart_run
    assert result.returncode == 0, result.stderr[-3000:]
    final = read_jsonl(out / "metrics.jsonl")[-1]

    # The test split, from the run's own program (load_data is numpy only: no worker needed).
    namespace = {"__name__": "run_program"}
    exec(compile((out / "program.py").read_text(), str(out / "program.py"), "exec"), namespace)  # noqa: S102
    _, (x_test, y_test) = namespace["load_data"]()

    model = tf.keras.models.load_model(out / "model.keras")
    probabilities = model.predict(x_test, batch_size=1024, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == y_test))
    assert accuracy == pytest.approx(final["eval_accuracy"], abs=1e-6)
    loss = float(tf.keras.losses.SparseCategoricalCrossentropy()(y_test, probabilities))
    assert loss == pytest.approx(final["eval_loss"], rel=1e-5)
    model.compile(loss=namespace["build_loss"](), metrics=namespace["build_metrics"]())
    scores = model.evaluate(x_test, y_test, batch_size=1024, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(final["eval_accuracy"], abs=1e-6)
    assert scores["loss"] == pytest.approx(final["eval_loss"], rel=1e-6)


class RunAfterFirstRound:
    """`fedlang run` of the 30-round quickstart as a subprocess, stopped at its first finished round.

    Output is read by threads (a pipe that fills up would stall the run); `finish()` waits for the
    exit and, if the run hangs, dumps its stacks (faulthandler) and returns "hung".
    """

    def __init__(self, tmp_path):
        spec = tmp_path / "quickstart.fed"
        spec.write_text(quickstart_spec_text())  # 30 rounds: far more than we let it run
        self.out = tmp_path / "run"
        self.proc = subprocess.Popen([sys.executable, "-m", "fedlang", "run", str(spec), "--out", str(self.out)],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=subprocess_env(), start_new_session=True)
        self.captured = {"stdout": [], "stderr": []}
        self.readers = [threading.Thread(target=lambda s=s, n=n: self.captured[n].extend(s), daemon=True)
                        for n, s in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))]
        for reader in self.readers:
            reader.start()
        try:
            deadline = time.monotonic() + 240
            metrics = self.out / "metrics.jsonl"
            while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
                assert self.proc.poll() is None, self.stderr[-3000:]
                assert time.monotonic() < deadline, "no round finished within 240 s"
                time.sleep(0.05)
        except BaseException:
            self.finish(timeout=0)
            raise

    @property
    def stderr(self) -> str:
        return "".join(self.captured["stderr"])

    def worker_pids(self) -> list[int]:
        return [c.pid for c in psutil.Process(self.proc.pid).children() if "worker_bin" in c.name()]

    def finish(self, timeout: float = 60):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler dumps the stacks of the hung run
            self.proc.wait(timeout=10)
            code = "hung"
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for reader in self.readers:
            reader.join(timeout=10)
        return code


@pytest.mark.parametrize("target", ["process", "group"])
def test_sigint_after_the_first_round_keeps_the_rows_and_stops_the_worker(target, quickstart_run, tmp_path):
    """SIGINT to the fedlang process alone, or to its whole process group as a terminal's Ctrl-C
    does. (Python drops a KeyboardInterrupt raised inside a finalizer, and TF runs many: the run
    must stop anyway.)"""
    run = RunAfterFirstRound(tmp_path)
    if target == "group":
        os.killpg(run.proc.pid, signal.SIGINT)
    else:
        run.proc.send_signal(signal.SIGINT)
    code = run.finish()
    out, stderr = run.out, run.stderr
    assert code != "hung", f"still running 60 s after SIGINT; its stacks:\n{stderr[-8000:]}"
    assert code == 130, stderr[-3000:]
    assert "interrupted after" in stderr

    rows = read_jsonl(out / "metrics.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["rounds_planned"] == 30
    assert 1 <= summary["rounds_completed"] == len(rows) < 30
    assert [r["round"] for r in rows] == list(range(1, len(rows) + 1))
    assert summary["final"] == rows[-1]
    assert not (out / "model.keras").exists()
    assert_no_worker_left()

    # Each round draws from its own generator, so the rounds of this (30-round) run equal the
    # same rounds of the 10-round run; evaluation also falls on the same rounds before the last.
    ten = read_jsonl(quickstart_run[1] / "metrics.jsonl")
    for row, other in zip(rows, ten[:-1]):
        assert {k: v for k, v in row.items() if k != "seconds"} == {k: v for k, v in other.items() if k != "seconds"}


def test_a_worker_that_dies_mid_run_fails_the_run_with_a_message_instead_of_hanging(tmp_path):
    run = RunAfterFirstRound(tmp_path)
    (worker_pid,) = run.worker_pids()
    os.kill(worker_pid, signal.SIGKILL)
    code = run.finish()
    assert code != "hung", f"still running 60 s after its worker died; its stacks:\n{run.stderr[-8000:]}"
    assert code == 1, run.stderr[-3000:]
    assert f"error: the TFF worker_binary (pid {worker_pid}) was killed by SIGKILL" in run.stderr
    assert "Traceback" not in run.stderr and (run.out / "traceback.txt").is_file()
    summary = json.loads((run.out / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert 1 <= summary["rounds_completed"] == len(read_jsonl(run.out / "metrics.jsonl")) < 30


SWALLOWED_INTERRUPT = """
import signal, sys, threading, time
from fedlang.cli import main
from fedlang.runtime import runner

status = runner.RoundTable.status

def status_then_a_swallowed_ctrl_c(self, message):
    status(self, message)
    if message == "round 2":  # as when a KeyboardInterrupt lands in a finalizer, which Python ignores
        try:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # to this thread, at once
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the handler runs between bytecodes, and raises here
                pass
        except KeyboardInterrupt:
            print("SWALLOWED", file=sys.stderr, flush=True)

runner.RoundTable.status = status_then_a_swallowed_ctrl_c
main(["run", sys.argv[1], "--rounds", "5", "--out", sys.argv[2]], prog_name="fedlang")
"""


def test_a_swallowed_interrupt_still_stops_the_run_before_the_next_round(tmp_path):
    """The handler also stops the worker, so the next computation fails and the run ends as interrupted."""
    spec = tmp_path / "quickstart.fed"
    spec.write_text(quickstart_spec_text())
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", SWALLOWED_INTERRUPT, str(spec), str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=240, env=subprocess_env())
    assert "SWALLOWED" in result.stderr, result.stderr[-3000:]
    assert result.returncode == 130, result.stderr[-3000:]
    assert "interrupted after 1 of 5 rounds" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["rounds_completed"] == 1
    assert not (out / "traceback.txt").exists()
    assert_no_worker_left()
