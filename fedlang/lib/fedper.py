"""FedPer (Arivazhagan et al. 2019): shared layers trained by federated averaging, local layers kept by each client.

A round is one `tff.federated_computation`: the server's shared weights are broadcast, each
client trains the whole model (its own local weights, which come in and go out as a
`@CLIENTS` value) on its data with SGD, and only the shared layers' update is averaged and
applied at the server. The local weights are never broadcast and never aggregated: TFF returns
them to the clients (in this simulation, the Python list of client states). Evaluation is per
client, with the shared weights and that client's own local weights.
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

REQUIRES = {"FedPerProcess": ("_client_state_type",), "_client_state_type": ()}


def _client_state_type(weights):
    return tff.StructWithPythonType([tff.TensorType(np.float32, w.shape) for w in weights], tuple)


class FedPerProcess:
    """A learning process (initialize / next / get_model_weights / set_model_weights) whose state is
    {"shared": server weights, "local": one tuple of local weights per client}.

    `local_mask` says, per trainable variable of the Keras model, whether it belongs to a local layer.
    """

    def __init__(self, build_keras_model, build_loss, build_metrics, element_spec, local_mask, num_clients,
                 client_learning_rate, server_learning_rate, weighted=True):
        self.build_keras_model, self.build_loss, self.build_metrics = build_keras_model, build_loss, build_metrics
        self.local_mask, self.num_clients, self.weighted = tuple(local_mask), num_clients, weighted
        model = build_keras_model()
        weights = model.get_weights()
        if len(weights) != len(self.local_mask):
            raise ValueError("FedPerProcess: the model has non-trainable weights, which FedPer does not keep")
        self.shared_type = _client_state_type([w for w, m in zip(weights, self.local_mask) if not m])
        self.local_type = _client_state_type([w for w, m in zip(weights, self.local_mask) if m])
        data_type = tff.SequenceType(tff.types.tensorflow_to_type(element_spec))
        shared_type, local_type, mask = self.shared_type, self.local_type, self.local_mask
        metric_names = ["loss"] + [m.name for m in build_metrics()]
        self.metric_names = metric_names

        def split(variables):
            return ([v for v, m in zip(variables, mask) if not m], [v for v, m in zip(variables, mask) if m])

        @tff.tensorflow.computation(shared_type, local_type, data_type)
        def client_update(shared, local, dataset):
            model = build_keras_model()
            loss_fn, metrics = build_loss(), [tf.keras.metrics.Mean(name="loss")] + build_metrics()
            shared_vars, local_vars = split(model.trainable_variables)

            @tf.function
            def train(shared, local, dataset):
                for variable, value in zip(shared_vars + local_vars, list(shared) + list(local)):
                    variable.assign(value)

                def train_batch(examples, batch):  # dataset.reduce: no AutoGraph needed (see personal.py)
                    x, y = batch
                    with tf.GradientTape() as tape:
                        predictions = model(x, training=True)
                        loss = loss_fn(y, predictions)
                    gradients = tape.gradient(loss, model.trainable_variables)
                    for variable, gradient in zip(model.trainable_variables, gradients):
                        variable.assign_sub(client_learning_rate * gradient)
                    count = tf.cast(tf.shape(y)[0], tf.float32)
                    metrics[0].update_state(loss, sample_weight=count)
                    for metric in metrics[1:]:
                        metric.update_state(y, predictions)
                    return examples + count

                examples = dataset.reduce(tf.constant(0.0), train_batch)
                delta = tuple(v.read_value() - s for v, s in zip(shared_vars, shared))
                norm = tf.linalg.global_norm(delta)
                new_local = tuple(v.read_value() for v in local_vars)
                totals = collections.OrderedDict((m.name, m.result() * examples) for m in metrics)
                return delta, new_local, examples, totals, norm

            return train(shared, local, dataset)

        @tff.tensorflow.computation(shared_type, shared_type)
        def server_step(shared, mean_delta):
            return tuple(s + server_learning_rate * d for s, d in zip(shared, mean_delta))

        @tff.tensorflow.computation(np.float32)
        def one(_):
            return tf.constant(1.0)

        @tff.federated_computation(tff.FederatedType(shared_type, tff.SERVER), tff.FederatedType(local_type, tff.CLIENTS),
                                   tff.FederatedType(data_type, tff.CLIENTS))
        def next_fn(shared, local, data):
            delta, new_local, examples, totals, norms = tff.federated_map(
                client_update, (tff.federated_broadcast(shared), local, data))
            weight = examples if weighted else tff.federated_map(one, examples)
            new_shared = tff.federated_map(server_step, (shared, tff.federated_mean(delta, weight=weight)))
            return new_shared, new_local, tff.federated_sum(totals), tff.federated_sum(examples), norms

        @tff.tensorflow.computation(shared_type, local_type, data_type)
        def client_eval(shared, local, dataset):
            model = build_keras_model()
            loss_fn, metrics = build_loss(), [tf.keras.metrics.Mean(name="loss")] + build_metrics()
            shared_vars, local_vars = split(model.trainable_variables)

            @tf.function
            def evaluate(shared, local, dataset):
                for variable, value in zip(shared_vars + local_vars, list(shared) + list(local)):
                    variable.assign(value)

                def evaluate_batch(examples, batch):
                    x, y = batch
                    predictions = model(x, training=False)
                    count = tf.cast(tf.shape(y)[0], tf.float32)
                    metrics[0].update_state(loss_fn(y, predictions), sample_weight=count)
                    for metric in metrics[1:]:
                        metric.update_state(y, predictions)
                    return examples + count

                examples = dataset.reduce(tf.constant(0.0), evaluate_batch)
                return collections.OrderedDict([(m.name, m.result()) for m in metrics] + [("num_examples", examples)])

            return evaluate(shared, local, dataset)

        @tff.federated_computation(tff.FederatedType(shared_type, tff.SERVER), tff.FederatedType(local_type, tff.CLIENTS),
                                   tff.FederatedType(data_type, tff.CLIENTS))
        def evaluate_fn(shared, local, data):
            return tff.federated_map(client_eval, (tff.federated_broadcast(shared), local, data))

        self._next, self._evaluate, self._client_update = next_fn, evaluate_fn, client_update

    def initialize(self):
        weights = self.build_keras_model().get_weights()
        return self._state_from(weights)

    def _state_from(self, weights):
        shared = tuple(np.asarray(w, np.float32) for w, m in zip(weights, self.local_mask) if not m)
        local = tuple(np.asarray(w, np.float32) for w, m in zip(weights, self.local_mask) if m)
        return {"shared": shared, "local": [local] * self.num_clients}

    def set_model_weights(self, state, model_weights):
        """Every client starts from the same local weights (FedPer), the server from the shared ones."""
        return self._state_from(list(model_weights.trainable))

    def get_model_weights(self, state, client=0):
        """The shared weights with `client`'s local weights (client 0's by default)."""
        shared, local = iter(state["shared"]), iter(state["local"][client])
        trainable = [next(local) if m else next(shared) for m in self.local_mask]
        return tff.learning.models.ModelWeights(trainable=trainable, non_trainable=[])

    def next(self, state, round_data, clients):
        """One round with the given clients' datasets; only their local weights change."""
        local = [state["local"][int(c)] for c in clients]
        shared, new_local, totals, examples, norms = self._next(state["shared"], local, round_data)
        states = list(state["local"])
        for client, weights in zip(clients, new_local):
            states[int(client)] = tuple(np.asarray(w, np.float32) for w in weights)
        train = collections.OrderedDict((name, float(totals[name]) / max(float(examples), 1.0))
                                        for name in self.metric_names)
        norms = np.asarray(norms, dtype=np.float64)
        metrics = {"client_work": {"train": train},
                   "aggregator": {"update_norm_mean": float(norms.mean()), "update_norm_max": float(norms.max())}}
        return collections.namedtuple("FedPerOutput", "state metrics")(
            {"shared": tuple(np.asarray(w, np.float32) for w in shared), "local": states}, metrics)

    def evaluate(self, state, datasets, clients):
        """Per-client metrics of each client's own model (shared + its local layers) on `datasets` (batched), in order."""
        results = self._evaluate(state["shared"], [state["local"][int(c)] for c in clients], datasets)
        return [{name: float(value) for name, value in result.items()} for result in results]
