"""Simulated partial work really trains fewer steps: TFF's own count of the examples each round
processed equals what the drawn steps allow (examples_in_steps of every kept client), and is
below the full local work; an abandoned round leaves the model unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from .support import SPECS, compile_text, load_program

pytestmark = [pytest.mark.tff]


class _Recording:
    """A learning process that records each round's training metrics (TFF's num_examples)."""

    def __init__(self, process, metrics):
        self._process, self._metrics = process, metrics

    def next(self, state, data):
        result = self._process.next(state, data)
        self._metrics.append(result.metrics["client_work"]["train"])
        return result

    def __getattr__(self, name):
        return getattr(self._process, name)


def _run(text, rounds):
    namespace = load_program(compile_text(text, base_dir=SPECS))
    build, metrics, conditions = namespace["build_process"], [], []
    namespace["build_process"] = lambda: _Recording(build(), metrics)
    draw = namespace["simulate_round"]
    namespace["simulate_round"] = lambda *a: conditions.append(draw(*a)) or conditions[-1]
    rows = []
    namespace["train"](rounds, on_round=rows.append)
    clients, _ = namespace["load_data"]()
    sizes = np.array([len(y) for _, y in clients])
    return namespace, rows, metrics, conditions, sizes


def test_partial_work_trains_exactly_the_drawn_steps(tff_worker):
    text = (SPECS / "simulation_partial.fed").read_text()
    namespace, rows, metrics, conditions, sizes = _run(text, 3)
    examples_in_steps = namespace["examples_in_steps"]
    batch, epochs = namespace["BATCH_SIZE"], namespace["LOCAL_EPOCHS"]
    cut = 0
    for row, trained, drawn in zip(rows, metrics, conditions):
        kept = drawn["clients"]
        expected = int(np.sum(examples_in_steps(drawn["steps"], sizes[kept], batch)))
        full = int(np.sum(epochs * sizes[kept]))
        assert int(trained["num_examples"]) == expected, row["round"]
        assert expected <= full
        cut += full - expected
    assert cut > 0  # stragglers really ran fewer steps


def test_an_abandoned_round_leaves_the_model_unchanged(tff_worker):
    text = (SPECS / "simulation_partial.fed").read_text().replace("min_clients 2", "min_clients 4").replace(
        "dropout 0.1", "dropout 0.5")
    namespace, rows, metrics, conditions, _ = _run(text, 3)
    abandoned = [r["round"] for r in rows if r["abandoned"]]
    assert 0 < len(abandoned) < 3, "this seed abandons a round (fewer than 4 of 9 complete with dropout 0.5)"
    assert len(metrics) == 3 - len(abandoned)  # no process.next for an abandoned round
    assert all("train_loss" not in r for r in rows if r["abandoned"])
