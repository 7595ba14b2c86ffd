"""Federated evaluation on clients' own test sets and local fine-tuning, with TFF's personalization evaluation.

`build_client_evaluation` wraps `tff.learning.algorithms.build_personalization_eval_computation`:
the server's model weights are broadcast, every client evaluates them on its own test set
(`baseline_metrics`) and, with fine-tuning, trains a copy on its own training data and evaluates
that copy (`finetuned`); only metrics come back to the server, so the global model is never
changed. `evaluate_clients` runs it and finalizes each client's metrics with the model's own
finalizers (TFF's), in client order.
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

REQUIRES = {"local_metrics": (), "finetune_fn": ("local_metrics",), "build_client_evaluation": ("local_metrics",),
            "evaluate_clients": ()}


def local_metrics(model, dataset):
    """The model's unfinalized metrics on an unbatched dataset (metric variables reset first).

    Loops are `dataset.reduce`, not Python `for`: they need no AutoGraph, so the program also
    works when executed from a string (AutoGraph cannot read such source)."""
    for variable in model.local_variables:
        variable.assign(tf.zeros_like(variable))

    def evaluate_batch(batches, batch):
        model.forward_pass(batch, training=False)
        return batches + 1

    dataset.batch(1024).reduce(tf.constant(0, tf.int64), evaluate_batch)
    return model.report_local_unfinalized_metrics()


def finetune_fn(optimizer_fn, epochs, batch_size, seed):
    """A builder of TFF's personalization strategy: `epochs` passes of `optimizer_fn()` (a TFF optimizer)
    over the client's training data (shuffled with `seed`, batched), then the metrics on its test data."""

    def build():
        optimizer = optimizer_fn()

        @tf.function
        def finetune(model, train_data, test_data):
            weights = tuple(model.trainable_variables)
            state = optimizer.initialize(tuple(tf.TensorSpec(v.shape, v.dtype) for v in weights))
            data = train_data.shuffle(100_000, seed=seed, reshuffle_each_iteration=True).batch(batch_size)

            def train_batch(state, batch):
                with tf.GradientTape() as tape:
                    output = model.forward_pass(batch, training=True)
                gradients = tape.gradient(output.loss, weights)
                state, updated = optimizer.next(state, tuple(v.read_value() for v in weights), gradients)
                for variable, value in zip(weights, updated):
                    variable.assign(value)
                return state

            data.repeat(epochs).reduce(state, train_batch)
            return local_metrics(model, test_data)

        return finetune

    return build


def build_client_evaluation(model_fn, max_clients, finetune=None):
    """TFF's personalization evaluation: the global model (and, with `finetune` = finetune_fn(…),
    a copy fine-tuned on each client) evaluated on every given client's own test set."""
    strategies = collections.OrderedDict()
    if finetune is not None:
        strategies["finetuned"] = finetune
    return tff.learning.algorithms.build_personalization_eval_computation(
        model_fn, strategies, tf.function(local_metrics), max_num_clients=max_clients)


def evaluate_clients(computation, model_weights, metrics_fn, clients, client_tests, chosen):
    """Runs the evaluation on the `chosen` clients (indices into clients/client_tests).

    Each client's metrics are finalized as TFF's Keras finalizers do: its unfinalized values
    assigned to the variables of a fresh Keras metric (from `metrics_fn()`, plus the loss's Mean),
    then `result()`. Returns {"baseline": {metric: per-client values}, "finetuned": {…} (if
    fine-tuned), "num_examples": per-client test sizes}, each list in the order of `chosen`.
    """
    inputs = [collections.OrderedDict(train_data=tf.data.Dataset.from_tensor_slices(clients[i]),
                                      test_data=tf.data.Dataset.from_tensor_slices(client_tests[i]))
              for i in chosen]
    output = computation(model_weights, inputs)
    keras_metrics = {metric.name: metric for metric in metrics_fn()}
    keras_metrics["loss"] = tf.keras.metrics.Mean(name="loss")
    expected = np.array([len(client_tests[i][1]) for i in chosen])
    results = {}
    for strategy, metrics in output.items():
        name = "baseline" if strategy == "baseline_metrics" else strategy
        counted = np.asarray(metrics["num_examples"]).reshape(-1)
        if not np.array_equal(counted, expected):  # TFF collects every client (max_num_clients ≥ clients)
            raise RuntimeError("TFF's personalization evaluation returned clients in another order than given")
        per_client = {}
        for metric, keras_metric in keras_metrics.items():
            values = []
            for k in range(len(chosen)):
                for variable, value in zip(keras_metric.variables, metrics[metric]):
                    variable.assign(np.asarray(value)[k])
                values.append(float(keras_metric.result()))
            per_client[metric] = values
        results[name] = per_client
    results["num_examples"] = expected.tolist()
    return results
