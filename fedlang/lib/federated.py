"""Federated Core operators, robust aggregators and an attacker simulation for fedlang.

Everything works on flat float32 vectors of a fixed dimension ``dim`` (a client's model update
flattened to one vector). There are three kinds of building blocks:

* ``gather(values, dim)``: a federated operator, called inside a ``tff.federated_computation``;
  it brings every client's vector to the server as one ``float32[?, dim]`` matrix.
* ``*_fn(dim, ...)``: factories of ``tff.tensorflow.computation``s (local operators), applied
  with ``tff.federated_map`` at the clients (``float32[dim]`` in) or at the server (the
  gathered matrix in).
* ``*Factory``: aggregators (``tff.aggregators.UnweightedAggregationFactory``) for any
  model-update structure, usable as ``model_aggregator=`` of TFF's learning algorithms.

With no clients at all, the server-side operators return a zero vector (no update).
``REQUIRES`` at the bottom maps each name to the names of this module it uses.
"""

import collections

import dp_accounting
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
import tensorflow_privacy as tfp


# ---------------------------------------------------------------------------------------------
# Federated operator
# ---------------------------------------------------------------------------------------------


def gather(values, dim):
    """{float32[dim]}@CLIENTS -> float32[?, dim]@SERVER: one row per client, in no fixed order."""
    vector = tff.TensorType(np.float32, [dim])
    matrix = tff.TensorType(np.float32, [None, dim])

    @tff.tensorflow.computation
    def empty():
        return tf.zeros([0, dim], tf.float32)

    @tff.tensorflow.computation(matrix, vector)
    def append(rows, value):
        return tf.concat([rows, tf.expand_dims(value, 0)], axis=0)

    @tff.tensorflow.computation(matrix, matrix)
    def concat(rows_a, rows_b):
        return tf.concat([rows_a, rows_b], axis=0)

    @tff.tensorflow.computation(matrix)
    def identity(rows):
        return rows

    return tff.federated_aggregate(values, empty(), append, concat, identity)


# ---------------------------------------------------------------------------------------------
# Local operators on one vector: float32[dim] -> ...
# ---------------------------------------------------------------------------------------------


def norm_fn(dim):
    """float32[dim] -> float32: the L2 norm."""

    @tff.tensorflow.computation(tff.TensorType(np.float32, [dim]))
    def norm(x):
        return tf.norm(x)

    return norm


def above_fn(threshold):
    """float32 -> int32: 1 if the value is above ``threshold``, else 0 (for counting)."""

    @tff.tensorflow.computation(np.float32)
    def above(value):
        return tf.cast(value > threshold, tf.int32)

    return above


def clip_norm_fn(dim, clip):
    """float32[dim] -> float32[dim]: scale x down to L2 norm ``clip`` if its norm is larger."""

    @tff.tensorflow.computation(tff.TensorType(np.float32, [dim]))
    def clip_norm(x):
        norm = tf.norm(x)
        return tf.cond(norm > clip, lambda: x / (norm / clip), lambda: x)

    return clip_norm


def zero_large_fn(dim, threshold):
    """float32[dim] -> float32[dim]: all zeros if the L2 norm of x exceeds ``threshold``.

    As in TFF's ``zeroing_factory``, a NaN norm does not count as exceeding (an infinite one does).
    """

    @tff.tensorflow.computation(tff.TensorType(np.float32, [dim]))
    def zero_large(x):
        return tf.cond(tf.norm(x) > threshold, lambda: tf.zeros_like(x), lambda: x)

    return zero_large


def scale_fn(dim, factor):
    """float32[dim] -> float32[dim]: x multiplied by ``factor``."""

    @tff.tensorflow.computation(tff.TensorType(np.float32, [dim]))
    def scale(x):
        return x * factor

    return scale


def add_fn(dim):
    """(float32[dim], float32[dim]) -> float32[dim]: x + y."""
    vector = tff.TensorType(np.float32, [dim])

    @tff.tensorflow.computation(vector, vector)
    def add(x, y):
        return x + y

    return add


def subtract_fn(dim):
    """(float32[dim], float32[dim]) -> float32[dim]: x - y."""
    vector = tff.TensorType(np.float32, [dim])

    @tff.tensorflow.computation(vector, vector)
    def subtract(x, y):
        return x - y

    return subtract


def secure_sum(values, dim, lower, upper):
    """{float32[dim]}@CLIENTS -> float32[dim]@SERVER: the sum of the values, each coordinate clipped
    to [lower, upper], computed with TFF's secure summation (``SecureSumFactory``). It needs an
    execution context that runs secure intrinsics (in simulation: their plain bodies)."""
    process = tff.aggregators.SecureSumFactory(upper, lower).create(tff.TensorType(np.float32, [dim]))
    return process.next(process.initialize(), values).result


# ---------------------------------------------------------------------------------------------
# Local operators on the gathered matrix: float32[?, dim] -> float32[dim]
# ---------------------------------------------------------------------------------------------


def trim_mean_fn(dim, fraction):
    """float32[?, dim] -> float32[dim]: coordinate-wise trimmed mean.

    For each coordinate, drop the k = floor(fraction * n) smallest and k largest of the n
    values and average the rest. Needs 0 <= fraction < 0.5, so at least one value is kept.
    With few clients (n < 1 / fraction) k is 0 and this is the plain mean.
    """
    if not 0 <= fraction < 0.5:
        raise ValueError(f"trim_mean: fraction must be in [0, 0.5), got {fraction!r}")

    @tff.tensorflow.computation(tff.TensorType(np.float32, [None, dim]))
    def trim_mean(rows):
        n = tf.shape(rows)[0]
        k = tf.cast(tf.floor(tf.cast(n, tf.float64) * fraction), tf.int32)
        kept = tf.sort(rows, axis=0)[k : n - k]
        count = tf.cast(n - 2 * k, tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(kept, axis=0), count)

    return trim_mean


def median_fn(dim):
    """float32[?, dim] -> float32[dim]: coordinate-wise median (even n: mean of the two middle)."""

    @tff.tensorflow.computation(tff.TensorType(np.float32, [None, dim]))
    def median(rows):
        n = tf.shape(rows)[0]

        def middle():
            ordered = tf.sort(rows, axis=0)
            return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2

        return tf.cond(n > 0, middle, lambda: tf.zeros([dim], tf.float32))

    return median


def krum_scores(rows, byzantine):
    """Krum score of each row (plain TF): sum of squared distances to its n - f - 2 nearest
    other rows, f = ``byzantine``; the count is clamped to [1, n - 1] when n <= 2f + 2."""
    n = tf.shape(rows)[0]
    distances = tf.map_fn(lambda row: tf.reduce_sum(tf.square(rows - row), axis=1), rows)
    k = tf.clip_by_value(n - byzantine - 2, 1, tf.maximum(n - 1, 1))
    nearest = tf.sort(distances, axis=1)[:, 1 : k + 1]  # column 0: the distance to itself
    return tf.reduce_sum(nearest, axis=1)


def krum_fn(dim, byzantine):
    """float32[?, dim] -> float32[dim]: Krum (Blanchard et al. 2017), the row with the lowest
    ``krum_scores``, tolerating f = ``byzantine`` attackers.

    The guarantee needs n > 2f + 2 clients. With fewer, every row is still scored against
    max(1, n - f - 2) neighbours (all others if n <= 2), so the result is defined but not robust.
    Ties go to the first row.
    """
    if byzantine < 0:
        raise ValueError(f"krum: byzantine must be >= 0, got {byzantine!r}")

    @tff.tensorflow.computation(tff.TensorType(np.float32, [None, dim]))
    def krum(rows):
        return tf.cond(
            tf.shape(rows)[0] > 0,
            lambda: rows[tf.argmin(krum_scores(rows, byzantine))],
            lambda: tf.zeros([dim], tf.float32),
        )

    return krum


def multi_krum_fn(dim, byzantine, m):
    """float32[?, dim] -> float32[dim]: Multi-Krum, the mean of the m rows with the lowest
    ``krum_scores`` (scored once; ties go to earlier rows). m is capped at n.

    As for Krum, the guarantee needs n > 2f + 2 (f = ``byzantine``).
    """
    if byzantine < 0 or m < 1:
        raise ValueError(f"multi_krum: need byzantine >= 0 and m >= 1, got {byzantine!r}, {m!r}")

    @tff.tensorflow.computation(tff.TensorType(np.float32, [None, dim]))
    def multi_krum(rows):
        n = tf.shape(rows)[0]

        def best_mean():
            best = tf.argsort(krum_scores(rows, byzantine), stable=True)[: tf.minimum(m, n)]
            return tf.reduce_mean(tf.gather(rows, best), axis=0)

        return tf.cond(n > 0, best_mean, lambda: tf.zeros([dim], tf.float32))

    return multi_krum


# ---------------------------------------------------------------------------------------------
# Steps: federated computations {float32[dim]}@CLIENTS -> float32[dim]@SERVER
# (optionally <result=float32[dim]@SERVER, other measurements @SERVER>)
# ---------------------------------------------------------------------------------------------


def gathered_steps(dim, server_fn):
    """Steps that gather all updates and apply ``server_fn`` (float32[?, dim] -> float32[dim])."""

    @tff.federated_computation(tff.FederatedType(tff.TensorType(np.float32, [dim]), tff.CLIENTS))
    def steps(update):
        return tff.federated_map(server_fn, gather(update, dim))

    return steps


def clipped_mean_steps(dim, clip):
    """Steps: clip each update to L2 norm ``clip`` at the clients, then average.
    Measures how many updates were clipped."""

    @tff.federated_computation(tff.FederatedType(tff.TensorType(np.float32, [dim]), tff.CLIENTS))
    def steps(update):
        clipped = tff.federated_map(clip_norm_fn(dim, clip), update)
        was_clipped = tff.federated_map(above_fn(clip), tff.federated_map(norm_fn(dim), update))
        return collections.OrderedDict(
            result=tff.federated_mean(clipped), clipped=tff.federated_sum(was_clipped))

    return steps


def zeroed_mean_steps(dim, threshold):
    """Steps: zero each update whose L2 norm exceeds ``threshold``, then average over all
    clients (zeroed ones included, as TFF's zeroing_factory does). Measures how many were zeroed."""

    @tff.federated_computation(tff.FederatedType(tff.TensorType(np.float32, [dim]), tff.CLIENTS))
    def steps(update):
        zeroed = tff.federated_map(zero_large_fn(dim, threshold), update)
        was_zeroed = tff.federated_map(above_fn(threshold), tff.federated_map(norm_fn(dim), update))
        return collections.OrderedDict(
            result=tff.federated_mean(zeroed), zeroed=tff.federated_sum(was_zeroed))

    return steps


# ---------------------------------------------------------------------------------------------
# Aggregators for any model-update structure
# ---------------------------------------------------------------------------------------------


def flatten_fns(value_type):
    """(flatten, unflatten, dim) for a tensor or Python structure of float tensors: tf
    computations value_type -> float32[dim] and back (dtypes and containers restored)."""
    value_type = tff.types.to_type(value_type)
    specs = tff.types.structure_from_tensor_type_tree(
        lambda t: tf.TensorSpec(t.shape, t.dtype), value_type)
    leaves = tf.nest.flatten(specs)
    for leaf in leaves:
        if not isinstance(leaf, tf.TensorSpec) or not leaf.shape.is_fully_defined():
            raise TypeError(f"model updates must be float tensors of known shape, got {value_type}")
        if not leaf.dtype.is_floating:
            raise TypeError(f"model updates must be float tensors, got {value_type}")
    sizes = [leaf.shape.num_elements() for leaf in leaves]
    dim = sum(sizes)

    @tff.tensorflow.computation(value_type)
    def flatten(value):
        parts = [tf.reshape(tf.cast(t, tf.float32), [-1]) for t in tf.nest.flatten(value)]
        return tf.concat(parts, axis=0)

    @tff.tensorflow.computation(tff.TensorType(np.float32, [dim]))
    def unflatten(vector):
        parts = tf.split(vector, sizes)
        tensors = [tf.cast(tf.reshape(p, s.shape), s.dtype) for p, s in zip(parts, leaves)]
        return tf.nest.pack_sequence_as(specs, tensors)

    return flatten, unflatten, dim


class StepsAggregationFactory(tff.aggregators.UnweightedAggregationFactory):
    """Stateless unweighted aggregator running ``build_steps(dim)`` on flattened updates.

    ``build_steps(dim)`` returns a ``tff.federated_computation`` taking {float32[dim]}@CLIENTS
    and returning either float32[dim]@SERVER or a named struct <result=float32[dim]@SERVER,
    name=...@SERVER, ...> whose other fields are reported as measurements. The measurements
    always include ``clients``, the number of clients aggregated.
    """

    def __init__(self, build_steps):
        self._build_steps = build_steps

    def create(self, value_type):
        flatten, unflatten, dim = flatten_fns(value_type)
        steps = self._build_steps(dim)
        vector = tff.TensorType(np.float32, [dim])
        if steps.type_signature.parameter != tff.FederatedType(vector, tff.CLIENTS):
            raise TypeError(f"aggregation steps must take {{float32[{dim}]}}@CLIENTS, "
                            f"got {steps.type_signature.parameter}")
        result_type = steps.type_signature.result
        names = []
        if isinstance(result_type, tff.StructType):
            names = [name for name, _ in tff.structure.to_elements(result_type)]
            if "result" not in names:
                raise TypeError(f"aggregation steps return a struct without 'result': {result_type}")
            result_type = result_type.result
        if result_type != tff.FederatedType(vector, tff.SERVER):
            raise TypeError(f"aggregation steps must return float32[{dim}]@SERVER, got {result_type}")

        @tff.federated_computation
        def initialize():
            return tff.federated_value((), tff.SERVER)

        @tff.federated_computation(initialize.type_signature.result,
                                   tff.FederatedType(value_type, tff.CLIENTS))
        def next_fn(state, value):
            output = steps(tff.federated_map(flatten, value))
            measurements = collections.OrderedDict(
                clients=tff.federated_sum(tff.federated_value(1, tff.CLIENTS)))
            if names:
                measurements.update((n, getattr(output, n)) for n in names if n != "result")
                output = output.result
            return tff.templates.MeasuredProcessOutput(
                state=state,
                result=tff.federated_map(unflatten, output),
                measurements=tff.federated_zip(measurements))

        return tff.templates.AggregationProcess(initialize, next_fn)


def steps_aggregation_factory(build_steps):
    """An aggregator for any model-update structure from ``build_steps(dim)`` (see
    ``StepsAggregationFactory``)."""
    return StepsAggregationFactory(build_steps)


class TrimmedMeanFactory(StepsAggregationFactory):
    """Coordinate-wise trimmed mean of the client updates (see ``trim_mean_fn``)."""

    def __init__(self, fraction):
        trim_mean_fn(1, fraction)  # validate now, not at create()
        super().__init__(lambda dim: gathered_steps(dim, trim_mean_fn(dim, fraction)))


class MedianFactory(StepsAggregationFactory):
    """Coordinate-wise median of the client updates (see ``median_fn``)."""

    def __init__(self):
        super().__init__(lambda dim: gathered_steps(dim, median_fn(dim)))


class NormClippedMeanFactory(StepsAggregationFactory):
    """Mean of the client updates, each first clipped to L2 norm ``clip``; measures ``clipped``."""

    def __init__(self, clip):
        if not clip > 0:
            raise ValueError(f"NormClippedMeanFactory: clip must be > 0, got {clip!r}")
        super().__init__(lambda dim: clipped_mean_steps(dim, clip))


class ZeroingMeanFactory(StepsAggregationFactory):
    """Mean of the client updates, those with L2 norm above ``threshold`` replaced by zeros;
    measures ``zeroed``."""

    def __init__(self, threshold):
        if not threshold > 0:
            raise ValueError(f"ZeroingMeanFactory: threshold must be > 0, got {threshold!r}")
        super().__init__(lambda dim: zeroed_mean_steps(dim, threshold))


class KrumFactory(StepsAggregationFactory):
    """Krum: the one client update closest to its neighbours (see ``krum_fn``)."""

    def __init__(self, byzantine):
        krum_fn(1, byzantine)  # validate
        super().__init__(lambda dim: gathered_steps(dim, krum_fn(dim, byzantine)))


class MultiKrumFactory(StepsAggregationFactory):
    """Multi-Krum: mean of the m best-scored client updates (see ``multi_krum_fn``)."""

    def __init__(self, byzantine, m):
        multi_krum_fn(1, byzantine, m)  # validate
        super().__init__(lambda dim: gathered_steps(dim, multi_krum_fn(dim, byzantine, m)))


# ---------------------------------------------------------------------------------------------
# Attacker simulation: FedAvg where each client's update is multiplied by its own scale
# ---------------------------------------------------------------------------------------------


def scaled_client_work(client_work):
    """Wrap a ClientWorkProcess so each client's data is <data=D, scale=float32*> and its
    update is multiplied by the product of the ``scale`` sequence (one element: the factor).

    (ClientWorkProcess only accepts structures of sequences as client data, hence the sequence.)
    """
    state_type, weights_type, data_type = client_work.next.type_signature.parameter
    result_type = client_work.next.type_signature.result.result.member
    scale_type = tff.SequenceType(tff.TensorType(np.float32))
    input_type = tff.FederatedType(
        tff.StructType([("data", data_type.member), ("scale", scale_type)]), tff.CLIENTS)

    @tff.tensorflow.computation(result_type, scale_type)
    def scale_update(result, scales):
        factor = scales.reduce(np.float32(1.0), tf.math.multiply)
        update = tf.nest.map_structure(lambda u: u * tf.cast(factor, u.dtype), result.update)
        return tff.learning.templates.ClientResult(update, result.update_weight)

    @tff.federated_computation(state_type, weights_type, input_type)
    def next_fn(state, weights, client_data):
        output = client_work.next(state, weights, client_data.data)
        result = tff.federated_map(scale_update, (output.result, client_data.scale))
        return tff.templates.MeasuredProcessOutput(output.state, result, output.measurements)

    return tff.learning.templates.ClientWorkProcess(
        client_work.initialize, next_fn,
        get_hparams_fn=client_work.get_hparams, set_hparams_fn=client_work.set_hparams)


def build_attackable_fed_avg(model_fn, client_optimizer_fn, server_optimizer_fn=None,
                             model_aggregator=None, metrics_aggregator=None):
    """Unweighted FedAvg whose ``next(state, [(dataset, scale), ...])`` multiplies each client's
    model update by its ``scale`` (1.0: honest; e.g. 100.0: a scaling attacker) before
    ``model_aggregator`` (default: plain mean). With all scales 1.0 it computes the same as
    ``tff.learning.algorithms.build_unweighted_fed_avg`` with the same arguments, metrics included.

    ``model_fn`` is a no-argument function returning a ``tff.learning.models.VariableModel``;
    the optimizers are ``tff.learning.optimizers`` (server default: SGD, learning rate 1.0).
    """
    if server_optimizer_fn is None:
        server_optimizer_fn = tff.learning.optimizers.build_sgdm(learning_rate=1.0)
    if model_aggregator is None:
        model_aggregator = tff.aggregators.UnweightedMeanFactory()

    @tff.tensorflow.computation
    def initial_weights():
        return tff.learning.models.ModelWeights.from_model(model_fn())

    weights_type = initial_weights.type_signature.result
    client_work = scaled_client_work(tff.learning.templates.build_model_delta_client_work(
        model_fn, client_optimizer_fn, tff.learning.ClientWeighting.UNIFORM,
        metrics_aggregator=metrics_aggregator))
    aggregator = tff.aggregators.as_weighted_aggregator(model_aggregator).create(
        weights_type.trainable, tff.TensorType(np.float32))
    composed = tff.learning.templates.compose_learning_process(
        initial_weights,
        tff.learning.templates.build_broadcast_process(weights_type),
        client_work,
        aggregator,
        tff.learning.templates.build_apply_optimizer_finalizer(server_optimizer_fn, weights_type))

    # compose_learning_process needs client data made of sequences only: accept a plain float
    # scale per client here and turn it into a one-element sequence at the clients.
    composed_data = composed.next.type_signature.parameter[1].member
    input_type = tff.FederatedType(
        tff.StructType([("data", composed_data.data), ("scale", tff.TensorType(np.float32))]),
        tff.CLIENTS)

    @tff.tensorflow.computation(np.float32)
    def as_sequence(scale):
        return tf.data.Dataset.from_tensors(scale)

    @tff.federated_computation(composed.initialize.type_signature.result, input_type)
    def next_fn(state, client_data):
        scales = tff.federated_map(as_sequence, client_data.scale)
        data = tff.federated_zip(collections.OrderedDict(data=client_data.data, scale=scales))
        return composed.next(state, data)

    return tff.learning.templates.LearningProcess(
        composed.initialize, next_fn, composed.get_model_weights, composed.set_model_weights,
        get_hparams_fn=composed.get_hparams, set_hparams_fn=composed.set_hparams)


# ---------------------------------------------------------------------------------------------
# Differential privacy
# ---------------------------------------------------------------------------------------------


class SeededGaussianSumQuery(tfp.GaussianSumQuery):
    """tfp.GaussianSumQuery whose noise is drawn from a seed carried in the query's state.

    Round r's noise is tf.random.stateless_normal with seed (seed, counter); the counter
    advances past every tensor each round, so runs repeat exactly and no two rounds share
    noise. (TFF's gaussian_fixed takes no seed.) For simulation only: whoever knows the
    seed can regenerate the noise and subtract it.
    """

    _GlobalState = collections.namedtuple("_GlobalState", ["l2_norm_clip", "stddev", "noise_seed"])

    def __init__(self, l2_norm_clip, stddev, seed):
        super().__init__(l2_norm_clip, stddev)
        self._seed = seed

    def initial_global_state(self):
        return self._GlobalState(tf.cast(self._l2_norm_clip, tf.float32), tf.cast(self._stddev, tf.float32),
                                 tf.constant([self._seed, 0], tf.int64))

    def get_noised_result(self, sample_state, global_state):
        values = tf.nest.flatten(sample_state)
        noised = [v + tf.random.stateless_normal(tf.shape(v), seed=global_state.noise_seed + [0, i],
                                                 stddev=global_state.stddev, dtype=v.dtype)
                  for i, v in enumerate(values)]
        next_state = global_state._replace(noise_seed=global_state.noise_seed + [0, len(values)])
        event = dp_accounting.GaussianDpEvent(global_state.stddev / global_state.l2_norm_clip)
        return tf.nest.pack_sequence_as(sample_state, noised), next_state, event


REQUIRES: dict[str, tuple[str, ...]] = {
    "SeededGaussianSumQuery": (),
    "gather": (),
    "norm_fn": (),
    "above_fn": (),
    "clip_norm_fn": (),
    "zero_large_fn": (),
    "scale_fn": (),
    "add_fn": (),
    "subtract_fn": (),
    "secure_sum": (),
    "trim_mean_fn": (),
    "median_fn": (),
    "krum_scores": (),
    "krum_fn": ("krum_scores",),
    "multi_krum_fn": ("krum_scores",),
    "gathered_steps": ("gather",),
    "clipped_mean_steps": ("clip_norm_fn", "above_fn", "norm_fn"),
    "zeroed_mean_steps": ("zero_large_fn", "above_fn", "norm_fn"),
    "flatten_fns": (),
    "StepsAggregationFactory": ("flatten_fns",),
    "steps_aggregation_factory": ("StepsAggregationFactory",),
    "TrimmedMeanFactory": ("StepsAggregationFactory", "gathered_steps", "trim_mean_fn"),
    "MedianFactory": ("StepsAggregationFactory", "gathered_steps", "median_fn"),
    "NormClippedMeanFactory": ("StepsAggregationFactory", "clipped_mean_steps"),
    "ZeroingMeanFactory": ("StepsAggregationFactory", "zeroed_mean_steps"),
    "KrumFactory": ("StepsAggregationFactory", "gathered_steps", "krum_fn"),
    "MultiKrumFactory": ("StepsAggregationFactory", "gathered_steps", "multi_krum_fn"),
    "scaled_client_work": (),
    "build_attackable_fed_avg": ("scaled_client_work",),
}
