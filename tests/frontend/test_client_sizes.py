"""`check` replays the run's data split: the labels it reads and the client sizes it reports.

(That the replay matches the emitted program's own `load_data()` is tested in
tests/tff/test_client_sizes.py, which needs TensorFlow to import the program.)
"""

import numpy as np
import pytest
import sklearn.datasets

from fedlang.check.clients import bundled_labels
from fedlang.lib import data as datalib
from fedlang.registry import SKLEARN_SETS
from fedlang.summary import summary_lines

from .test_pipeline import BASE, compile_text, with_block


@pytest.mark.parametrize("name", sorted(SKLEARN_SETS))
def test_bundled_labels_are_sklearns_targets_in_order(name):
    _, expected = getattr(sklearn.datasets, SKLEARN_SETS[name].loader)(return_X_y=True)
    labels = bundled_labels(name)
    assert labels.dtype == np.int64 and len(labels) == SKLEARN_SETS[name].examples
    np.testing.assert_array_equal(labels, expected)


def _data(partition: str, test: str = "holdout(0.2)", source: str = "sklearn.digits", seed: int = 5,
          features: int = 64):
    text = with_block("data", f"data d {{\n  source {source}\n  partition {partition}\n  test {test}\n}}")
    text = text.replace("seed 5", f"seed {seed}").replace("input [64]", f"input [{features}]")
    return compile_text(text).checked.data


def test_sizes_are_the_split_drawn_with_the_specs_seed():
    sizes = _data("dirichlet(alpha = 0.3, clients = 12, min_examples = 4)", seed=11).client_sizes
    rng = np.random.default_rng(11)  # the emitted load_data's order: hold out, then partition
    train, _ = datalib.holdout_split(1797, 0.2, rng)
    labels = sklearn.datasets.load_digits(return_X_y=True)[1][train]
    expected = datalib.partition_dirichlet(labels, 12, alpha=0.3, rng=rng, min_examples=4)
    assert sizes == tuple(len(p) for p in expected)
    assert sum(sizes) == 1797 - round(0.2 * 1797) and min(sizes) >= 4


def test_sizes_follow_the_seed_and_the_partition():
    a = _data("dirichlet(alpha = 0.3, clients = 12)", seed=1).client_sizes
    assert a == _data("dirichlet(alpha = 0.3, clients = 12)", seed=1).client_sizes
    assert a != _data("dirichlet(alpha = 0.3, clients = 12)", seed=2).client_sizes
    assert _data("iid(clients = 10)").client_sizes == (144,) * 8 + (143,) * 2
    shards = _data("shards(clients = 10, per_client = 2)", test="none").client_sizes  # 20 shards of 89 or 90
    assert sorted(shards) == [179] * 3 + [180] * 7 and shards != tuple(sorted(shards))


def test_synthetic_sizes_are_known_at_check_time():
    data = _data("natural", test="none", source="synthetic(alpha = 1, beta = 1)", seed=7,
                 features=60)
    x, y, ids = datalib.synthetic_fedprox(1, 1, rng=np.random.default_rng(7))
    assert data.client_sizes == tuple(np.bincount(ids))
    assert len(data.client_sizes) == 30 and sum(data.client_sizes) == len(y)


def test_emnist_sizes_stay_unknown():
    text = BASE.replace("input [64]", "input [28, 28]\n  flatten").replace("source sklearn.digits", "source emnist")
    text = text.replace("partition iid(clients = 10)", "partition natural").replace("holdout(0.2)", "split")
    assert compile_text(text).checked.data.client_sizes is None


def test_summary_shows_min_median_and_max_examples_per_client():
    compiled = compile_text(BASE)
    rows = dict(summary_lines(compiled.checked, compiled.plan))
    assert rows["clients"] == "10 (iid(clients=10)); training examples per client: min 143, median 144, max 144"
