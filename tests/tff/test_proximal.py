"""FedProx's proximal term against a NumPy reference: fedlang's ProximalOptimizer pulls local
models toward the global model; TFF 0.87's own build_weighted_fed_prox pushes them away (the
sign of its term is reversed), which is why `train fedprox` does not lower to it.

One client, one weight w (a bias-free Dense(1) from 0), 40 SGD steps (lr 0.01) on MSE towards
y = 5 with x = 1: each step w -= lr · (2 (w − 5) + mu · (w − w_global)), w_global = 0."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tff]

LR, STEPS, TARGET = 0.01, 40, 5.0


def reference(mu: float) -> float:
    w = 0.0
    for _ in range(STEPS):
        w -= LR * (2 * (w - TARGET) + mu * (w - 0.0))
    return w


def _one_round(process_fn) -> float:
    import tensorflow as tf
    import tensorflow_federated as tff

    spec = (tf.TensorSpec([None, 1], tf.float32), tf.TensorSpec([None, 1], tf.float32))

    def model_fn():
        model = tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(1,)),
                                     tf.keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
        return tff.learning.models.from_keras_model(model, input_spec=spec, loss=tf.keras.losses.MeanSquaredError())

    data = tf.data.Dataset.from_tensor_slices((np.ones((STEPS, 1), np.float32),
                                               np.full((STEPS, 1), TARGET, np.float32))).batch(1)
    process = process_fn(model_fn, tff)
    state = process.next(process.initialize(), [data]).state
    return float(process.get_model_weights(state).trainable[0][0][0])


@pytest.mark.parametrize("mu", [0.0, 1.0, 5.0])
def test_proximal_optimizer_matches_the_fedprox_update(mu, tff_worker):
    from fedlang.lib.proximal import ProximalOptimizer

    def build(model_fn, tff):
        return tff.learning.algorithms.build_weighted_fed_avg(
            model_fn, client_optimizer_fn=ProximalOptimizer(tff.learning.optimizers.build_sgdm(LR), mu=mu),
            server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0))

    assert _one_round(build) == pytest.approx(reference(mu), rel=1e-5)


def test_tff_087_fed_prox_pushes_away_from_the_global_model(tff_worker):
    """Documents the TFF bug fedlang works around: its mu = 1 result equals a reference with mu = -1."""
    def build(model_fn, tff):
        return tff.learning.algorithms.build_weighted_fed_prox(
            model_fn, proximal_strength=1.0, client_optimizer_fn=tff.learning.optimizers.build_sgdm(LR),
            server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0))

    w = _one_round(build)
    assert w == pytest.approx(reference(-1.0), rel=1e-5)
    assert w > reference(0.0) > reference(1.0)  # farther from w_global = 0 than FedAvg itself
