"""Tests for the numpy-only data library fedlang/lib/data.py (no TensorFlow)."""

import ast
import inspect
import re

import numpy as np
import pytest

from fedlang.emit import LIB, helper_source
from hypothesis import given, settings
from hypothesis import strategies as st

from fedlang.lib import data


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_partition(parts, n):
    """Every index 0..n-1 appears exactly once; each part is sorted int64."""
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)
    joined = np.concatenate(parts)
    assert len(joined) == n
    assert np.array_equal(np.sort(joined), np.arange(n))


def same_parts(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------
# The module can be copied verbatim into generated programs
# ---------------------------------------------------------------------------------------------

MODULE_SOURCE = inspect.getsource(data)
PUBLIC = [
    "synthetic_fedprox", "load_npz", "load_csv", "holdout_split", "partition_iid",
    "partition_dirichlet", "partition_shards", "partition_natural", "fit_scaler",
    "apply_scaler", "sample_clients", "client_size_summary",
]


def test_module_imports_only_numpy_and_stdlib():
    tree = ast.parse(MODULE_SOURCE)
    imported = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            imported |= {(a.name, a.asname) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            pytest.fail(f"from-import in data.py: {ast.dump(node)}")
    assert imported <= {("numpy", "np"), ("os", None), ("csv", None), ("io", None), ("math", None),
                        ("array", None)}
    # No imports hidden inside functions either.
    inner = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(inner) == len([n for n in tree.body if isinstance(n, ast.Import)])


@pytest.mark.parametrize("name", PUBLIC)
def test_each_function_runs_when_copied_with_its_closure(name, tmp_path):
    snippet = helper_source(LIB / "data.py", [name])  # as the emitter copies it
    source = "\n".join(snippet.imports) + "\n\n" + snippet.source
    namespace = {}
    exec(compile(source, f"<emitted {name}>", "exec"), namespace)
    fn = namespace[name]
    labels = np.repeat(np.arange(4), 10)
    np.savez(tmp_path / "d.npz", x=np.ones((3, 2)), y=np.array([0, 1, 2]), c=np.array(["a", "b", "a"]))
    (tmp_path / "d.csv").write_text("a,label,c\n1,0,u\n2,1,v\n")
    calls = {
        "synthetic_fedprox": lambda: fn(1.0, 1.0, num_devices=3, rng=rng()),
        "load_npz": lambda: fn(str(tmp_path / "d.npz"), client_key="c"),
        "load_csv": lambda: fn(str(tmp_path / "d.csv"), client="c"),
        "holdout_split": lambda: fn(10, 0.3, rng()),
        "partition_iid": lambda: fn(10, 3, rng()),
        "partition_dirichlet": lambda: fn(labels, 3, 1.0, rng()),
        "partition_shards": lambda: fn(labels, 4, 2, rng()),
        "partition_natural": lambda: fn(labels),
        "fit_scaler": lambda: fn(np.ones((3, 2)), "standard"),
        "apply_scaler": lambda: fn(np.ones((3, 2)), np.zeros(2), np.ones(2)),
        "sample_clients": lambda: fn(rng(), 10, 3),
        "client_size_summary": lambda: fn([np.arange(3)]),
    }
    calls[name]()


# ---------------------------------------------------------------------------------------------
# Unchecked cores (what programs copy) and their checked_ wrappers make the same draws
# ---------------------------------------------------------------------------------------------

CHECKED = sorted(name for name in vars(data) if name.startswith("checked_"))


def test_every_checked_wrapper_has_its_core_and_calls_it():
    """One implementation of each draw. The loaders draw nothing: check's checked_load_csv and
    checked_load_npz test every cell as they read, and the tests below hold them equal to the cores."""
    for wrapper in CHECKED:
        core = wrapper[len("checked_"):]
        assert callable(getattr(data, core, None)), wrapper
        assert core in data.REQUIRES[wrapper] or core in ("load_csv", "load_npz"), f"{wrapper} does not call {core}"
        assert not set(data.REQUIRES[core]) & {"DataError", "_check_int", "_check_rng", "_check_labels"}, core


def _draw(function, args, kwargs, seed):
    """(result or the error's type and the generator's state afterwards)."""
    generator = rng(seed)
    args = [generator if a is rng else a for a in args]
    kwargs = {k: generator if v is rng else v for k, v in kwargs.items()}
    try:
        result = function(*args, **kwargs)
    except ValueError as error:
        result = error
    return result, generator.bit_generator.state


def _same(a, b):
    if isinstance(a, ValueError) or isinstance(b, ValueError):
        return isinstance(a, ValueError) and isinstance(b, ValueError)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)


@settings(max_examples=80, deadline=None)
@given(
    labels=st.lists(st.integers(0, 7), min_size=2, max_size=150),
    data_=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_checked_wrappers_make_exactly_the_cores_draws(labels, data_, seed):
    """Same result and the generator left in the same state (so the draws after it match too),
    including a Dirichlet split whose bounded redraws run out (a ValueError from both)."""
    labels = np.array(labels)
    n = len(labels)
    k = data_.draw(st.integers(1, n), "clients")
    per_client = data_.draw(st.integers(1, max(1, n // k)), "shards per client")
    fraction = data_.draw(st.floats(0.01, 0.99), "fraction")
    x = rng(seed).normal(size=(n, 3)) * 5
    shift, scale = data.fit_scaler(x, "standard")
    calls = [
        ("partition_iid", (n, k, rng), {}),
        ("partition_dirichlet", (labels, k, data_.draw(st.sampled_from([0.01, 0.5, 50.0]), "alpha"), rng),
         {"min_examples": data_.draw(st.integers(0, max(0, n // k)), "min_examples")}),
        ("partition_shards", (labels, k, per_client, rng), {}),
        ("partition_natural", (labels,), {}),
        ("sample_clients", (rng, n, k), {}),
        ("fit_scaler", (x, data_.draw(st.sampled_from(["minmax", "standard"]), "kind")), {}),
        ("apply_scaler", (x, shift, scale), {}),
        ("synthetic_fedprox", (1.0, 0.5, 3, 4, 3, data_.draw(st.booleans(), "iid")), {"rng": rng}),
        ("markov_sequences", (5, 2, 12, 3, 0.7, 0.3), {"rng": rng}),
    ]
    if round(fraction * n) not in (0, n):
        calls.append(("holdout_split", (n, fraction, rng), {}))
    for name, args, kwargs in calls:
        core, core_state = _draw(getattr(data, name), args, kwargs, seed)
        checked, checked_state = _draw(getattr(data, "checked_" + name), args, kwargs, seed)
        assert _same(core, checked) and core_state == checked_state, name
        if isinstance(checked, ValueError):  # only a split the redraws cannot make fails here
            assert name == "partition_dirichlet" and checked.kind == "draws_exhausted"


# ---------------------------------------------------------------------------------------------
# Partitioners
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data_=st.data(), seed=st.integers(0, 2**32 - 1))
def test_partition_iid_covers_every_example_once(n, data_, seed):
    k = data_.draw(st.integers(1, n))
    parts = data.partition_iid(n, k, rng(seed))
    assert len(parts) == k
    assert_partition(parts, n)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 6), min_size=1, max_size=200),
    data_=st.data(),
    alpha=st.sampled_from([0.05, 0.5, 5.0, 500.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_partition_dirichlet_covers_every_example_once(labels, data_, alpha, seed):
    labels = np.array(labels)
    k = data_.draw(st.integers(1, min(len(labels), 8)))
    try:
        parts = data.partition_dirichlet(labels, k, alpha, rng(seed), min_examples=0)
    except ValueError:  # pragma: no cover - min_examples=0 always succeeds
        pytest.fail("min_examples=0 must always succeed")
    assert len(parts) == k
    assert_partition(parts, len(labels))


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 9), min_size=1, max_size=300),
    data_=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_partition_shards_covers_every_example_once(labels, data_, seed):
    labels = np.array(labels)
    k = data_.draw(st.integers(1, len(labels)))
    spc = data_.draw(st.integers(1, max(1, len(labels) // k)))
    parts = data.partition_shards(labels, k, spc, rng(seed))
    assert len(parts) == k
    assert_partition(parts, len(labels))


@settings(max_examples=40, deadline=None)
@given(ids=st.lists(st.integers(-5, 20), min_size=1, max_size=200))
def test_partition_natural_one_client_per_id_in_sorted_order(ids):
    ids = np.array(ids)
    parts = data.partition_natural(ids)
    assert_partition(parts, len(ids))
    owners = [int(ids[p[0]]) for p in parts]
    assert owners == sorted(set(ids.tolist()))
    for p, owner in zip(parts, owners):
        assert np.all(ids[p] == owner)


LABELS = np.repeat(np.arange(10), 60)  # 600 examples, 10 balanced classes


@pytest.mark.parametrize(
    "make",
    [
        lambda r: data.partition_iid(600, 12, r),
        lambda r: data.partition_dirichlet(LABELS, 12, 0.5, r),
        lambda r: data.partition_shards(LABELS, 12, 2, r),
    ],
    ids=["iid", "dirichlet", "shards"],
)
def test_partitions_are_deterministic_per_seed_and_differ_across_seeds(make):
    assert same_parts(make(rng(7)), make(rng(7)))
    assert not same_parts(make(rng(7)), make(rng(8)))


def label_skew(parts, labels):
    """Mean total-variation distance between each client's label mix and the global mix."""
    classes = np.unique(labels)
    overall = np.array([np.mean(labels == c) for c in classes])
    tv = []
    for p in parts:
        mine = np.array([np.mean(labels[p] == c) for c in classes])
        tv.append(0.5 * np.abs(mine - overall).sum())
    return float(np.mean(tv))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    labels = np.repeat(np.arange(10), 200)
    skew = {
        alpha: np.mean([
            label_skew(data.partition_dirichlet(labels, 20, alpha, rng(s)), labels)
            for s in range(5)
        ])
        for alpha in (100.0, 1.0, 0.1)
    }
    assert skew[100.0] < 0.15
    assert skew[100.0] < skew[1.0] < skew[0.1]
    assert skew[0.1] > 0.6


def test_dirichlet_respects_min_examples():
    parts = data.partition_dirichlet(LABELS, 30, 0.3, rng(1), min_examples=5)
    assert min(len(p) for p in parts) >= 5
    assert_partition(parts, len(LABELS))


def test_dirichlet_gives_up_with_a_clear_message():
    labels = np.repeat(np.arange(2), 50)
    with pytest.raises(ValueError, match="use fewer clients, a larger alpha or a smaller min_examples"):
        data.checked_partition_dirichlet(labels, 50, 0.01, rng(0), min_examples=2)
    with pytest.raises(ValueError, match=r"50 clients with at least 3 examples each need 150 examples, but there are only 100"):
        data.checked_partition_dirichlet(labels, 50, 1.0, rng(0), min_examples=3)


def test_shards_give_each_client_at_most_shards_per_client_labels():
    # 600 examples, 30 clients x 2 shards -> shards of 10, which divide the class size 60.
    parts = data.partition_shards(LABELS, 30, 2, rng(3))
    assert all(len(np.unique(LABELS[p])) <= 2 for p in parts)
    assert all(len(p) == 20 for p in parts)
    # Typical case with unequal class sizes: nearly all clients still see <= 2 labels.
    labels = rng(4).integers(0, 10, 1000)
    parts = data.partition_shards(labels, 50, 2, rng(5))
    few = sum(len(np.unique(labels[p])) <= 2 for p in parts)
    assert few >= 35
    assert max(len(np.unique(labels[p])) for p in parts) <= 4


def test_partition_errors():
    with pytest.raises(ValueError, match="partition_iid: cannot split 5 examples among 6 clients"):
        data.checked_partition_iid(5, 6, rng())
    with pytest.raises(ValueError, match="num_clients must be at least 1"):
        data.checked_partition_iid(5, 0, rng())
    with pytest.raises(ValueError, match="rng must be a numpy random Generator"):
        data.checked_partition_iid(5, 2, None)
    with pytest.raises(ValueError, match="cannot split 3 examples among 4 clients"):
        data.checked_partition_dirichlet(np.array([0, 1, 0]), 4, 1.0, rng())
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        data.checked_partition_dirichlet(LABELS, 4, 0.0, rng())
    with pytest.raises(ValueError, match="labels must be integers"):
        data.checked_partition_dirichlet(np.array([0.5, 1.0]), 2, 1.0, rng())
    with pytest.raises(
        ValueError, match=r"10 clients x 3 shards need at least 30 examples, but there are only 20"
    ):
        data.checked_partition_shards(np.zeros(20, dtype=int), 10, 3, rng())
    with pytest.raises(ValueError, match="client_ids must be a non-empty 1-D array"):
        data.checked_partition_natural(np.array([]))


# ---------------------------------------------------------------------------------------------
# Holdout, client sampling, summary
# ---------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 500), fraction=st.floats(0.01, 0.99), seed=st.integers(0, 1000))
def test_holdout_split(n, fraction, seed):
    k = round(fraction * n)
    if k in (0, n):
        with pytest.raises(ValueError, match="set empty"):
            data.checked_holdout_split(n, fraction, rng(seed))
        return
    train, test = data.holdout_split(n, fraction, rng(seed))
    assert len(test) == k
    assert_partition([train, test], n)


def test_holdout_split_deterministic_and_errors():
    a = data.holdout_split(100, 0.2, rng(1))
    b = data.holdout_split(100, 0.2, rng(1))
    c = data.holdout_split(100, 0.2, rng(2))
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        data.checked_holdout_split(100, 1.0, rng())
    with pytest.raises(ValueError, match="holding out 0.01 of 10 examples leaves the test set empty"):
        data.checked_holdout_split(10, 0.01, rng())


def test_sample_clients():
    s = data.sample_clients(rng(0), 100, 10)
    assert s.dtype == np.int64 and len(s) == 10 and len(set(s.tolist())) == 10
    assert np.all(np.diff(s) > 0) and s.min() >= 0 and s.max() < 100
    assert np.array_equal(s, data.sample_clients(rng(0), 100, 10))
    assert np.array_equal(data.sample_clients(rng(0), 5, 5), np.arange(5))
    # Roughly uniform over many rounds.
    r = rng(1)
    counts = np.bincount(np.concatenate([data.sample_clients(r, 20, 5) for _ in range(2000)]), minlength=20)
    assert counts.min() > 400 and counts.max() < 600
    with pytest.raises(ValueError, match="cannot pick 11 clients per round from only 10 clients"):
        data.checked_sample_clients(rng(), 10, 11)


def test_client_size_summary():
    summary = data.client_size_summary([np.arange(2), np.arange(4), np.arange(9)])
    assert summary == {"min": 2, "median": 4.0, "mean": 5.0, "max": 9}
    assert type(summary["min"]) is int and type(summary["max"]) is int
    assert type(summary["median"]) is float and type(summary["mean"]) is float
    with pytest.raises(ValueError, match="no clients"):
        data.client_size_summary([])


# ---------------------------------------------------------------------------------------------
# Synthetic(alpha, beta)
# ---------------------------------------------------------------------------------------------


def test_synthetic_shapes_dtypes_and_devices():
    x, y, c = data.synthetic_fedprox(1.0, 1.0, rng=rng(0))
    assert x.dtype == np.float32 and y.dtype == np.int64 and c.dtype == np.int64
    assert x.ndim == 2 and x.shape[1] == 60 and len(y) == len(x) == len(c)
    assert np.array_equal(np.unique(c), np.arange(30))
    assert np.bincount(c).min() >= 50
    assert len(np.unique(y)) > 1 and y.min() >= 0 and y.max() < 10
    x2, y2, c2 = data.synthetic_fedprox(0.5, 0.5, num_devices=7, num_features=5, num_classes=3, rng=rng(0))
    assert x2.shape[1] == 5 and set(np.unique(c2)) == set(range(7)) and y2.max() < 3


def test_synthetic_is_reproducible_and_seed_dependent():
    a = data.synthetic_fedprox(1.0, 1.0, rng=rng(5))
    b = data.synthetic_fedprox(1.0, 1.0, rng=rng(5))
    c = data.synthetic_fedprox(1.0, 1.0, rng=rng(6))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0][:50], c[0][:50])


def test_synthetic_heterogeneity_follows_beta_and_iid():
    def spread_of_device_means(x, c):
        return float(np.std([x[c == k].mean(axis=0) for k in np.unique(c)], axis=0).mean())

    x0, _, c0 = data.synthetic_fedprox(0.0, 0.0, iid=True, rng=rng(1))
    x1, _, c1 = data.synthetic_fedprox(1.0, 5.0, rng=rng(1))
    assert spread_of_device_means(x0, c0) < 0.2 < 2.0 < spread_of_device_means(x1, c1)
    # iid: one labelling function for everybody, so per-device label mixes are similar.
    x, y, c = data.synthetic_fedprox(0.0, 0.0, iid=True, rng=rng(2))
    assert len(np.unique(y)) > 3


def test_synthetic_feature_variances_decay():
    x, _, c = data.synthetic_fedprox(0.0, 0.0, iid=True, num_devices=5, rng=rng(3))
    var = x.var(axis=0)
    expected = np.arange(1, 61) ** -1.2
    assert np.allclose(var, expected, rtol=0.35)


def test_synthetic_errors():
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        data.checked_synthetic_fedprox(-1.0, 0.0, rng=rng())
    with pytest.raises(ValueError, match="num_devices must be at least 1"):
        data.checked_synthetic_fedprox(0.0, 0.0, num_devices=0, rng=rng())


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 200), data_=st.data(), seed=st.integers(0, 2**32 - 1))
def test_checked_split_client_tests_makes_the_cores_draws(n, data_, seed):
    """`test per_client(f)`: the program's copy and check's replay (which also names the clients left
    without test or training examples) draw alike; the split covers each client's examples once."""
    from fedlang.lib import client_tests

    parts = data.partition_iid(n, data_.draw(st.integers(1, n), "clients"), rng(seed))
    fraction = data_.draw(st.floats(0.01, 0.99), "fraction")
    core, core_state = _draw(client_tests.split_client_tests, (parts, fraction, rng), {}, seed)
    checked, checked_state = _draw(client_tests.checked_split_client_tests, (parts, fraction, rng), {}, seed)
    assert core_state == checked_state
    for part, train, test in zip(parts, *core):
        assert np.array_equal(np.sort(np.concatenate([train, test])), part)
        assert len(test) == round(fraction * len(part))
    if isinstance(checked, ValueError):
        assert re.search(r"leaves \d+ clients? without (test|training) examples: client \d+", str(checked))
        assert any(len(t) == 0 for split in core for t in split)
    else:
        assert _same(list(core), list(checked))


# ---------------------------------------------------------------------------------------------
# The loaders programs copy read what check's checked_ loaders read, from any file check accepts
# ---------------------------------------------------------------------------------------------

_CELL = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(-1e30, 1e30, allow_nan=False).map(repr))
_ID = st.one_of(st.integers(-50, 50).map(str), st.sampled_from(["ann", "bo", "Ω", "7x", "1.5", ""]).filter(bool))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.lists(_CELL, min_size=2, max_size=2), st.integers(0, 30), _ID), min_size=1, max_size=25),
    label_at=st.integers(0, 2),
    with_client=st.booleans(),
    blank_lines=st.lists(st.integers(0, 25), max_size=3),
    pad=st.sampled_from(["", " "]),
    bom=st.booleans(),
)
def test_load_csv_reads_what_checked_load_csv_reads(rows, label_at, with_client, blank_lines, pad, bom, tmp_path_factory):
    lines = []
    for features, label, client in rows:
        cells = [f"{pad}{c}{pad}" for c in features]
        cells.insert(label_at, f"{pad}{label}{pad}")
        lines.append(",".join(cells + ([f"{pad}{client}"] if with_client else [])))
    for at in sorted(blank_lines, reverse=True):
        lines.insert(min(at, len(lines)), "")
    header = ["f0", "f1"]
    header.insert(label_at, "target")
    text = ",".join(header + (["who"] if with_client else [])) + "\n" + "\n".join(lines) + "\n"
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    client = "who" if with_client else None
    expected = data.checked_load_csv(str(path), "target", client)
    got = data.load_csv(str(path), "target", client)
    assert _same(list(got[:2]), list(expected[:2])) and (got[2] is None) == (expected[2] is None)
    assert got[2] is None or _same(got[2], expected[2])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 20),
    x_dtype=st.sampled_from([np.float64, np.float32, np.int32, np.uint8, np.bool_]),
    y_dtype=st.sampled_from([np.int64, np.uint8, np.float64]),
    column=st.booleans(),
    ids=st.sampled_from(["int", "float", "str", None]),
    seed=st.integers(0, 1000),
)
def test_load_npz_reads_what_checked_load_npz_reads(n, x_dtype, y_dtype, column, ids, seed, tmp_path_factory):
    g = rng(seed)
    arrays = {"x": (g.normal(size=(n, 3, 2)) * 50).astype(x_dtype),
              "y": g.integers(0, 9, (n, 1) if column else n).astype(y_dtype)}
    if ids is not None:
        raw = g.integers(-4, 4, n)
        arrays["c"] = {"int": raw, "float": raw.astype(np.float64), "str": np.array([f"w{i}" for i in raw])}[ids]
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    np.savez(path, **arrays)
    key = "c" if ids is not None else None
    expected, got = data.checked_load_npz(str(path), client_key=key), data.load_npz(str(path), client_key=key)
    assert _same(list(got[:2]), list(expected[:2])) and (got[2] is None) == (expected[2] is None)
    assert got[2] is None or _same(got[2], expected[2])


# ---------------------------------------------------------------------------------------------
# load_npz
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("load", [data.load_npz, data.checked_load_npz], ids=["core", "checked"])
def test_load_npz_roundtrip(load, tmp_path):
    path = tmp_path / "data.npz"
    x = np.arange(24, dtype=np.float64).reshape(4, 2, 3)
    np.savez(path, x=x, labels=np.array([0.0, 2.0, 1.0, 2.0]), who=np.array(["b", "a", "b", "c"]))
    xs, ys, cs = load(str(path), y_key="labels", client_key="who")
    assert xs.dtype == np.float32 and xs.shape == (4, 2, 3) and np.array_equal(xs, x)
    assert ys.dtype == np.int64 and ys.tolist() == [0, 2, 1, 2]
    assert cs.dtype == np.int64 and cs.tolist() == [0, 1, 0, 2]
    np.savez(path, x=x, y=np.array([1, 0, 1, 0], dtype=np.uint8), c=np.array([5, 3, 5, 9]))
    _, ys, cs = load(str(path), client_key="c")
    assert ys.dtype == np.int64 and cs.tolist() == [5, 3, 5, 9]
    assert load(str(path))[2] is None


@pytest.mark.parametrize("label", [0.5, float("nan"), -1.25])
def test_the_short_loaders_refuse_labels_that_are_not_class_indices(label, tmp_path):
    """A program re-reads its data file when it runs (maybe later, maybe changed): a label such as
    0.5 must fail there too, not become class 0 (check refuses it with E501 through the checked
    loaders)."""
    csv_path, npz_path = tmp_path / "d.csv", tmp_path / "d.npz"
    csv_path.write_text(f"f,label\n1.0,1\n2.0,{label}\n")
    np.savez(npz_path, x=np.ones((2, 1)), y=np.array([1.0, label]))
    for load, path in ((data.load_csv, csv_path), (data.load_npz, npz_path)):
        with pytest.raises(ValueError, match="must be whole numbers"):
            load(str(path))
    csv_path.write_text("f,label\n1.0,1\n2.0,2.0\n")  # whole numbers written as floats are fine
    assert data.load_csv(str(csv_path))[1].tolist() == [1, 2]


def test_load_npz_errors(tmp_path):
    p = tmp_path / "data.npz"
    with pytest.raises(FileNotFoundError, match="data.npz: file not found"):
        data.checked_load_npz(str(p))

    p.write_bytes(b"")
    with pytest.raises(ValueError, match=r"data.npz is not a valid .npz file"):
        data.checked_load_npz(str(p))
    p.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"data.npz is not a valid .npz file \("):
        data.checked_load_npz(str(p))
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"single.npy is a single-array .npy file"):
        data.checked_load_npz(str(tmp_path / "single.npy"))

    np.savez(p, x=np.ones((3, 2)), labels=np.zeros(3))
    with pytest.raises(ValueError, match=re.escape("data.npz has no array 'y' (arrays: x, labels)")):
        data.checked_load_npz(str(p))
    with pytest.raises(ValueError, match=re.escape("data.npz has no array 'cid' (arrays: x, labels)")):
        data.checked_load_npz(str(p), y_key="labels", client_key="cid")

    np.savez(p, x=np.ones((3, 2)), y=np.zeros(4))
    with pytest.raises(ValueError, match=re.escape("arrays 'x' and 'y' have different numbers of examples (3 and 4)")):
        data.checked_load_npz(str(p))

    np.savez(p, x=np.ones((3, 2)), y=np.array([0.0, 1.5, 1.0]))
    with pytest.raises(ValueError, match=re.escape("array 'y' must hold integer class labels; index 1 is 1.5")):
        data.checked_load_npz(str(p))

    np.savez(p, x=np.ones((3, 2)), y=np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=re.escape("class labels >= 0; index 1 is -1")):
        data.checked_load_npz(str(p))

    x = np.ones((4, 2))
    x[2, 1] = np.nan
    np.savez(p, x=x, y=np.zeros(4))
    with pytest.raises(ValueError, match=re.escape("array 'x' contains NaN or infinite values (1 examples, first at index 2)")):
        data.checked_load_npz(str(p))

    np.savez(p, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(ValueError, match=re.escape("data.npz: array 'x' could not be read")):
        data.checked_load_npz(str(p))

    np.savez(p, x=np.array(["a", "b"]), y=np.zeros(2))
    with pytest.raises(ValueError, match=re.escape("array 'x' must be a numeric array")):
        data.checked_load_npz(str(p))

    np.savez(p, x=np.ones((2, 2)), y=np.zeros(2), c=np.zeros(3))
    with pytest.raises(ValueError, match=re.escape("array 'c' must be 1-D with one client id per example (2)")):
        data.checked_load_npz(str(p), client_key="c")


# ---------------------------------------------------------------------------------------------
# load_csv
# ---------------------------------------------------------------------------------------------


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("load", [data.load_csv, data.checked_load_csv], ids=["core", "checked"])
def test_load_csv_with_string_client_ids(load, tmp_path):
    path = write(tmp_path, "a,b,label,user\n1,2.5,0,bob\n3,4,1,alice\n\n5,-6e-1,1.0,bob\n7, 8 ,2,carol\n")
    x, y, c = load(path, client="user")
    assert x.dtype == np.float32 and x.shape == (4, 2)
    assert np.allclose(x, [[1, 2.5], [3, 4], [5, -0.6], [7, 8]])
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 1, 2]
    assert c.dtype == np.int64 and c.tolist() == [0, 1, 0, 2]  # order of first appearance
    parts = data.partition_natural(c)
    assert [p.tolist() for p in parts] == [[0, 2], [1], [3]]


@pytest.mark.parametrize("load", [data.load_csv, data.checked_load_csv], ids=["core", "checked"])
def test_load_csv_integer_client_ids_kept_and_label_anywhere(load, tmp_path):
    path = write(tmp_path, "y,f1,cid,f2\n0,1,10,2\n1,3,4,4\n")
    x, y, c = load(path, label="y", client="cid")
    assert x.tolist() == [[1, 2], [3, 4]] and y.tolist() == [0, 1] and c.tolist() == [10, 4]
    x, y, c = load(path, label="y")
    assert x.shape == (2, 3) and c is None


def test_load_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv: file not found"):
        data.checked_load_csv(str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match="data.csv is empty; expected a header row"):
        data.checked_load_csv(write(tmp_path, ""))
    with pytest.raises(ValueError, match="data.csv has a header but no data rows"):
        data.checked_load_csv(write(tmp_path, "a,label\n\n"))
    with pytest.raises(ValueError, match=re.escape("column 'label' not found in") ) as info:
        data.checked_load_csv(write(tmp_path, "a,b,target\n1,2,0\n"))
    assert str(info.value).endswith("data.csv header (3 columns)")  # described, not quoted
    with pytest.raises(ValueError, match=re.escape("column 'client' not found in")) as info:
        data.checked_load_csv(write(tmp_path, "a,b,label\n1,2,0\n"), client="client")
    assert str(info.value).endswith("data.csv header (3 columns)")
    with pytest.raises(ValueError, match=re.escape("data.csv header (2 columns; one is named 'Label')")):
        data.checked_load_csv(write(tmp_path, "a,Label\n1,0\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv line 4: expected 3 columns, found 2")):
        data.checked_load_csv(write(tmp_path, "a,b,label\n1,2,0\n3,4,1\n5,1\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv line 3: expected 3 columns, found 4")):
        data.checked_load_csv(write(tmp_path, "a,b,label\n1,2,0\n3,4,1,9\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv line 3, column 2 ('b'): expected a number, found text (3 characters)")):
        data.checked_load_csv(write(tmp_path, "a,b,label\n1,2,0\n3,abc,1\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv line 2, column 1 ('a'): expected a number, found an empty cell")):
        data.checked_load_csv(write(tmp_path, "a,b,label\n,2,0\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv line 2, column 1 ('a'): expected a finite number, found a non-finite number (nan or inf)")):
        data.checked_load_csv(write(tmp_path, "a,b,label\nnan,2,0\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv line 3, column 'label': expected an integer class label >= 0, found a fraction")):
        data.checked_load_csv(write(tmp_path, "a,b,label\n1,2,0\n1,2,0.5\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv line 2, column 'label': expected an integer class label >= 0, found text (3 characters)")):
        data.checked_load_csv(write(tmp_path, "a,b,label\n1,2,cat\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv line 2, column 'u': expected a client id, found an empty cell")):
        data.checked_load_csv(write(tmp_path, "a,u,label\n1,,0\n"), client="u")
    with pytest.raises(ValueError, match=re.escape("data.csv header repeats a column name (columns 1 and 2)")):
        data.checked_load_csv(write(tmp_path, "a,a,label\n1,2,0\n"))
    with pytest.raises(ValueError, match=re.escape("data.csv has no feature columns (only the label and client columns)")):
        data.checked_load_csv(write(tmp_path, "label,u\n1,x\n"), client="u")


# ---------------------------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------------------------


def test_minmax_scaler_fitted_on_train_only():
    train = np.array([[0.0, 5.0, 1.0], [10.0, 5.0, 3.0], [5.0, 5.0, 2.0]])
    shift, scale = data.fit_scaler(train, "minmax")
    assert np.allclose(shift, [0, 5, 1]) and np.allclose(scale, [10, 1, 2])  # constant column -> 1
    scaled = data.apply_scaler(train, shift, scale)
    assert scaled.dtype == np.float32
    assert np.allclose(scaled.min(axis=0), [0, 0, 0]) and np.allclose(scaled.max(axis=0), [1, 0, 1])
    test = data.apply_scaler(np.array([[20.0, 5.0, 1.0]]), shift, scale)
    assert np.allclose(test, [[2.0, 0.0, 0.0]])  # test data uses the training statistics


def test_standard_scaler_statistics():
    x = rng(0).normal(3.0, 2.0, (500, 4))
    x[:, 2] = 7.0
    shift, scale = data.fit_scaler(x, "standard")
    assert np.allclose(shift, x.mean(axis=0)) and scale[2] == 1.0
    z = data.apply_scaler(x, shift, scale)
    assert np.allclose(z.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(z.std(axis=0)[[0, 1, 3]], 1, atol=1e-5) and np.all(z[:, 2] == 0)
    # Works per pixel for image-shaped data too.
    imgs = rng(1).random((10, 4, 4))
    s, c = data.fit_scaler(imgs, "minmax")
    assert s.shape == (4, 4) and data.apply_scaler(imgs, s, c).shape == (10, 4, 4)


def test_scaler_errors():
    with pytest.raises(ValueError, match="unknown scaling 'zscore' \\(expected 'minmax' or 'standard'\\)"):
        data.checked_fit_scaler(np.ones((2, 2)), "zscore")
    with pytest.raises(ValueError, match="training data is empty"):
        data.checked_fit_scaler(np.ones((0, 2)), "minmax")
    with pytest.raises(ValueError, match=re.escape("fitted on examples of shape (2,), but these examples have shape (3,)")):
        data.checked_apply_scaler(np.ones((4, 3)), np.zeros(2), np.ones(2))
