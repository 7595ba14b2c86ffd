#!/usr/bin/env python3
"""Federated learning for image classification, written by hand with TensorFlow Federated 0.87.

This follows TFF's tutorial "Federated Learning for Image Classification" (Steps 1-3: prepare
the federated data, wrap a Keras model with `tff.learning.models.from_keras_model`, build
Federated Averaging and train), adapted to run offline: scikit-learn's 8x8 handwritten digits
replace EMNIST, and the clients are a random IID split of them instead of EMNIST's writers.
Evaluation uses TFF's federated evaluation (`build_fed_eval`) on a held-out test set.

It is the hand-written twin of `digits_fedavg.fed` (tests/tff/test_handwritten_twin.py checks
that both give the same numbers). For that, it follows the reproducibility conventions that
fedlang documents for its programs, rather than the tutorial's fixed client list and seed:

* numpy `default_rng(SEED)` draws, in this order, the test hold-out (a permutation whose first
  round(fraction * n) examples are the test set) and then the IID partition (a permutation of
  the training examples cut into nearly equal parts with `np.array_split`);
* each round draws from `default_rng([SEED, round])`: first the sampled clients (without
  replacement, in increasing order), then one shuffle seed per sampled client;
* a client's data is shuffled (with that seed), batched, then repeated for the local epochs;
* `tf.keras.utils.set_random_seed(SEED)` right before building the initial Keras model, whose
  weights then become the initial global model.

Run it with `python digits_fedavg.py [--rounds N]` (it uses TFF's default local runtime).
"""

import argparse
import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
from sklearn.datasets import load_digits

SEED = 2024
NUM_CLIENTS = 12
CLIENTS_PER_ROUND = 5
NUM_EPOCHS = 2
BATCH_SIZE = 20
SHUFFLE_BUFFER = 50
TEST_FRACTION = 0.25
NUM_ROUNDS = 4
EVAL_EVERY = 2


# ---------------------------------------------------------------------------------------------
# Step 1: preparing the input data
# ---------------------------------------------------------------------------------------------


def load_federated_digits():
    """Returns ({client_id: (pixels, labels)}, (test_pixels, test_labels))."""
    rng = np.random.default_rng(SEED)
    digits = load_digits()
    pixels = digits.data.astype(np.float32) / 16.0  # 0..16 -> 0..1, like EMNIST's pixels
    labels = digits.target.astype(np.int64)

    # Hold out a random quarter of the examples as the test set.
    order = rng.permutation(len(labels))
    num_test = round(TEST_FRACTION * len(labels))
    test, train = np.sort(order[:num_test]), np.sort(order[num_test:])
    train_pixels, train_labels = pixels[train], labels[train]

    # Deal the training examples out to the clients at random.
    shards = np.array_split(rng.permutation(len(train)), NUM_CLIENTS)
    federated_train = {
        f"client_{k:02d}": (train_pixels[np.sort(shard)], train_labels[np.sort(shard)])
        for k, shard in enumerate(shards)
    }
    return federated_train, (pixels[test], labels[test])


def create_tf_dataset_for_client(client_data, client_id):
    pixels, labels = client_data[client_id]
    return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(pixels=pixels, label=labels))


def batch_format_fn(element):
    """Flatten a batch of images and return the features as an `OrderedDict`."""
    return collections.OrderedDict(
        x=tf.reshape(element["pixels"], [-1, 64]),
        y=tf.reshape(element["label"], [-1, 1]))


def preprocess(dataset, shuffle_seed):
    return (dataset.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed)
            .batch(BATCH_SIZE)
            .map(batch_format_fn)
            .repeat(NUM_EPOCHS))


def make_federated_data(client_data, client_ids, shuffle_seeds):
    return [preprocess(create_tf_dataset_for_client(client_data, client_id), int(seed))
            for client_id, seed in zip(client_ids, shuffle_seeds)]


def sample_round(client_ids, round_num):
    """This round's clients and their shuffle seeds."""
    rng = np.random.default_rng([SEED, round_num])
    chosen = np.sort(rng.choice(len(client_ids), size=CLIENTS_PER_ROUND, replace=False))
    shuffle_seeds = rng.integers(2**31 - 1, size=len(chosen))
    return [client_ids[i] for i in chosen], shuffle_seeds


# ---------------------------------------------------------------------------------------------
# Step 2: creating a model with Keras
# ---------------------------------------------------------------------------------------------


def create_keras_model():
    return tf.keras.models.Sequential([
        tf.keras.layers.InputLayer(input_shape=(64,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ])


INPUT_SPEC = collections.OrderedDict(
    x=tf.TensorSpec(shape=[None, 64], dtype=tf.float32),
    y=tf.TensorSpec(shape=[None, 1], dtype=tf.int64))


def model_fn():
    # We _must_ create a new model here, and _not_ capture it from an external scope. TFF will
    # call this within different graph contexts.
    keras_model = create_keras_model()
    return tff.learning.models.from_keras_model(
        keras_model,
        input_spec=INPUT_SPEC,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])


# ---------------------------------------------------------------------------------------------
# Step 3: training the model on federated data
# ---------------------------------------------------------------------------------------------


def train(num_rounds=NUM_ROUNDS, report=print):
    """Trains for `num_rounds`; returns one dict of metrics per round."""
    federated_train_data, (test_pixels, test_labels) = load_federated_digits()
    client_ids = sorted(federated_train_data)

    training_process = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.05),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0))
    evaluation_process = tff.learning.algorithms.build_fed_eval(model_fn)

    train_state = training_process.initialize()
    # Start from a seeded Keras initialisation, so that every run starts from the same model.
    tf.keras.utils.set_random_seed(SEED)
    initial_model = create_keras_model()
    train_state = training_process.set_model_weights(
        train_state, tff.learning.models.ModelWeights.from_model(initial_model))

    test_data = [tf.data.Dataset.from_tensor_slices(
        collections.OrderedDict(pixels=test_pixels, label=test_labels)).batch(BATCH_SIZE).map(batch_format_fn)]
    evaluation_state = evaluation_process.initialize()

    history = []
    for round_num in range(1, num_rounds + 1):
        sampled_ids, shuffle_seeds = sample_round(client_ids, round_num)
        federated_data = make_federated_data(federated_train_data, sampled_ids, shuffle_seeds)
        result = training_process.next(train_state, federated_data)
        train_state = result.state
        train_metrics = result.metrics["client_work"]["train"]
        row = {"round": round_num,
               "train_loss": float(train_metrics["loss"]),
               "train_accuracy": float(train_metrics["sparse_categorical_accuracy"])}

        if round_num % EVAL_EVERY == 0 or round_num == num_rounds:
            model_weights = training_process.get_model_weights(train_state)
            evaluation_state = evaluation_process.set_model_weights(evaluation_state, model_weights)
            evaluation_output = evaluation_process.next(evaluation_state, test_data)
            eval_metrics = evaluation_output.metrics["client_work"]["eval"]["current_round_metrics"]
            row["eval_loss"] = float(eval_metrics["loss"])
            row["eval_accuracy"] = float(eval_metrics["sparse_categorical_accuracy"])

        history.append(row)
        report("round {:2d}, metrics={}".format(round_num, {k: round(v, 6) for k, v in row.items() if k != "round"}))
    return history


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=NUM_ROUNDS)
    train(parser.parse_args().rounds)


if __name__ == "__main__":
    main()
