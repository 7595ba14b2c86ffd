"""`compress topk(fraction)` (fedlang/lib/compression.py): the encoded update of a client is
exactly the plan's bytes (float32 values and int32 indices of the top-k entries), decoding keeps
the k largest-magnitude entries and zeros the rest, and a TFF round with one client moves each
weight tensor in at most k places."""

from __future__ import annotations

import math

import numpy as np
import pytest

from .support import compile_text, load_program

pytestmark = [pytest.mark.tff]

SPEC = """\
experiment "tiny-topk"
seed 3
model mlp {
  input   [64]
  dense   16 relu
  dense   10 softmax
  loss    sparse_categorical_crossentropy
}
data digits {
  source    sklearn.digits
  scale     minmax
  partition iid(clients = 10)
  batch 16
}
train fedavg {
  rounds 2   clients_per_round 1   local_epochs 1
  client_optimizer sgd(learning_rate = 0.5)
  server_optimizer sgd(learning_rate = 1.0)
}
aggregation { compress topk(fraction = 0.1, threshold = 10) }
"""


@pytest.fixture(scope="module")
def program():
    compiled = compile_text(SPEC)
    return compiled, load_program(compiled)


def test_encoded_bytes_are_the_plans_and_decoding_keeps_the_top_k(program):
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.internal import tensor_encoding as te

    compiled, namespace = program
    shapes = [(64, 16), (16,), (16, 10), (10,)]
    rng = np.random.default_rng(0)
    sent = 0
    for shape in shapes:
        x = tf.constant(rng.normal(size=shape).astype(np.float32))
        n = math.prod(shape)
        if n <= 10:  # the threshold: sent as it is
            sent += 4 * n
            continue
        encoder = te.core.EncoderComposer(namespace["top_k_encoding_stage"](0.1)).add_parent(
            te.stages.FlattenEncodingStage(), te.stages.FlattenEncodingStage.ENCODED_VALUES_KEY).make()
        encoder = te.core.SimpleEncoder(encoder, tf.TensorSpec(shape, tf.float32))
        state = encoder.initial_state()
        encoded, _ = encoder.encode(x, state)
        flat = tf.nest.flatten(encoded)
        sent += sum(int(t.numpy().nbytes) for t in flat)
        decoded = encoder.decode(encoded).numpy()
        k = math.ceil(0.1 * n)
        assert np.count_nonzero(decoded) == k
        kept = np.sort(np.abs(x.numpy()).ravel())[-k:]
        assert np.allclose(np.sort(np.abs(decoded[decoded != 0])), kept)  # the k largest magnitudes
        assert np.array_equal(decoded[decoded != 0], x.numpy()[decoded != 0])
    weight = compiled.plan.communication["weight"]
    assert sent + weight == compiled.plan.communication["up"] == 8 * (103 + 2 + 16) + 4 * 10 + weight  # 1024, 16 and 160 values sparsified; 10 not


def test_a_round_moves_each_tensor_in_at_most_k_places(program, tff_worker):
    _, namespace = program
    weights = []
    build = namespace["build_process"]

    class Recording:
        def __init__(self, process):
            self._process = process

        def next(self, state, data):
            weights.append([np.array(w) for w in self._process.get_model_weights(state).trainable])
            result = self._process.next(state, data)
            weights.append([np.array(w) for w in self._process.get_model_weights(result.state).trainable])
            return result

        def __getattr__(self, name):
            return getattr(self._process, name)

    namespace["build_process"] = lambda: Recording(build())
    rows = []
    namespace["train"](2, on_round=rows.append)
    assert len(rows) == 2 and all(np.isfinite(r["train_loss"]) for r in rows)
    before, after = weights[0], weights[1]
    for old, new in zip(before, after):
        moved = np.count_nonzero(new != old)
        assert 0 < moved <= (math.ceil(0.1 * old.size) if old.size > 10 else old.size)
