"""Per-client test sets, federated evaluation and local fine-tuning (issue 10), on one small run.

One `fedlang run` (subprocess) and one in-process run of the same emitted program share the
module: run = emit to 6 decimals (same seed, same numbers); the federated evaluation's weighted
mean and every client's value equal a NumPy computation of the final global model on the same
client test sets; fine-tuning leaves the global model's weights unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from .support import compile_text, load_program, read_jsonl, run_fedlang

pytestmark = [pytest.mark.tff]

SPEC = """experiment "p13n-test"
seed 5
model m {
  input [64]
  dense 10 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}
data digits {
  source sklearn.digits
  scale minmax
  partition shards(clients = 8, per_client = 2)
  test per_client(0.25)
  batch 32
}
train fedavg {
  rounds 2
  client_optimizer sgd(learning_rate = 0.2)
}
evaluate { every 2 }
personalize {
  epochs 2
  optimizer sgd(learning_rate = 0.05)
}
"""


class _KeepState:
    """The learning process, keeping the state of the last round."""

    def __init__(self, process):
        self._process, self.state = process, None

    def next(self, state, data):
        result = self._process.next(state, data)
        self.state = result.state
        return result

    def __getattr__(self, name):
        return getattr(self._process, name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tff_worker):
    """(rows and client records of `fedlang run`, the same in-process, namespace, kept process, final model)."""
    work = tmp_path_factory.mktemp("p13n")
    spec = work / "p13n.fed"
    spec.write_text(SPEC)
    out = work / "run"
    result = run_fedlang("run", spec, "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    namespace = load_program(compile_text(SPEC))
    kept = {}
    build = namespace["build_process"]
    namespace["build_process"] = lambda: kept.setdefault("process", _KeepState(build()))
    built = {}  # TFF's evaluation computations, traced once for the module
    build_evaluation = namespace["build_client_evaluation"]

    def build_once(model_fn, max_clients, finetune=None):
        key = (max_clients, finetune is None)
        if key not in built:
            built[key] = build_evaluation(model_fn, max_clients, finetune)
        return built[key]

    namespace["build_client_evaluation"] = build_once
    rows, records = [], []
    model = namespace["train"](2, on_round=rows.append, on_clients=records.extend)
    return (read_jsonl(out / "metrics.jsonl"), read_jsonl(out / "clients.jsonl"), rows, records, namespace,
            kept["process"], model)


def test_run_equals_emit_and_same_seed_same_numbers(runs):
    run_rows, run_records, rows, records, *_ = runs
    assert len(run_rows) == len(rows) == 2
    for run_row, row in zip(run_rows, rows):
        measured = [k for k in row if k.startswith(("train_", "fed_", "ft_"))]
        assert set(measured) <= set(run_row)
        for key in measured:
            assert run_row[key] == pytest.approx(row[key], abs=1e-6), key
    assert "fed_accuracy" in rows[1] and "ft_accuracy_worst10" in rows[1] and "fed_accuracy" not in rows[0]
    assert len(run_records) == len(records) == 8
    for run_record, record in zip(run_records, records):
        assert run_record.keys() == record.keys()
        for key, value in record.items():
            assert run_record[key] == pytest.approx(value, abs=1e-6), key


def _numpy_scores(weights, x, y):
    """Loss and accuracy of the spec's model (one dense softmax layer) computed with NumPy alone."""
    kernel, bias = (np.asarray(w, np.float64) for w in weights)
    logits = x.astype(np.float64) @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(y)), y])), float(np.mean(np.argmax(logits, axis=1) == y))


def test_federated_weighted_mean_equals_a_numpy_computation(runs):
    _, _, rows, records, namespace, process, _ = runs
    _, _, client_tests = namespace["load_data"]()
    sizes = np.array([len(y) for _, y in client_tests])
    assert [r["test_examples"] for r in records] == sizes.tolist()
    weights = process.get_model_weights(process.state).trainable
    accuracies = []
    for (x, y), record in zip(client_tests, records):
        loss, accuracy = _numpy_scores(weights, x, y)
        assert record["accuracy"] == pytest.approx(accuracy, abs=1e-6)
        assert record["loss"] == pytest.approx(loss, rel=1e-4)
        accuracies.append(accuracy)
    pooled = float(np.sum(np.array(accuracies) * sizes) / np.sum(sizes))
    assert rows[-1]["fed_accuracy"] == pytest.approx(pooled, abs=1e-6)
    assert rows[-1]["fed_accuracy_uniform"] == pytest.approx(float(np.mean(accuracies)), abs=1e-6)
    assert rows[-1]["fed_accuracy_p10"] == pytest.approx(float(np.percentile(accuracies, 10)), abs=1e-6)
    assert rows[-1]["fed_accuracy_worst10"] == pytest.approx(min(accuracies), abs=1e-6)  # 1 of 8 clients


def test_finetuning_leaves_the_global_model_unchanged(runs):
    _, _, rows, records, namespace, process, _ = runs
    clients, _, client_tests = namespace["load_data"]()
    before = [np.array(w) for w in process.get_model_weights(process.state).trainable]
    figures, again = namespace["evaluate_on_clients"](process, process.state, clients, client_tests, 2, True, {})
    after = [np.array(w) for w in process.get_model_weights(process.state).trainable]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    # Fine-tuning did train: the copies differ from the global model on the clients' test sets.
    assert any(r["ft_loss"] != pytest.approx(r["loss"], abs=1e-4) for r in records)
    assert figures["ft_worse"] + figures["ft_better"] <= len(records)
    for record, repeated in zip(records, again):  # and it repeats exactly
        assert repeated["ft_accuracy"] == pytest.approx(record["ft_accuracy"], abs=1e-6)
        assert repeated["accuracy"] == pytest.approx(record["accuracy"], abs=1e-6)
