"""Learning-rate schedules reach TFF: the emitted program sets each round's rates with
set_hparams, and they change what the round does (a server rate of 0 leaves the model as it
was; a client rate of ~0 makes a round's update ~0), while the rows report the rates."""

from __future__ import annotations

import numpy as np
import pytest

from .support import compile_text, load_program

pytestmark = [pytest.mark.tff]

SPEC = """seed 1
model m {
  input [64]
  dense 10 softmax
  loss sparse_categorical_crossentropy
}
data {
  source sklearn.digits
  scale minmax
  partition iid(clients = 20)
}
train ALGORITHM {
  rounds 3  clients_per_round 5  MU
  client_optimizer sgd(learning_rate = CLIENT)
  server_optimizer sgd(learning_rate = SERVER)
}
"""


def _train(rounds, client, server, algorithm="fedavg"):
    text = (SPEC.replace("ALGORITHM", algorithm).replace("MU", "mu 0.1" if algorithm == "fedprox" else "")
            .replace("CLIENT", client).replace("SERVER", server))
    namespace = load_program(compile_text(text))
    rows = []
    model = namespace["train"](rounds, on_round=rows.append)
    return rows, [w.copy() for w in model.get_weights()]


def _initial_weights():
    namespace = load_program(compile_text(SPEC.replace("ALGORITHM", "fedavg").replace("MU", "")
                                          .replace("CLIENT", "0.1").replace("SERVER", "1.0")))
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1)
    return namespace["build_keras_model"]().get_weights()


def test_server_warmup_from_zero_leaves_round_one_without_effect(tff_worker):
    rows, after_one = _train(1, "0.1", "warmup(1.0, 2, start = 0.0)")
    assert rows[0]["server_lr"] == 0.0
    for a, b in zip(after_one, _initial_weights()):
        np.testing.assert_array_equal(a, b)
    rows, after_two = _train(2, "0.1", "warmup(1.0, 2, start = 0.0)")
    assert rows[1]["server_lr"] == pytest.approx(0.5)
    assert any(not np.allclose(a, b) for a, b in zip(after_two, after_one))


@pytest.mark.parametrize("algorithm", ["fedavg", "fedprox"])
def test_client_decay_to_almost_zero_freezes_later_rounds(algorithm, tff_worker):
    schedule = "exponential_decay(0.5, 1, 0.000001)"  # 0.5 in round 1, 5e-7 in round 2
    rows, one = _train(1, schedule, "1.0", algorithm)
    rows, two = _train(2, schedule, "1.0", algorithm)
    assert [r["client_lr"] for r in rows] == pytest.approx([0.5, 5e-7])
    moved_in_round_one = max(np.abs(a - b).max() for a, b in zip(one, _initial_weights()))
    moved_in_round_two = max(np.abs(a - b).max() for a, b in zip(two, one))
    assert moved_in_round_one > 1e-2 and moved_in_round_two < 1e-5
