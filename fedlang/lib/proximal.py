"""FedProx's proximal term, applied by the client optimizer (copied verbatim into emitted programs).

FedProx (Li et al. 2020) minimises, on each client, F_k(w) + mu/2 · ||w − w_global||², whose
gradient is ∇F_k(w) + mu · (w − w_global). TFF 0.87's `build_weighted_fed_prox` adds
mu · (w_global − w) instead (tensorflow_federated/python/learning/templates/
proximal_client_work.py: `delta_l2_regularizer * (y - x)` with x the current and y the initial
weights): its term pushes local models away from the global model, and with mu · lr · steps
large enough (mu = 1, lr = 0.01, a few hundred steps) the run diverges.
tests/tff/test_proximal.py shows both against a NumPy reference.

fedlang therefore runs FedProx as FedAvg whose client optimizer adds the proximal gradient
itself: `ProximalOptimizer` wraps any TFF optimizer. TFF initializes the client optimizer's state
for every client and round, and calls `next` first with the weights the client received, so
the wrapper takes those as w_global.
"""

import tensorflow as tf
import tensorflow_federated as tff


class ProximalOptimizer(tff.learning.optimizers.Optimizer):
    """A TFF optimizer whose every step adds mu · (w − w_start) to the gradient, where w_start are
    the weights of the first step since `initialize` (for client training: the global model)."""

    def __init__(self, optimizer, mu):
        if mu < 0:
            raise ValueError(f"ProximalOptimizer: mu must be >= 0, got {mu!r}")
        self._optimizer = optimizer
        self._mu = float(mu)

    def initialize(self, specs):
        anchor = tuple(tf.zeros(s.shape, s.dtype) for s in tf.nest.flatten(specs))
        return (self._optimizer.initialize(specs), tf.constant(False), anchor)

    def next(self, state, weights, gradients):
        inner, started, anchor = state
        flat_weights, flat_gradients = tf.nest.flatten(weights), tf.nest.flatten(gradients)
        anchor = tuple(tf.where(started, a, w) for a, w in zip(anchor, flat_weights))
        proximal = [g + self._mu * (w - a) for g, w, a in zip(flat_gradients, flat_weights, anchor)]
        inner, weights = self._optimizer.next(inner, weights, tf.nest.pack_sequence_as(gradients, proximal))
        return (inner, tf.constant(True), anchor), weights

    def get_hparams(self, state):
        return self._optimizer.get_hparams(state[0])

    def set_hparams(self, state, hparams):
        return (self._optimizer.set_hparams(state[0], hparams), state[1], state[2])


REQUIRES: dict[str, tuple[str, ...]] = {
    "ProximalOptimizer": (),
}
