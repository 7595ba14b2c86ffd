"""Run-time faults (issue 8): bad client data is an error before round 1 naming the client; a
client whose local training goes NaN/inf is named with its round, and the aggregate is protected
(`on_nonfinite stop`, the default, stops with the reason in summary.json; `skip` drops the client)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .support import compile_text, load_program, run_fedlang

pytestmark = pytest.mark.tff


def poisoned_spec(tmp_path, on_nonfinite: str | None = None, experiment: str = '"poisoned"') -> str:
    """Three clinics; clinic 2's features are all 1e38 (finite in float32, so check accepts them)
    with alternating labels, so its first local SGD step overflows the weights to inf (then NaN)."""
    rng = np.random.default_rng(0)
    rows = ["site,a,b,label"]
    for site in range(3):
        for i in range(16):
            a, b = (1e38, 1e38) if site == 2 else rng.normal(size=2)
            rows.append(f"{site},{a!r},{b!r},{i % 2 if site == 2 else int(rng.integers(2))}")
    (tmp_path / "clinics.csv").write_text("\n".join(rows) + "\n")
    setting = f"on_nonfinite {on_nonfinite}" if on_nonfinite else ""
    return f"""experiment {experiment}
seed 1
model m {{
  input [2]
  dense 2 linear
  loss sparse_categorical_crossentropy
}}
data {{
  source csv("clinics.csv", label = "label", client = "site")
  batch 4
}}
train fedavg {{
  rounds 2  local_epochs 2  {setting}
  client_optimizer sgd(learning_rate = 1.0)
}}
"""


def test_a_client_with_non_finite_training_is_skipped_or_stops_the_run(tmp_path, tff_worker):
    text = poisoned_spec(tmp_path, "skip")
    rows = []
    program = load_program(compile_text(text, base_dir=tmp_path))
    model = program["train"](2, on_round=rows.append)
    assert [r["skipped_clients"] for r in rows] == [1, 1]
    assert all(np.isfinite(r["train_loss"]) for r in rows)
    assert all(np.isfinite(w).all() for w in model.get_weights())

    stopping = load_program(compile_text(poisoned_spec(tmp_path), base_dir=tmp_path))  # default: stop
    with pytest.raises(stopping["NonFiniteRound"], match=r"round 1: the update of client 2 is not finite"):
        stopping["train"](2, on_round=rows.append)


def test_infinite_features_after_scaling_fail_before_round_one(tmp_path, tff_worker):
    text = """experiment "overflow"
model m {
  input [64]
  dense 10 softmax
  loss sparse_categorical_crossentropy
}
data {
  source sklearn.digits
  scale 1e38
  partition iid(clients = 5)
}
train fedavg { rounds 1 }
"""
    program = load_program(compile_text(text))
    rows = []
    with pytest.raises(ValueError, match=r"^client 0: example \d+ has a NaN or infinite feature value"):
        program["train"](1, on_round=rows.append)
    assert rows == []


def test_fedlang_run_saves_the_reason_it_stopped(tmp_path):
    """Also a real run of a hostile experiment name: a cookie, markup and an escape sequence."""
    name = r'"# coding: utf-7 +AAo-import os [red]x[/red] \u001b[2J"'
    (tmp_path / "spec.fed").write_text(poisoned_spec(tmp_path, experiment=name))
    result = run_fedlang("run", tmp_path / "spec.fed", "--out", tmp_path / "run", "-q")
    assert result.returncode == 1, result.stderr
    assert "round 1: the update of client 2 is not finite" in result.stderr
    assert "[red]x[/red] \\x1b[2J" in result.stdout and "\x1b" not in result.stdout + result.stderr
    assert (tmp_path / "run" / "program.py").read_bytes().startswith(b"#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["rounds_completed"] == 0
    assert "client 2" in summary["reason"] and "on_nonfinite stop" in summary["reason"]
