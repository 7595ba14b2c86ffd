"""fedlang/lib/federated.py on TFF's runtime: every operator and aggregator against a numpy
reference (random inputs with outliers), structure round trips, and training with the
aggregators and the attacker process."""

import collections
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.tff

# Each example runs a TFF computation on the worker (~10-50 ms), so keep the counts small.
FEW = settings(max_examples=15, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", autouse=True)
def _worker(tff_worker):
    yield tff_worker


def F():
    from fedlang.lib import federated

    return federated


# ---------------------------------------------------------------------------------------------
# Inputs and numpy references
# ---------------------------------------------------------------------------------------------


@st.composite
def matrices(draw, max_n=30, min_n=0):
    """A float32 [n, d] matrix of N(0, 1) rows, some of them outliers (scaled or shifted)."""
    n = draw(st.one_of(st.integers(min_n, max_n), st.sampled_from([max(min_n, 100)])))
    d = draw(st.sampled_from([1, 3, 8]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    outliers = draw(st.integers(0, max(0, n // 3)))
    if outliers:
        rows = rng.choice(n, outliers, replace=False)
        x[rows] = x[rows] * draw(st.sampled_from([100.0, -1e4])) + draw(st.sampled_from([0.0, 50.0]))
    return x.astype(np.float32)


def close(actual, expected, scale=1.0):
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-5 * max(1.0, scale))


def ref_trim_mean(x, fraction):
    n, d = x.shape
    if n == 0:
        return np.zeros(d)
    k = int(np.floor(fraction * n))
    return np.sort(x.astype(np.float64), axis=0)[k : n - k].mean(axis=0)


def ref_median(x):
    return np.median(x.astype(np.float64), axis=0) if len(x) else np.zeros(x.shape[1])


def ref_krum_scores(x, f):
    x = x.astype(np.float64)
    n = len(x)
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    k = min(max(n - f - 2, 1), max(n - 1, 1))
    return np.sort(dist, axis=1)[:, 1 : k + 1].sum(axis=1)


def assert_krum_choice(result, x, f, m, in_hypothesis=True):
    """result is the mean of m rows whose reference scores are the m lowest (up to rounding)."""
    n, d = x.shape
    if n == 0:
        np.testing.assert_array_equal(result, np.zeros(d))
        return
    scores = ref_krum_scores(x, f)
    order = np.argsort(scores, kind="stable")
    m = min(m, n)
    if m < n:  # scores too close to call (not exactly tied): float32 and float64 may differ
        gap = scores[order[m]] - scores[order[m - 1]]
        ambiguous = 0 < gap <= 1e-5 * max(1.0, abs(scores[order[m]]))
        if in_hypothesis:
            assume(not ambiguous)
        assert not ambiguous, "pick other test data"
    expected = x[order[:m]].astype(np.float64).mean(axis=0)
    close(result, expected, np.abs(x[order[:m]]).max())


@functools.lru_cache(maxsize=None)
def op(name, dim, *options):
    """The operator computation (built once per dim and options)."""
    return getattr(F(), name)(dim, *options)


# ---------------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------------


@FEW
@given(x=matrices(), fraction=st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.49]))
def test_trim_mean(x, fraction):
    result = op("trim_mean_fn", x.shape[1], fraction)(x)
    kept = np.sort(x, 0)[int(np.floor(fraction * len(x))) : len(x) - int(np.floor(fraction * len(x)))]
    close(result, ref_trim_mean(x, fraction), np.abs(kept).max(initial=0))


def test_trim_mean_small_n_is_the_mean_and_k_uses_floor():
    x = np.array([[1.0], [2.0], [1000.0]], np.float32)
    close(op("trim_mean_fn", 1, 0.3)(x), [1003.0 / 3])  # floor(0.9) = 0: nothing trimmed
    close(op("trim_mean_fn", 1, 0.34)(x), [2.0])  # floor(1.02) = 1
    with pytest.raises(ValueError, match="fraction"):
        F().trim_mean_fn(3, 0.5)


@FEW
@given(x=matrices())
def test_median(x):
    result = op("median_fn", x.shape[1])(x)
    close(result, ref_median(x), np.abs(x).max(initial=0))


@FEW
@given(x=matrices(max_n=25), f=st.integers(0, 4))
def test_krum(x, f):
    assert_krum_choice(op("krum_fn", x.shape[1], f)(x), x, f, 1)


@FEW
@given(x=matrices(max_n=25), f=st.integers(0, 4), m=st.integers(1, 8))
def test_multi_krum(x, f, m):
    assert_krum_choice(op("multi_krum_fn", x.shape[1], f, m)(x), x, f, m)


def test_krum_rejects_the_scaled_attacker():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 5)).astype(np.float32)
    x[3] *= 100
    chosen = op("krum_fn", 5, 1)(x)
    assert not np.allclose(chosen, x[3])
    assert any(np.array_equal(chosen, row) for row in x)
    assert np.abs(op("multi_krum_fn", 5, 1, 7)(x)).max() < 5


@settings(FEW, max_examples=8)
@given(x=matrices(max_n=3, min_n=1), bound=st.sampled_from([0.5, 2.0, 50.0]))
def test_vector_operators(x, bound):
    d = x.shape[1]
    for v in x:
        v64 = v.astype(np.float64)
        norm = np.linalg.norm(v64)
        close(op("norm_fn", d)(v), norm, norm)
        close(op("clip_norm_fn", d, bound)(v), v64 * min(1.0, bound / norm) if norm else v64, 1)
        close(op("zero_large_fn", d, bound)(v), 0 * v64 if norm > bound else v64, norm)
        close(op("scale_fn", d, bound)(v), v64 * bound, norm * bound)


@pytest.mark.parametrize("n", [0, 1, 5, 24])
def test_gather_brings_every_row(n):
    import tensorflow_federated as tff

    d = 3
    fed = F()

    @tff.federated_computation(tff.FederatedType(tff.TensorType(np.float32, [d]), tff.CLIENTS))
    def gathered(values):
        return fed.gather(values, d)

    x = np.random.default_rng(n).normal(size=(n, d)).astype(np.float32)
    rows = np.asarray(gathered(list(x))).reshape(-1, d)
    assert rows.shape == (n, d)
    order = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731 (gather order is not fixed)
    np.testing.assert_array_equal(order(rows), order(x))


# ---------------------------------------------------------------------------------------------
# Aggregators on a model-like structure
# ---------------------------------------------------------------------------------------------

SHAPES = [(4, 3), (3,), (2, 2, 2), (1,)]  # a dense kernel, a bias, a conv-like kernel, a scalar-ish


def structure_type():
    import tensorflow_federated as tff

    return tff.types.to_type([tff.TensorType(np.float32, s) for s in SHAPES])


def as_structure(vector):
    sizes = [int(np.prod(s)) for s in SHAPES]
    parts = np.split(vector, np.cumsum(sizes)[:-1])
    return [p.reshape(s) for p, s in zip(parts, SHAPES)]


def flat(structure):
    return np.concatenate([np.asarray(t).reshape(-1) for t in structure])


FACTORIES = {  # name: (factory arguments, numpy reference on the [n, d] matrix)
    "TrimmedMeanFactory": ((0.2,), lambda x: ref_trim_mean(x, 0.2)),
    "MedianFactory": ((), ref_median),
    "NormClippedMeanFactory": ((3.0,), lambda x: np.mean(
        [v * min(1.0, 3.0 / np.linalg.norm(v)) for v in x.astype(np.float64)], axis=0)),
    "ZeroingMeanFactory": ((10.0,), lambda x: np.mean(
        [v * (np.linalg.norm(v) <= 10.0) for v in x.astype(np.float64)], axis=0)),
    "KrumFactory": ((2,), None),
    "MultiKrumFactory": ((2, 5), None),
}


@functools.lru_cache(maxsize=None)
def process(name):
    args, _ = FACTORIES[name]
    return getattr(F(), name)(*args).create(structure_type())


@pytest.mark.parametrize("n", [1, 4, 9, 30])
@pytest.mark.parametrize("name", list(FACTORIES))
def test_factory_matches_reference(name, n):
    rng = np.random.default_rng(n)
    dim = sum(int(np.prod(s)) for s in SHAPES)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x[: n // 4] *= 100  # a quarter of the clients scale their update x100
    proc = process(name)
    output = proc.next(proc.initialize(), [as_structure(v) for v in x])
    assert [np.shape(t) for t in output.result] == SHAPES
    result = flat(output.result)
    args, reference = FACTORIES[name]
    if reference is None:
        assert_krum_choice(result, x, args[0], args[1] if len(args) > 1 else 1, False)
    else:
        close(result, reference(x), np.abs(x).max() if n < 3 else 100.0)
    measurements = dict(output.measurements)
    assert measurements["clients"] == n
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    if name == "NormClippedMeanFactory":
        assert measurements["clipped"] == int((norms > 3.0).sum())
    if name == "ZeroingMeanFactory":
        assert measurements["zeroed"] == int((norms > 10.0).sum())


def test_structure_round_trip_keeps_containers_and_dtypes():
    import tensorflow_federated as tff

    value_type = tff.types.to_type(collections.OrderedDict(
        kernel=tff.TensorType(np.float32, [3, 2]), bias=tff.TensorType(np.float64, [2]),
        more=[tff.TensorType(np.float32, [2, 1, 2]), tff.TensorType(np.float32, [1])]))
    flatten, unflatten, dim = F().flatten_fns(value_type)
    assert dim == 6 + 2 + 4 + 1
    assert unflatten.type_signature.result == value_type  # containers and dtypes restored
    rng = np.random.default_rng(0)
    value = collections.OrderedDict(
        kernel=rng.normal(size=(3, 2)).astype(np.float32), bias=np.array([0.5, -2.0]),
        more=[rng.normal(size=(2, 1, 2)).astype(np.float32), np.array([7.0], np.float32)])
    vector = np.asarray(flatten(value))
    assert vector.shape == (dim,)
    back = unflatten(vector)
    for key in ("kernel", "bias"):
        np.testing.assert_array_equal(back[key], value[key])
    for got, want in zip(back["more"], value["more"]):
        np.testing.assert_array_equal(got, want)
    # The whole aggregation process keeps the type exactly (TFF's fed_avg checks with !=).
    proc = F().MedianFactory().create(value_type)
    assert proc.next.type_signature.result.result.member == value_type


def test_user_steps_with_measurements():
    """The generic helper, as the compiler will use it for an `aggregate` block."""
    import tensorflow_federated as tff

    fed = F()

    def build_steps(dim):
        @tff.federated_computation(tff.FederatedType(tff.TensorType(np.float32, [dim]), tff.CLIENTS))
        def steps(update):
            all_updates = fed.gather(update, dim)
            clipped = tff.federated_map(fed.clip_norm_fn(dim, 5.0), update)
            return collections.OrderedDict(
                result=tff.federated_map(fed.trim_mean_fn(dim, 0.1), all_updates),
                largest_norm=tff.federated_max(tff.federated_map(fed.norm_fn(dim), clipped)))
        return steps

    proc = fed.steps_aggregation_factory(build_steps).create(tff.TensorType(np.float32, [2]))
    x = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16],
                  [17, 18], [1000, -1000]], np.float32)
    output = proc.next(proc.initialize(), list(x))
    close(output.result, ref_trim_mean(x, 0.1))
    assert dict(output.measurements) == {"clients": 10, "largest_norm": pytest.approx(5.0)}


def test_bad_steps_are_rejected():
    import tensorflow_federated as tff

    def build_steps(dim):  # returns the sum at the clients' side type: not float32[d]@SERVER
        @tff.federated_computation(tff.FederatedType(tff.TensorType(np.float32, [dim]), tff.CLIENTS))
        def steps(update):
            return tff.federated_sum(tff.federated_map(F().norm_fn(dim), update))
        return steps

    with pytest.raises(TypeError, match="must return float32"):
        F().steps_aggregation_factory(build_steps).create(tff.TensorType(np.float32, [3]))


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def tiny_task(num_clients=3, seed=0):
    """(model_fn, client datasets) for a 4-feature, 3-class softmax regression."""
    import tensorflow as tf
    import tensorflow_federated as tff

    rng = np.random.default_rng(seed)
    datasets = []
    for _ in range(num_clients):
        x = rng.normal(size=(12, 4)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
        datasets.append(tf.data.Dataset.from_tensor_slices((x, y)).batch(4))
    spec = datasets[0].element_spec

    def model_fn():
        keras_model = tf.keras.Sequential([
            tf.keras.layers.InputLayer(input_shape=(4,)),
            tf.keras.layers.Dense(5, activation="relu"),
            tf.keras.layers.Dense(3, activation="softmax")])
        return tff.learning.models.from_keras_model(
            keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(), input_spec=spec,
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])

    return model_fn, datasets


@pytest.mark.slow
def test_factories_plug_into_unweighted_fed_avg():
    import tensorflow_federated as tff

    model_fn, datasets = tiny_task(num_clients=4)
    for factory in (F().TrimmedMeanFactory(0.1), F().KrumFactory(1)):
        learning = tff.learning.algorithms.build_unweighted_fed_avg(
            model_fn, client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.1),
            model_aggregator=factory)
        state = learning.initialize()
        before = flat(learning.get_model_weights(state).trainable)
        for _ in range(2):
            output = learning.next(state, datasets)
            state = output.state
        assert output.metrics["aggregator"]["clients"] == 4
        assert np.isfinite(output.metrics["client_work"]["train"]["loss"])
        assert not np.allclose(flat(learning.get_model_weights(state).trainable), before)


@pytest.mark.slow
def test_attackable_fed_avg_equals_unweighted_fed_avg_and_scales_updates():
    import tensorflow_federated as tff

    model_fn, datasets = tiny_task()
    client_opt = tff.learning.optimizers.build_sgdm(learning_rate=0.1)
    plain = tff.learning.algorithms.build_unweighted_fed_avg(model_fn, client_optimizer_fn=client_opt)
    attackable = F().build_attackable_fed_avg(model_fn, client_opt)
    start = plain.get_model_weights(plain.initialize())
    plain_state = plain.set_model_weights(plain.initialize(), start)
    attack_state = attackable.set_model_weights(attackable.initialize(), start)
    for _ in range(2):
        plain_out = plain.next(plain_state, datasets)
        attack_out = attackable.next(attack_state, [(ds, 1.0) for ds in datasets])
        plain_state, attack_state = plain_out.state, attack_out.state
        assert attack_out.metrics == plain_out.metrics
    weights = plain.get_model_weights(plain_state)
    np.testing.assert_array_equal(flat(attackable.get_model_weights(attack_state).trainable),
                                  flat(weights.trainable))

    # One round with client 0 scaled x100: the mean delta grows by 99/3 of client 0's delta.
    w0 = flat(weights.trainable)
    honest = flat(plain.get_model_weights(plain.next(plain_state, datasets).state).trainable)
    alone = flat(plain.get_model_weights(plain.next(plain_state, datasets[:1]).state).trainable)
    attacked = attackable.next(attack_state, [(ds, s) for ds, s in zip(datasets, [100.0, 1.0, 1.0])])
    got = flat(attackable.get_model_weights(attacked.state).trainable)
    np.testing.assert_allclose(got - honest, 33.0 * (alone - w0), rtol=1e-4, atol=1e-5)
