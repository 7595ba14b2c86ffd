"""The layer definitions' pure hooks (fedlang/constructs/layers.py) agree with Keras, and every
sequence, 1-d and normalization layer trains in TFF.

For each layer and a few inputs, the `shape`, `weights` and `non_trainable` hooks are compared
with the Keras layer the `keras` hook writes, built on that input. Then models made of
the new layers run real rounds of `build_weighted_fed_avg` through `from_keras_model`, on integer
token inputs (embedding) and on images.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedlang.constructs.layers import LAYER_BY_NAME
from fedlang.emit import py

pytestmark = pytest.mark.tff

tf = pytest.importorskip("tensorflow")
tff = pytest.importorskip("tensorflow_federated")

SEQ = (12, 6)  # [steps, features]
IMAGE = (9, 9, 4)

CASES = [
    ("embedding", {"vocab": 20, "dim": 8}, (10,)),
    ("lstm", {"units": 5, "return_sequences": False}, SEQ),
    ("lstm", {"units": 5, "return_sequences": True}, SEQ),
    ("gru", {"units": 7, "return_sequences": False}, SEQ),
    ("gru", {"units": 7, "return_sequences": True}, SEQ),
    ("conv1d", {"filters": 4, "activation": "relu", "kernel": 3, "strides": 1, "padding": "valid"}, SEQ),
    ("conv1d", {"filters": 4, "activation": "linear", "kernel": 5, "strides": 2, "padding": "same"}, SEQ),
    ("conv1d", {"filters": 3, "activation": "tanh", "kernel": 4, "strides": 3, "padding": "valid"}, (13, 2)),
    ("maxpool1d", {"pool": 2, "strides": None, "padding": "valid"}, (13, 3)),
    ("maxpool1d", {"pool": 3, "strides": 2, "padding": "same"}, (13, 3)),
    ("avgpool", {"pool": (2, 2), "strides": None, "padding": "valid"}, IMAGE),
    ("avgpool", {"pool": (3, 2), "strides": (2, 1), "padding": "same"}, IMAGE),
    ("global_avgpool", {}, SEQ),
    ("global_avgpool", {}, IMAGE),
    ("layer_norm", {}, SEQ),
    ("layer_norm", {}, (16,)),
    ("dense", {"units": 5, "activation": "relu", "use_bias": True}, (16,)),
    ("conv2d", {"filters": 3, "activation": "linear", "kernel": (3, 2), "strides": (2, 1), "padding": "same"}, IMAGE),
    ("maxpool", {"pool": (2, 3), "strides": None, "padding": "valid"}, IMAGE),
    ("flatten", {}, IMAGE),
    ("dropout", {"rate": 0.2}, SEQ),
    ("reshape", {"shape": (4, 4)}, (16,)),
    ("batch_norm", {"momentum": 0.9}, IMAGE),
    ("batch_norm", {"momentum": 0.99}, (16,)),
    ("activation", {"activation": "relu"}, SEQ),
]


def _keras_layer(kind, args, shape):
    """The Keras layer the lowering writes, built by evaluating its rendered call."""
    call = LAYER_BY_NAME[kind].keras(args, 0, shape)
    return eval(py(call), {"tf": tf, "SEED": 0})  # noqa: S307 (our own rendered call)


@pytest.mark.parametrize("kind, args, shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_hooks_match_keras(kind, args, shape):
    definition = LAYER_BY_NAME[kind]
    inputs = tf.keras.Input(shape=shape, dtype=tf.as_dtype(definition.input_dtype))
    layer = _keras_layer(kind, args, shape)
    outputs = layer(inputs)
    assert tuple(outputs.shape[1:]) == tuple(definition.shape(args, shape))
    assert [tuple(w.shape) for w in layer.trainable_weights] == list(definition.weights(args, shape))
    assert [tuple(w.shape) for w in layer.non_trainable_weights] == list(definition.non_trainable(args, shape))
    counted = definition.weights(args, shape) + definition.non_trainable(args, shape)
    assert layer.count_params() == sum(math.prod(s) for s in counted)


def _tff_round(build_model, x, y, clients=3):
    """Two rounds of weighted FedAvg on `clients` slices of (x, y); returns (process, states, metrics)."""
    spec = (tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype)), tf.TensorSpec([None], tf.int64))

    def model_fn():
        return tff.learning.models.from_keras_model(
            build_model(), input_spec=spec, loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    process = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn, client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.1))
    parts = np.array_split(np.arange(len(y)), clients)
    data = [tf.data.Dataset.from_tensor_slices((x[p], y[p])).batch(8) for p in parts]
    state = process.initialize()
    states, metrics = [state], []
    for _ in range(2):
        result = process.next(state, data)
        state = result.state
        states.append(state)
        metrics.append(result.metrics["client_work"]["train"])
    return process, states, metrics


def test_sequence_layers_train_in_tff_on_integer_tokens(tff_worker):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=(96, 12)).astype(np.int64)
    y = (x[:, -1] % 5).astype(np.int64)  # learnable from the last token

    def build():
        layers = [tf.keras.layers.InputLayer(input_shape=(12,), dtype=tf.int64)]
        for kind, args in [("embedding", {"vocab": 20, "dim": 8}),
                           ("conv1d", {"filters": 8, "activation": "relu", "kernel": 3, "strides": 1,
                                       "padding": "same"}),
                           ("maxpool1d", {"pool": 2, "strides": None, "padding": "valid"}),
                           ("layer_norm", {}),
                           ("gru", {"units": 8, "return_sequences": True}),
                           ("lstm", {"units": 8, "return_sequences": True}),
                           ("global_avgpool", {})]:
            layers.append(_keras_layer(kind, args, None if kind != "global_avgpool" else (6, 8)))
        layers += [tf.keras.layers.Dense(5), tf.keras.layers.Activation("softmax")]
        return tf.keras.Sequential(layers)

    process, states, metrics = _tff_round(build, x, y)
    assert "int64[?,12]" in str(process.next.type_signature)
    assert all(np.isfinite(float(m["loss"])) for m in metrics)
    assert float(metrics[1]["loss"]) < float(metrics[0]["loss"])  # training moves
    before, after = (process.get_model_weights(s).trainable for s in (states[0], states[-1]))
    assert len(before) == 1 + 2 + 2 + 3 + 3 + 2  # embedding, conv1d, layer_norm, gru, lstm, dense
    assert all(not np.allclose(a, b) for a, b in zip(before, after))


def test_batch_norm_statistics_stay_at_their_initial_values_on_the_server(tff_worker):
    """TFF 0.87's FedAvg averages trainable weights only: batch_norm's moving mean and variance
    (non-trainable) never leave their initial 0 and 1 on the server — the reason for W401."""
    rng = np.random.default_rng(1)
    x = (rng.normal(3.0, 2.0, size=(96, 9, 9, 4))).astype(np.float32)
    y = rng.integers(0, 3, size=96).astype(np.int64)

    def build():
        return tf.keras.Sequential([
            tf.keras.layers.InputLayer(input_shape=(9, 9, 4)),
            tf.keras.layers.Conv2D(4, 3),
            _keras_layer("avgpool", {"pool": (2, 2), "strides": None, "padding": "valid"}, None),
            _keras_layer("batch_norm", {"momentum": 0.5}, None),
            _keras_layer("activation", {"activation": "relu"}, None),
            _keras_layer("global_avgpool", {}, (3, 3, 4)),
            tf.keras.layers.Dense(3, activation="softmax"),
        ])

    process, states, metrics = _tff_round(build, x, y)
    assert all(np.isfinite(float(m["loss"])) for m in metrics)
    first, last = (process.get_model_weights(s) for s in (states[0], states[-1]))
    assert [w.shape for w in last.non_trainable] == [(4,), (4,)]
    moving_mean, moving_variance = last.non_trainable
    np.testing.assert_array_equal(moving_mean, np.zeros(4))
    np.testing.assert_array_equal(moving_variance, np.ones(4))
    gamma_before, gamma_after = first.trainable[2], last.trainable[2]  # conv kernel, bias, then γ
    assert not np.allclose(gamma_before, gamma_after)  # while γ and β do train


SEQUENCE_SPEC = """\
seed 3
model m {
  input [8]
  embedding 20 8
  conv1d 8 relu kernel = 3 padding = same
  maxpool1d 2
  gru 8 return_sequences = true
  layer_norm
  global_avgpool
  dense 20 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}
data text { source markov(vocab = 20, clients = 6, length = 40) }
train fedavg { rounds 1 }
"""

IMAGE_SPEC = """\
seed 3
model m {
  input [8, 8, 1]
  conv2d 4 kernel = 3
  batch_norm
  activation relu
  avgpool 2
  global_avgpool
  dense 10 softmax
  loss sparse_categorical_crossentropy
}
data digits {
  source sklearn.digits
  partition iid(clients = 5)
  reshape [8, 8, 1]
  scale minmax
}
train fedavg { rounds 1 }
"""


@pytest.mark.parametrize("text", [SEQUENCE_SPEC, IMAGE_SPEC], ids=["sequence", "image"])
def test_front_end_types_match_the_emitted_program(text, tff_worker):
    """Parameter counts, weight shapes and TFF types the checker states hold for the emitted program."""
    from .support import compile_text, load_program

    compiled = compile_text(text)
    ns = load_program(compiled)
    model = compiled.checked.model
    keras_model = ns["build_keras_model"]()
    assert model.param_count == keras_model.count_params()
    assert [tuple(w.shape) for w in keras_model.trainable_weights] == list(model.weight_shapes)
    assert [tuple(w.shape) for w in keras_model.non_trainable_weights] == list(model.non_trainable_shapes)
    signature = str(ns["build_process"]().next.type_signature)
    assert f"global_model_weights={compiled.plan.model_weights_type}" in signature
    assert f"client_data={compiled.plan.client_data_type}" in signature
    clients, _ = ns["load_data"]()
    rows = []
    ns["train"](1, on_round=rows.append)
    assert len(rows) == 1 and np.isfinite(rows[0]["train_loss"])
    assert clients[0][0].dtype == np.dtype(model.feature_dtype)
