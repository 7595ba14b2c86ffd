"""One run over several TFF workers (TFF's mergeable execution context): the same numbers as one
worker, local workers that never outlive their run, `fedlang worker` serving workers for runs
elsewhere (here on 127.0.0.1), and a dead or unreachable worker named in an error, not a hang."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from .support import (QUICKSTART_ROUNDS, REPO, assert_no_worker_left, parse_printed_rows, read_jsonl, run_fedlang,
                      subprocess_env)

pytestmark = [pytest.mark.tff, pytest.mark.slow]

ROUNDS = 5  # the quickstart evaluates every 5 rounds: round 5 has eval numbers in both runs
assert ROUNDS <= QUICKSTART_ROUNDS

# float32 sums over clients are split at other points when clients are spread over workers, so the
# numbers agree to rounding (measured: relative differences up to ~1e-7 per round), not bit for bit.
RELATIVE = 1e-4


def _assert_close_rows(rows, reference, columns=None):
    assert len(rows) == len(reference)
    for row, ref in zip(rows, reference):
        assert row["round"] == ref["round"]
        keys = columns or [k for k in ref if k.startswith(("train_", "eval_", "update_norm"))]
        for key in keys:
            assert float(row[key]) == pytest.approx(float(ref[key]), rel=RELATIVE, abs=1e-6), (row["round"], key)


def test_two_local_workers_give_the_numbers_of_one(quickstart_run, tmp_path):
    spec, one_worker, first = quickstart_run
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "two"
    result = run_fedlang("run", spec, "--rounds", ROUNDS, "--workers", 2, "--out", out)
    assert_no_worker_left()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "workers: 2 local worker_binary processes" in result.stdout
    assert (out / "worker-1.log").exists() and (out / "worker-2.log").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and len(summary["workers"]) == 2
    rows = read_jsonl(out / "metrics.jsonl")
    reference = read_jsonl(one_worker / "metrics.jsonl")[:ROUNDS]
    assert "eval_accuracy" in rows[-1] and "eval_accuracy" in reference[-1]
    _assert_close_rows(rows, reference)


FUSED_SPEC = """\
experiment "fused-over-workers"
seed 3
model mlp {
  input [64]
  dense 32 relu
  dense 10 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}
data digits {
  source sklearn.digits
  scale 0.0625
  partition iid(clients = 12)
  test holdout(0.25)
  batch 20
}
train fedavg {
  rounds 3  clients_per_round 6  local_epochs 1
  client_optimizer sgd(learning_rate = 0.05)
  execution fused
}
evaluate { every 3 }
"""


def test_the_fused_path_spreads_its_groups_over_the_pool(tmp_path):
    """With a pool the fused path trains one group of clients per worker (FUSED_GROUPS = workers), and
    the round's numbers are those of one worker training them all in one group."""
    spec = tmp_path / "fused.fed"
    spec.write_text(FUSED_SPEC)
    one = run_fedlang("run", spec, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_fedlang("run", spec, "--workers", 2, "--out", tmp_path / "two")
    assert_no_worker_left()
    assert two.returncode == 0, two.stderr[-3000:]
    assert "FUSED_GROUPS = 1  #" in (tmp_path / "one" / "program.py").read_text()
    assert "FUSED_GROUPS = 2  #" in (tmp_path / "two" / "program.py").read_text()
    rows, reference = read_jsonl(tmp_path / "two" / "metrics.jsonl"), read_jsonl(tmp_path / "one" / "metrics.jsonl")
    assert "eval_accuracy" in rows[-1]
    _assert_close_rows(rows, reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_fedlang_worker(port: int, log):
    proc = subprocess.Popen([sys.executable, "-m", "fedlang", "worker", "--port", str(port), "--log", str(log)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=subprocess_env())
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 60
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"`fedlang worker --port {port}` did not report listening within 60 s")
        if "listening on port" in line:
            return proc, lines


def test_emitted_program_on_three_fedlang_workers_over_loopback(quickstart_run, tmp_path):
    """`fedlang worker --port P` ×3, a spec whose runtime block names them (`remote ["127.0.0.1:P", …]`),
    its emitted program run as is: the numbers of one local worker; then SIGTERM stops each worker
    cleanly (exit 0, its own log)."""
    spec, one_worker, _ = quickstart_run
    program = tmp_path / "program.py"
    workers = []
    try:
        for i in range(3):
            port = _free_port()
            proc, lines = _start_fedlang_worker(port, tmp_path / f"w{i}.log")
            workers.append((proc, lines, port))
        remote = ", ".join(f'"127.0.0.1:{port}"' for _, _, port in workers)
        remote_spec = tmp_path / "remote.fed"
        remote_spec.write_text(spec.read_text() + f"\nruntime {{\n  remote [{remote}]\n}}\n")
        emitted = run_fedlang("emit", remote_spec, "-o", program)
        assert emitted.returncode == 0, emitted.stderr
        result = subprocess.run([sys.executable, str(program), "--rounds", "3"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300,
                                env=subprocess_env())
        assert result.returncode == 0, result.stderr[-3000:]
        printed = parse_printed_rows(result.stdout)
        reference = read_jsonl(one_worker / "metrics.jsonl")[:3]
        _assert_close_rows(printed, [{**r, "round": str(r["round"])} for r in reference],
                           columns=["train_loss", "train_accuracy"])
        for proc, lines, port in workers:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            assert any("stopped (SIGTERM)" in l for l in list(lines.queue))
        for i in range(3):
            assert (tmp_path / f"w{i}.log").exists()
    finally:
        for proc, _, _ in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert_no_worker_left()


SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import tensorflow_federated as tff
    from fedlang.lib.tff_worker import WorkerUnreachableError, use_tff_workers

    mode, free_port = sys.argv[1], sys.argv[2]
    try:  # nothing listens there: an error naming the address, at once
        use_tff_workers(addresses=["127.0.0.1:" + free_port], connect_timeout=30)
    except WorkerUnreachableError as e:
        print("UNREACHABLE", e, flush=True)
    pool = use_tff_workers(2)
    print("WORKER_PIDS", *[w.pid for w in pool.workers], flush=True)

    @tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))
    def total(values):
        return tff.federated_sum(values)

    print("SUM", total([1.0, 2.0, 3.5, 4.0]), flush=True)
    print("CALLS", *[w.calls for w in pool.workers], flush=True)
    print("READY", flush=True)
    if mode == "sleep":
        time.sleep(120)
    if mode == "crash":  # one worker dies: the next computation fails naming it, and the run ends
        import os, signal
        os.kill(pool.workers[1].pid, signal.SIGKILL)
        total([1.0, 2.0])
""")


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _assert_gone(pids, within=10.0):
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"worker_binary {left} outlived its parent"


def _script(mode, **options):
    env = subprocess_env(PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", SCRIPT, mode, str(_free_port())], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **options)


def _pids(stdout):
    line = next(l for l in stdout.splitlines() if l.startswith("WORKER_PIDS "))
    return [int(p) for p in line.split()[1:]]


def test_a_dead_worker_ends_the_run_with_an_error_naming_it_and_leaves_no_worker():
    proc = _script("crash")
    stdout, stderr = proc.communicate(timeout=180)  # piped: a leaked worker would hang this
    pids = _pids(stdout)
    unreachable = next(l for l in stdout.splitlines() if l.startswith("UNREACHABLE "))
    assert "the TFF worker at 127.0.0.1:" in unreachable and "cannot be reached (Connection refused)" in unreachable
    assert "SUM 10.5" in stdout
    calls = next(l for l in stdout.splitlines() if l.startswith("CALLS ")).split()[1:]
    assert all(int(c) > 0 for c in calls), calls  # both workers took part in the sum
    assert proc.returncode != 0
    assert f"WorkerExitedError: the TFF worker_binary (pid {pids[1]}) was killed by SIGKILL (it served localhost:" in stderr
    _assert_gone(pids)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_run_stops_every_worker(sig):
    proc = _script("sleep")
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    pids, deadline = None, time.monotonic() + 120
    try:
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line.startswith("WORKER_PIDS "):
                pids = _pids(line)
            if line.startswith("READY"):
                break
        proc.send_signal(sig)
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    _assert_gone(pids)
