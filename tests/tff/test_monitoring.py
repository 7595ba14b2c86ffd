"""Checkpoints, resume after kill -9, and monitor-block alerts (fedlang/runtime/checkpoints.py,
fedlang/lib/monitor.py, fedlang/runtime/monitoring.py), on a tiny MLP over 20 digits clients for 6 rounds."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .support import REPO, assert_no_worker_left, compile_text, load_program, read_jsonl, run_fedlang, subprocess_env

TINY = """\
experiment "tiny-monitor"
seed 7

model mlp {
  input   [64]
  dense   16 relu
  dropout 0.2
  dense   10 softmax
  loss    sparse_categorical_crossentropy
  metrics [accuracy]
}

data digits {
  source    sklearn.digits
  scale     minmax
  partition dirichlet(alpha = 0.5, clients = 20)
  test      holdout(0.2)
  batch 16  shuffle 100
}

train fedavg {
  rounds 6   clients_per_round 5   local_epochs 1
  client_optimizer sgd(learning_rate = 0.1)
  server_optimizer sgd(learning_rate = 1.0)
}

evaluate { every 2 }

monitor {
  checkpoint every 2
%s
}
"""
WARN_ALERTS = """\
  alert train_loss < 2.0 -> warn
  alert eval_accuracy not improving for 2 rounds -> warn
  alert nan -> stop"""


def _without_time(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _first_round(rows, holds):
    return next((r["round"] for r in rows if holds(r)), None)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One complete `fedlang run` of the tiny spec with warn alerts: (spec path, run dir)."""
    work = tmp_path_factory.mktemp("monitor")
    spec = work / "tiny.fed"
    spec.write_text(TINY % WARN_ALERTS)
    out = work / "full"
    result = run_fedlang("run", spec, "--out", out, "-q", timeout=600)
    assert result.returncode == 0, result.stderr
    assert_no_worker_left()
    return spec, out


def test_alerts_fire_exactly_when_their_condition_first_holds(uninterrupted):
    _, out = uninterrupted
    rows = read_jsonl(out / "metrics.jsonl")
    events = read_jsonl(out / "alerts.jsonl")
    assert len(rows) == 6
    loss_round = _first_round(rows, lambda r: r["train_loss"] < 2.0)
    evals = [(r["round"], r["eval_accuracy"]) for r in rows if "eval_accuracy" in r]
    best_round, best, plateau_round = None, None, None
    for rnd, acc in evals:  # an independent reading of "not improving for 2 rounds"
        if best is None or acc > best:
            best, best_round = acc, rnd
        if plateau_round is None and rnd - best_round >= 2:
            plateau_round = rnd
    expected = sorted([(loss_round, "train_loss < 2.0")] * (loss_round is not None)
                      + [(plateau_round, "eval_accuracy not improving for 2 rounds")] * (plateau_round is not None))
    fired = sorted((e["round"], e["alert"]) for e in events)
    # Each fires once: while the condition keeps holding it does not fire again.
    assert [f for f in fired if f[1] == "train_loss < 2.0"] == [f for f in expected if f[1] == "train_loss < 2.0"]
    assert [f for f in fired if f[1].startswith("eval")] == [f for f in expected if f[1].startswith("eval")]
    assert expected, "the tiny run should cross at least one threshold (re-tune TINY if the model changed)"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["alerts"]["fired"] == len(events)
    assert summary["checkpoints"] == ["program_state_2", "program_state_4", "program_state_6"]


def _start_run(*args):
    return subprocess.Popen([sys.executable, "-m", "fedlang", "run", *map(str, args), "-q"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=subprocess_env())


def _kill_when(proc, condition, timeout=300.0):
    """SIGKILL `proc` (the fedlang process; its worker dies with it) as soon as condition() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait()
    return False


def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_metrics(uninterrupted, tmp_path):
    spec, full = uninterrupted
    out = tmp_path / "killed"
    ckpt = out / "checkpoints"
    rng = random.Random(os.environ.get("FEDLANG_KILL_SEED", "11"))
    # 1) killed while a checkpoint is being written (its temporary SavedModel directory exists)
    proc = _start_run(spec, "--out", out)
    killed = _kill_when(proc, lambda: ckpt.is_dir() and any("_temp" in p.name for p in ckpt.iterdir()))
    assert killed, "the run finished before a checkpoint write could be interrupted"
    # 2) resumed, then killed at a random moment after it starts training again
    proc = _start_run("--resume", out)
    delay = rng.uniform(0.0, 4.0)
    started = {}

    def after_delay():
        lines = (out / "metrics.jsonl").read_text().count("\n") if (out / "metrics.jsonl").exists() else 0
        if lines and "t" not in started:
            started["t"] = time.monotonic()
        return "t" in started and time.monotonic() - started["t"] > delay

    _kill_when(proc, after_delay)
    # 3) the newest checkpoint damaged on disk: detected, and the previous one used
    versions = sorted(int(p.name.split("_")[-1]) for p in ckpt.glob("program_state_*") if p.is_dir()
                      and "_temp" not in p.name and (ckpt / f"{p.name}.sha256.json").exists())
    damaged = None
    if len(versions) >= 2:
        damaged = versions[-1]
        data = next((ckpt / f"program_state_{damaged}" / "variables").glob("variables.data*"))
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    result = run_fedlang("run", "--resume", out, "-q", timeout=600)
    assert result.returncode == 0, result.stderr
    if damaged is not None:
        assert f"checkpoint of round {damaged} is unusable" in result.stderr
        assert (ckpt / f"rejected_program_state_{damaged}").is_dir()
    assert _without_time(read_jsonl(out / "metrics.jsonl")) == _without_time(read_jsonl(full / "metrics.jsonl"))
    assert read_jsonl(out / "alerts.jsonl") == read_jsonl(full / "alerts.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 6
    assert_no_worker_left()


def test_damaged_or_incomplete_checkpoints_fall_back_to_the_previous(tmp_path):
    from fedlang.runtime.checkpoints import load_checkpoint, save_checkpoint

    structure = {"w": np.zeros(3, np.float32), "step": np.int64(0)}
    for r in (2, 4, 6):
        save_checkpoint(str(tmp_path), r, {"w": np.full(3, r, np.float32), "step": np.int64(r)}, {"rows": [r]})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "program_state_2", "program_state_2.sha256.json", "program_state_4", "program_state_4.sha256.json",
        "program_state_6", "program_state_6.sha256.json"]
    os.remove(tmp_path / "program_state_6.sha256.json")  # killed between the rename and the manifest
    data = next((tmp_path / "program_state_4" / "variables").glob("variables.data*"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte, same size
    data.write_bytes(bytes(raw))
    messages = []
    restored = load_checkpoint(str(tmp_path), structure, report=messages.append)
    assert restored is not None and restored[0] == 2
    assert restored[2] == {"rows": [2]} and restored[1]["w"].tolist() == [2.0, 2.0, 2.0]
    assert [m.split(":")[0] for m in messages] == ["checkpoint of round 6 is unusable",
                                                   "checkpoint of round 4 is unusable"]
    # the rejected ones are moved aside, so the rerun rounds can be saved again
    save_checkpoint(str(tmp_path), 4, {"w": np.full(3, 4, np.float32), "step": np.int64(4)}, {"rows": [4]})
    assert load_checkpoint(str(tmp_path), structure)[0] == 4


def test_a_stop_alert_stops_after_the_round_it_first_holds(uninterrupted, tmp_path, tff_worker):
    """The program (which `fedlang run` executes) stops right after the first round the condition
    holds in the uninterrupted run (alerts do not change the training), and checkpoints it."""
    compiled = compile_text(TINY % "  alert train_loss < 2.15 -> stop")
    namespace = load_program(compiled)
    events = []
    rows = []
    from fedlang.runtime.checkpoints import RunCheckpoints

    checkpoints = RunCheckpoints(str(tmp_path / "ckpt"), 10, on_restore=None)
    namespace["train"](6, on_round=rows.append, on_alert=events.append, checkpoints=checkpoints)
    reference = read_jsonl(uninterrupted[1] / "metrics.jsonl")
    first = _first_round(reference, lambda r: r["train_loss"] < 2.15)
    assert first is not None and first < 6
    assert [r["round"] for r in rows] == list(range(1, first + 1))
    assert _without_time(rows) == _without_time(reference[:first])
    assert events == [{"round": first, "alert": "train_loss < 2.15", "action": "stop",
                       "value": reference[first - 1]["train_loss"]}]
    # stopping saved a checkpoint of that round
    assert (tmp_path / "ckpt" / f"program_state_{first}").is_dir()


def _norms(measurements):
    """A round's update norms, as train() reads them into its row."""
    return {key: float(measurements[key]) for key in ("update_norm_mean", "update_norm_max")}


def test_update_norms_are_the_clients_update_norms(tff_worker):
    """With one client and server SGD at learning rate 1, the global model moves by exactly that
    client's update, so mean = max = the norm of the weight change; with three, max >= mean."""
    ns = load_program(compile_text(TINY % "  alert nan -> stop"))
    process = ns["build_process"]()
    clients, _ = ns["load_data"]()
    state = process.initialize()
    before = process.get_model_weights(state).trainable
    one = process.next(state, [ns["client_dataset"](*clients[0], seed=1)])
    norms = _norms(one.metrics["aggregator"])
    after = process.get_model_weights(one.state).trainable
    moved = float(np.sqrt(sum(np.sum((np.asarray(a) - np.asarray(b)) ** 2) for a, b in zip(after, before))))
    assert norms["update_norm_mean"] == pytest.approx(moved, rel=1e-5)
    assert norms["update_norm_max"] == pytest.approx(moved, rel=1e-5)
    three = process.next(state, [ns["client_dataset"](*clients[i], seed=1) for i in range(3)])
    norms = _norms(three.metrics["aggregator"])
    assert norms["update_norm_max"] > norms["update_norm_mean"] > 0


def test_update_norms_are_mean_and_max_of_each_clients_norm(tff_worker):
    """Without dropout a client's update does not depend on who else trains: the norms of three
    clients, each measured alone (= how far it moves the model at server learning rate 1), give
    the round's mean and max when the three train together."""
    text = (TINY % "  alert nan -> stop").replace("  dropout 0.2\n", "").replace(
        "  server_optimizer sgd(learning_rate = 1.0)\n",
        "  server_optimizer sgd(learning_rate = 1.0)\n  execution per_client\n")
    ns = load_program(compile_text(text))
    process = ns["build_process"]()
    clients, _ = ns["load_data"]()
    state = process.initialize()
    before = process.get_model_weights(state).trainable
    alone = []
    for i in range(3):
        one = process.next(state, [ns["client_dataset"](*clients[i], seed=i)])
        after = process.get_model_weights(one.state).trainable
        moved = float(np.sqrt(sum(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
                                  for a, b in zip(after, before))))
        assert _norms(one.metrics["aggregator"])["update_norm_mean"] == pytest.approx(moved, rel=1e-5)
        alone.append(moved)
    three = process.next(state, [ns["client_dataset"](*clients[i], seed=i) for i in range(3)])
    norms = _norms(three.metrics["aggregator"])
    assert norms["update_norm_mean"] == pytest.approx(np.mean(alone), rel=1e-5)
    assert norms["update_norm_max"] == pytest.approx(max(alone), rel=1e-5)
    assert len(set(np.round(alone, 6))) == 3  # three different norms, so mean and max are told apart


def test_tensorboard_events_and_report_hold_every_metric(uninterrupted):
    import html
    import html.parser

    import tensorflow as tf

    _, out = uninterrupted
    rows = read_jsonl(out / "metrics.jsonl")
    scalars = {}
    for event_file in (out / "tensorboard").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                scalars[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    for row in rows:
        for key, value in row.items():
            if key != "round":
                assert scalars[(key, row["round"])] == pytest.approx(value, rel=1e-6), key
    report = (out / "report.html").read_text()

    class Checker(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.images = [], 0

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "img", "br"):
                self.stack.append(tag)
            if tag == "img":
                self.images += 1
                assert dict(attrs)["src"].startswith("data:image/png;base64,")

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag

    checker = Checker()
    checker.feed(report)
    assert checker.stack == [] and checker.images >= 4
    assert "http://" not in report and "https://" not in report  # opens without a server or network
    for name in {k for row in rows for k in row}:
        assert name in report
    for event in read_jsonl(out / "alerts.jsonl"):
        assert html.escape(event["alert"]) in report
