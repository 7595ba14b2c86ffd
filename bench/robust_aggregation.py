#!/usr/bin/env python3
"""Robust aggregation against a scaling attacker: final test accuracy of a small MLP on
scikit-learn's digits, with fedlang/lib/federated.py's aggregators.

Setting: 20 clients (IID split of 80 % of digits; the other 20 % is the test set), 10 clients
per round, 20 rounds, unweighted FedAvg (client SGD 0.1, batch 16, 1 local epoch; server SGD
1.0). Client 0 is the attacker: it is sampled every round (with 9 others drawn at random) and
its model update is multiplied by 100 before aggregation (`build_attackable_fed_avg`). Every
run starts from the same weights and samples the same clients. Each aggregator is run without
the attacker (all scales 1) and with it.

Run: `python bench/robust_aggregation.py [--rounds 20 --scale 100 --seed 0]` (about 2-4 min
on 2 cores).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fedlang.lib import data, federated  # noqa: E402
from fedlang.lib.tff_worker import use_local_tff_worker  # noqa: E402


def load_clients(num_clients, seed, batch_size):
    """(client datasets, x_test, y_test, element spec) for digits split IID."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    train, test = data.holdout_split(len(digits.target), 0.2, rng)
    shift, scale = data.fit_scaler(digits.data[train], "minmax")
    x_train = data.apply_scaler(digits.data[train], shift, scale)
    y_train = digits.target[train].astype(np.int32)
    x_test = data.apply_scaler(digits.data[test], shift, scale)
    y_test = digits.target[test].astype(np.int32)
    parts = data.partition_iid(len(y_train), num_clients, rng)
    datasets = [tf.data.Dataset.from_tensor_slices((x_train[p], y_train[p])).batch(batch_size)
                for p in parts]
    return datasets, x_test, y_test, datasets[0].element_spec


def keras_mlp():
    import tensorflow as tf

    return tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(64,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax")])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--scale", type=float, default=100.0, help="the attacker's update factor")
    parser.add_argument("--trim", type=float, default=0.2, help="trimmed-mean fraction")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_federated as tff

    worker = use_local_tff_worker()
    tf.random.set_seed(args.seed)
    datasets, x_test, y_test, spec = load_clients(args.clients, args.seed, batch_size=16)

    def model_fn():
        return tff.learning.models.from_keras_model(
            keras_mlp(), loss=tf.keras.losses.SparseCategoricalCrossentropy(), input_spec=spec,
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])

    def accuracy(process, state):
        """Test accuracy of the server model, evaluated in numpy (the MLP's forward pass)."""
        kernel1, bias1, kernel2, bias2 = process.get_model_weights(state).trainable
        hidden = np.maximum(x_test @ kernel1 + bias1, 0.0)
        return float(np.mean(np.argmax(hidden @ kernel2 + bias2, axis=1) == y_test))

    aggregators = {
        "FedAvg (mean)": lambda: None,
        f"trimmed mean {args.trim}": lambda: federated.TrimmedMeanFactory(args.trim),
        "median": federated.MedianFactory,
        "Krum (f=1)": lambda: federated.KrumFactory(1),
        "Multi-Krum (f=1, m=7)": lambda: federated.MultiKrumFactory(1, 7),
        "norm-clipped mean (1.0)": lambda: federated.NormClippedMeanFactory(1.0),
    }
    initial_weights = None
    rows = []
    try:
        for name, make_aggregator in aggregators.items():
            process = federated.build_attackable_fed_avg(
                model_fn, tff.learning.optimizers.build_sgdm(learning_rate=0.1),
                model_aggregator=make_aggregator())
            if initial_weights is None:
                initial_weights = process.get_model_weights(process.initialize())
            result = {}
            for attacked in (False, True):
                start = time.perf_counter()
                state = process.set_model_weights(process.initialize(), initial_weights)
                rng = np.random.default_rng(args.seed + 1)  # same clients in every run
                for _ in range(args.rounds):
                    others = 1 + rng.choice(args.clients - 1, args.per_round - 1, replace=False)
                    chosen = [0, *sorted(others)]  # client 0, the attacker, every round
                    scales = [args.scale if attacked and c == 0 else 1.0 for c in chosen]
                    state = process.next(state, [(datasets[c], s) for c, s in zip(chosen, scales)]).state
                result[attacked] = (accuracy(process, state), time.perf_counter() - start)
            rows.append((name, result))
            print(f"  {name}: clean {result[False][0]:.4f}  attacked {result[True][0]:.4f}", flush=True)
    finally:
        worker.close()

    print(f"\ndigits, {args.clients} IID clients, {args.per_round} per round, {args.rounds} rounds, "
          f"seed {args.seed}; attacker = client 0 (every round), update x{args.scale:g}")
    print(f"{'aggregator':<26}{'clean acc':>10}{'attacked acc':>14}{'s/round':>9}")
    for name, result in rows:
        per_round = (result[False][1] + result[True][1]) / (2 * args.rounds)
        print(f"{name:<26}{result[False][0]:>10.4f}{result[True][0]:>14.4f}{per_round:>9.2f}")


if __name__ == "__main__":
    main()
