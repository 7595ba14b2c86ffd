"""Layers marked `local` (FedPer, fedlang/lib/fedper.py): each client's local weights really differ,
stay with it across rounds, and appear neither in what the server holds or receives (TFF's types)
nor in the bytes; the shared layers are averaged as FedAvg averages them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from .support import compile_text, load_program

pytestmark = [pytest.mark.tff]

SPEC = """experiment "fedper-test"
seed 4
model m {
  input [64]
  dense 8 relu
  dense 10 softmax local
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}
data digits {
  source sklearn.digits
  scale minmax
  partition shards(clients = 6, per_client = 2)
  test per_client(0.25)
  batch 32
}
train fedavg {
  rounds 2
  clients_per_round 4
  client_optimizer sgd(learning_rate = 0.2)
}
evaluate { every 2 }
"""


class _KeepStates:
    """The FedPer process, keeping every round's (state before, clients, state after)."""

    def __init__(self, process):
        self._process, self.rounds = process, []

    def next(self, state, data, clients):
        result = self._process.next(state, data, clients)
        self.rounds.append((state, list(clients), result.state))
        return result

    def __getattr__(self, name):
        return getattr(self._process, name)


@pytest.fixture(scope="module")
def fedper(tff_worker):
    compiled = compile_text(SPEC)
    namespace = load_program(compiled)
    build, kept = namespace["build_process"], {}
    namespace["build_process"] = lambda: kept.setdefault("process", _KeepStates(build()))
    rows, records = [], []
    namespace["train"](2, on_round=rows.append, on_clients=records.extend)
    return compiled, namespace, kept["process"], rows, records


def test_local_weights_differ_per_client_and_stay_with_it(fedper):
    _, _, process, rows, records = fedper
    (first, sampled_1, after_1), (_, sampled_2, after_2) = process.rounds
    initial = first["local"][0]
    assert all(all(np.array_equal(a, b) for a, b in zip(w, initial)) for w in first["local"])  # same start
    trained = sorted(set(sampled_1) | set(sampled_2))
    heads = [np.concatenate([w.ravel() for w in after_2["local"][c]]) for c in trained]
    assert all(not np.allclose(heads[i], heads[j]) for i in range(len(heads)) for j in range(i + 1, len(heads)))
    for client in range(6):  # a client's head changes only in the rounds it takes part in
        if client not in sampled_2:
            assert all(np.array_equal(a, b) for a, b in zip(after_2["local"][client], after_1["local"][client]))
        if client not in trained:
            assert all(np.array_equal(a, b) for a, b in zip(after_2["local"][client], initial))
    assert len(records) == 6 and "fed_accuracy" in rows[-1]


def test_local_layers_are_never_at_the_server_nor_in_the_bytes(fedper):
    import tensorflow_federated as tff

    compiled, namespace, process, _, _ = fedper
    shared_shapes = [(64, 8), (8,)]
    local_shapes = [(8, 10), (10,)]
    (_, _, after), _ = process.rounds
    assert [w.shape for w in after["shared"]] == shared_shapes
    assert [w.shape for w in after["local"][0]] == local_shapes
    # TFF's own types: every SERVER-placed value of the round (in and out) holds only the shared layers;
    # the local weights are CLIENTS-placed in and out, so never broadcast nor aggregated.
    signature = process._process._next.type_signature
    server_in, local_in, _ = signature.parameter
    assert server_in.placement is tff.SERVER and local_in.placement is tff.CLIENTS
    assert [tuple(t.shape) for t in server_in.member] == shared_shapes
    assert [tuple(t.shape) for t in local_in.member] == local_shapes
    new_shared, new_local = signature.result[0], signature.result[1]
    assert new_shared.placement is tff.SERVER and [tuple(t.shape) for t in new_shared.member] == shared_shapes
    assert new_local.placement is tff.CLIENTS
    shared_params = sum(math.prod(s) for s in shared_shapes)
    assert compiled.plan.communication["down"] == 4 * shared_params
    assert compiled.plan.communication["up"] == 4 * shared_params + 4  # plus the example-count weight
    assert namespace["BYTES_DOWN_PER_CLIENT"] == 4 * shared_params


def test_shared_layers_are_the_example_weighted_mean_of_the_clients(fedper):
    """Round 1 again by hand: each sampled client's update on the round's own data, averaged with
    example weights, applied with server SGD 1.0, gives the server's new shared weights."""
    _, namespace, process, _, _ = fedper
    (before, sampled, after), _ = process.rounds
    clients, _, _ = namespace["load_data"]()
    rng = np.random.default_rng([namespace["SEED"], 1])  # the round's generator, drawn as train() draws it
    assert list(namespace["sample_clients"](rng, len(clients), namespace["CLIENTS_PER_ROUND"])) == sampled
    seeds = rng.integers(2**31 - 1, size=len(sampled))
    total, weight = None, 0.0
    for client, seed in zip(sampled, seeds):
        dataset = namespace["client_dataset"](*clients[client], seed=int(seed))
        delta, new_local, examples, _, _ = process._process._client_update(before["shared"], before["local"][client],
                                                                            dataset)
        assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(new_local, after["local"][client]))
        scaled = [float(examples) * np.asarray(d) for d in delta]
        total = scaled if total is None else [t + d for t, d in zip(total, scaled)]
        weight += float(examples)
    expected = [b + t / weight for b, t in zip(before["shared"], total)]
    assert all(np.allclose(a, e, atol=1e-5) for a, e in zip(after["shared"], expected))
