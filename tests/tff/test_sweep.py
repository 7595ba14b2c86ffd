"""A real sweep: two FedProx cells (μ = 0 and 1) of 2 rounds on Synthetic(1, 1), each a real
TFF run in its own process; then a rerun that skips both."""

from __future__ import annotations

import csv
import json

import pytest

from .support import REPO, assert_no_worker_left, run_fedlang

pytestmark = [pytest.mark.tff, pytest.mark.slow]


def test_two_cell_sweep_runs_and_reruns_nothing(tmp_path):
    out = tmp_path / "sweep"
    spec = REPO / "examples" / "fedprox_synthetic.fed"
    result = run_fedlang("run", spec, "--set", "train.mu=0,1", "--rounds", "2", "--out", out, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_worker_left()
    for cell in ("mu=0-seed=7", "mu=1-seed=7"):
        summary = json.loads((out / cell / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["rounds_completed"] == 2
        assert "mu 1" in (out / "specs" / "mu=1-seed=7.fed").read_text()
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["setting"], r["n"]) for r in rows] == [("train.mu=0", "1"), ("train.mu=1", "1")]
    assert rows[0]["train_loss_mean"] != rows[1]["train_loss_mean"]  # the proximal term changed the training
    again = run_fedlang("run", spec, "--set", "train.mu=0,1", "--rounds", "2", "--out", out)
    assert again.returncode == 0 and again.stdout.count("done before, skipped") == 2
