#!/usr/bin/env python3
"""A hand-written, seed-style TFF FedAvg program: the baseline of bench/simulation_speed.py.

Written the way the source document and TFF's tutorial write it: a Keras model wrapped with
`tff.learning.models.from_keras_model`, `build_weighted_fed_avg` with TFF optimizers, and each
round a Python list with one `tf.data.Dataset` per sampled client. The experiment is the bench's:
scikit-learn's digits (pixels / 16), an IID split over POPULATION clients, CLIENTS_PER_ROUND
sampled per round, an MLP 64-128-10, batch 32, shuffle buffer 100, one local epoch, client SGD 0.1,
server SGD 1.0.

Run: `python bench/handwritten_fedavg.py [--rounds N] [--clients-per-round K]` (TFF's default
local runtime). The bench imports `train` and runs it on the same local worker as fedlang.
"""

import argparse
import time

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
from sklearn.datasets import load_digits

SEED = 1
POPULATION = 500
CLIENTS_PER_ROUND = 100
BATCH_SIZE = 32
SHUFFLE_BUFFER = 100
LOCAL_EPOCHS = 1


def load_clients(population=POPULATION):
    """The digits split IID over `population` clients: a list of (pixels, labels)."""
    digits = load_digits()
    pixels, labels = digits.data.astype(np.float32) / 16.0, digits.target.astype(np.int64)
    rng = np.random.default_rng(SEED)
    return [(pixels[np.sort(part)], labels[np.sort(part)])
            for part in np.array_split(rng.permutation(len(labels)), population)]


def create_keras_model():
    return tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(64,)),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ])


INPUT_SPEC = (tf.TensorSpec([None, 64], tf.float32), tf.TensorSpec([None], tf.int64))


def model_fn():
    return tff.learning.models.from_keras_model(
        create_keras_model(), input_spec=INPUT_SPEC,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])


def preprocess(pixels, labels, seed):
    dataset = tf.data.Dataset.from_tensor_slices((pixels, labels))
    return dataset.shuffle(SHUFFLE_BUFFER, seed=seed).batch(BATCH_SIZE).repeat(LOCAL_EPOCHS)


def train(rounds, clients_per_round=CLIENTS_PER_ROUND, population=POPULATION, on_round=print):
    """Runs `rounds` rounds; calls on_round({"round", "seconds", "loss"}) after each."""
    clients = load_clients(population)
    trainer = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.1),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0))
    state = trainer.initialize()
    for round_num in range(1, rounds + 1):
        started = time.perf_counter()
        rng = np.random.default_rng([SEED, round_num])
        sampled = np.sort(rng.choice(len(clients), size=clients_per_round, replace=False))
        seeds = rng.integers(2**31 - 1, size=len(sampled))
        federated_train_data = [preprocess(*clients[i], int(s)) for i, s in zip(sampled, seeds)]
        result = trainer.next(state, federated_train_data)
        state = result.state
        loss = float(result.metrics["client_work"]["train"]["loss"])
        on_round({"round": round_num, "seconds": time.perf_counter() - started, "loss": loss})
    return state


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients-per-round", type=int, default=CLIENTS_PER_ROUND)
    args = parser.parse_args()
    train(args.rounds, args.clients_per_round)


if __name__ == "__main__":
    main()
