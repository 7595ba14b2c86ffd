"""The fused simulation path: a round's clients trained back to back inside one TFF client computation.

TFF's per-client path runs one client computation per sampled client, and pays ~10 ms of executor
overhead for each, whatever its data. Here the sampled clients of a round are cut into a few
groups; each group is ONE TFF client (one `federated_map` call of `group_update`) that loops over
its simulated clients inside one TensorFlow graph, doing for each exactly what TFF's FedAvg
(`build_model_delta_client_work`) or FedSGD client work does:

    reset the model to the broadcast weights, start a fresh client optimizer state,
    run the local steps over the client's own tf.data pipeline (same shuffle seed),
    delta = broadcast − trained (zeroed, weight 0, metrics dropped, if not finite),
    accumulate weight · delta, the weight, the training metrics and the delta's norm.

The group reports its weighted mean delta with its total weight, so TFF's weighted `MeanFactory`
over the groups gives exactly the mean over the clients; distributor, aggregator and the server
optimizer (finalizer) are TFF's own, composed with `compose_learning_process`. The numbers are
the per-client path's to float rounding (tests/tff/test_fused.py).

Like the other modules of fedlang/lib, this is copied verbatim into the programs fedlang
generates. ``REQUIRES`` at the bottom maps each name to the helpers of this module it uses.
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


def fused_round_data(clients, sampled, seeds, steps=None, groups=1):
    """This round's sampled clients as `groups` TFF client values (a list of one-element datasets).

    Each element holds a group's examples back to back (`x`, `y`) and, per client, its example
    count (`sizes`), shuffle seed (`seeds`) and local steps (`steps`, -1: all its batches)."""
    data = []
    if len(sampled) == 0:
        return data
    for part in np.array_split(np.arange(len(sampled)), min(groups, len(sampled))):
        xs = [clients[sampled[j]][0] for j in part]
        ys = [clients[sampled[j]][1] for j in part]
        data.append(tf.data.Dataset.from_tensors(collections.OrderedDict(
            x=np.concatenate(xs), y=np.concatenate(ys),
            sizes=np.array([len(y) for y in ys], np.int64),
            seeds=np.array([seeds[j] for j in part], np.int64),
            steps=np.array([-1 if steps is None else steps[j] for j in part], np.int64))))
    return data


class ClientsOneByOne:
    """A round's sampled clients as single-client groups, built when iterated (fedlang/lib/faults.py's
    guard_round runs suspect clients alone): `process.next(state, [group])` trains just that client."""

    def __init__(self, clients, sampled, seeds, steps=None):
        self.clients, self.sampled, self.seeds, self.steps = clients, sampled, seeds, steps

    def __len__(self):
        return len(self.sampled)

    def __iter__(self):
        for j in range(len(self.sampled)):
            steps = None if self.steps is None else self.steps[j:j + 1]
            yield fused_round_data(self.clients, self.sampled[j:j + 1], self.seeds[j:j + 1], steps)[0]


def _group_spec(input_spec):
    """The element type of a group's data set, for a model whose batches are `input_spec`."""
    x_spec, y_spec = input_spec
    ids = tf.TensorSpec([None], tf.int64)
    return collections.OrderedDict(x=x_spec, y=y_spec, sizes=ids, seeds=ids, steps=ids)


def _build_group_training(model, optimizer, weighting, client_dataset_fn, fedsgd):
    """A tf.function training one group's clients one after the other (see the module docstring).

    The group's batches are one tf.data stream (each client's own pipeline, tagged with its index,
    chained by `flat_map`), reduced once: a batch whose index differs from the previous one starts
    a client. One stream instead of a data set per client keeps the per-client cost near the cost
    of its steps (a data set built per client in a loop cost ~35 ms each on 2 cores)."""
    weights = tff.learning.models.ModelWeights.from_model(model)
    specs = tuple(tf.TensorSpec(v.shape, v.dtype) for v in tf.nest.flatten(weights.trainable))

    def trainable():
        return tuple(v.read_value() for v in tf.nest.flatten(weights.trainable))

    @tf.function
    def train_group(hparams, initial_weights, group_data):
        group = group_data.get_single_element()
        offsets = tf.concat([[0], tf.cumsum(group["sizes"])], 0)
        initial = tuple(tf.nest.flatten(initial_weights.trainable))

        def client_batches(i):
            start, stop = offsets[i], offsets[i + 1]
            dataset = client_dataset_fn(group["x"][start:stop], group["y"][start:stop], group["seeds"][i],
                                        group["steps"][i])
            return dataset.map(lambda x, y: (x, y, i))

        def start_client():
            """Reset to the broadcast model; a fresh optimizer (FedAvg) or gradient sum (FedSGD)."""
            with tf.control_dependencies([v.assign(w) for v, w in zip(tf.nest.flatten(weights),
                                                                      tf.nest.flatten(initial_weights))]):
                metrics = tuple(tf.identity(v) for v in model.local_variables)  # to drop a non-finite client's
            if fedsgd:
                return tf.constant(0.0), tuple(tf.zeros_like(w) for w in initial), metrics
            return tf.constant(0.0), optimizer.set_hparams(optimizer.initialize(specs), hparams), metrics

        def finish_client(examples, inner, metrics, totals):
            """Add the client that just ended to the totals, as TFF's client work would report it."""
            update_sum, weight_sum, norm_sum, norm_max = totals
            if fedsgd:
                update = tuple(g / examples for g in inner)  # the mean gradient
            else:
                update = tuple(a - b for a, b in zip(initial, trainable()))
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(u)) for u in update])
            update = tuple(tf.where(finite, u, tf.zeros_like(u)) for u in update)  # TFF zeroes such updates
            weight = tf.constant(1.0) if weighting == "uniform" else tf.where(finite, examples, 0.0)
            restored = [] if fedsgd else [v.assign(tf.where(finite, v, m))
                                          for v, m in zip(model.local_variables, metrics)]
            norm = tf.linalg.global_norm(list(update))
            with tf.control_dependencies(restored):
                return (tuple(s + weight * u for s, u in zip(update_sum, update)), weight_sum + weight,
                        norm_sum + norm, tf.maximum(norm_max, norm))

        def train_step(batch, examples, inner):
            if fedsgd:
                with tf.GradientTape() as tape:
                    output = model.forward_pass(batch)
                gradients = tape.gradient(output.loss, weights.trainable,
                                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
                n = tf.cast(output.num_examples, tf.float32)
                return examples + n, tuple(s + n * g for s, g in zip(inner, tf.nest.flatten(gradients)))
            with tf.GradientTape() as tape:
                output = model.forward_pass(batch, training=True)
            gradients = tape.gradient(output.loss, weights.trainable)
            inner, updated = optimizer.next(inner, trainable(), tuple(tf.nest.flatten(gradients)))
            assigned = [v.assign(w) for v, w in zip(tf.nest.flatten(weights.trainable), updated)]
            n = (tf.shape(output.predictions)[0] if output.num_examples is None else output.num_examples)
            with tf.control_dependencies(assigned):
                return examples + tf.cast(n, tf.float32), inner

        def step(state, batch):
            x, y, i = batch
            client, examples, inner, metrics, totals = state
            starts = tf.not_equal(i, client)
            totals = tf.cond(tf.logical_and(starts, client >= 0),
                             lambda: finish_client(examples, inner, metrics, totals), lambda: totals)
            examples, inner, metrics = tf.cond(starts, start_client, lambda: (examples, inner, metrics))
            examples, inner = train_step((x, y), examples, inner)
            return i, examples, inner, metrics, totals

        clients = tf.size(group["sizes"], out_type=tf.int64)
        batches = tf.data.Dataset.range(clients).flat_map(client_batches)
        zeros = (tuple(tf.zeros_like(w) for w in initial), tf.constant(0.0), tf.constant(0.0), tf.constant(0.0))
        examples, inner, metrics = start_client()
        client, examples, inner, metrics, totals = batches.reduce(
            (tf.constant(-1, tf.int64), examples, inner, metrics, zeros), step)
        totals = tf.cond(client >= 0, lambda: finish_client(examples, inner, metrics, totals), lambda: totals)
        update_sum, weight_sum, norm_sum, norm_max = totals
        # A client without a batch sends a zero update with weight 0 (uniform weighting: 1) and norm 0.
        if weighting == "uniform":
            weight_sum = tf.cast(clients, tf.float32)
        mean_update = tf.nest.pack_sequence_as(initial_weights.trainable,
                                               [tf.math.divide_no_nan(s, weight_sum) for s in update_sum])
        result = tff.learning.templates.ClientResult(update=mean_update, update_weight=weight_sum)
        norms = collections.OrderedDict(norm_sum=norm_sum, norm_max=norm_max, count=tf.cast(clients, tf.float32))
        return result, model.report_local_unfinalized_metrics(), norms

    return train_group


def build_fused_client_work(model_fn, optimizer, weighting, client_dataset_fn, seed, fedsgd=False):
    """A TFF ClientWorkProcess whose every client is a group of simulated clients (`fused_round_data`).

    Its state and hyperparameters are the client optimizer's, as in TFF's model-delta client work
    (so `set_hparams` schedules work alike); measurements: `train` (TFF's sum_then_finalize of the
    clients' metrics), `update_norm_mean` and `update_norm_max` (L2 norms of the client updates)."""
    with tf.Graph().as_default():
        model = model_fn()
        metrics_aggregation_fn = tff.learning.metrics.sum_then_finalize(model.metric_finalizers())
    weights_type = tff.learning.models.weights_type_from_model(model)
    data_type = tff.SequenceType(tff.types.tensorflow_to_type(_group_spec(model.input_spec)))
    initial_hparams = (collections.OrderedDict() if fedsgd else
                       optimizer.get_hparams(optimizer.initialize(tf.TensorSpec((), tf.float32))))

    @tff.federated_computation
    def init_fn():
        return tff.federated_value(initial_hparams, tff.SERVER)

    state_type = init_fn.type_signature.result.member

    @tff.tensorflow.computation(state_type)
    def get_hparams_fn(state):
        return state

    @tff.tensorflow.computation(state_type, state_type)
    def set_hparams_fn(state, hparams):
        del state
        return hparams

    @tff.tensorflow.computation(state_type, weights_type, data_type)
    def group_update(hparams, initial_weights, group_data):
        # The per-client program builds each client's pipeline after tf.keras.utils.set_random_seed(SEED):
        # the same graph seed gives every client the same shuffle order here.
        tf.compat.v1.set_random_seed(seed)
        train_group = _build_group_training(model_fn(), optimizer, weighting, client_dataset_fn, fedsgd)
        return train_group(hparams, initial_weights, group_data)

    @tff.tensorflow.computation(np.float32, np.float32)
    def divide(total, count):
        return tf.math.divide_no_nan(total, count)

    @tff.tensorflow.computation(np.float32, np.float32)
    def maximum(a, b):
        return tf.maximum(a, b)

    @tff.tensorflow.computation(np.float32)
    def identity(x):
        return x

    @tff.federated_computation(init_fn.type_signature.result, tff.FederatedType(weights_type, tff.CLIENTS),
                               tff.FederatedType(data_type, tff.CLIENTS))
    def next_fn(state, weights, client_data):
        result, model_outputs, norms = tff.federated_map(
            group_update, (tff.federated_broadcast(state), weights, client_data))
        measurements = tff.federated_zip(collections.OrderedDict(
            train=metrics_aggregation_fn(model_outputs),
            update_norm_mean=tff.federated_map(divide, (tff.federated_sum(norms.norm_sum),
                                                        tff.federated_sum(norms.count))),
            update_norm_max=tff.federated_aggregate(norms.norm_max, np.float32(0.0), maximum, maximum, identity)))
        return tff.templates.MeasuredProcessOutput(state, result, measurements)

    return tff.learning.templates.ClientWorkProcess(init_fn, next_fn, get_hparams_fn=get_hparams_fn,
                                                    set_hparams_fn=set_hparams_fn)


def build_fused_process(model_fn, client_optimizer_fn=None, server_optimizer_fn=None, *, weighting="examples",
                        client_dataset_fn, seed, fedsgd=False):
    """FedAvg (or, with `fedsgd`, FedSGD) whose client work trains groups of clients (see above):
    TFF's broadcast, weighted mean and server-optimizer finalizer around `build_fused_client_work`."""
    @tff.tensorflow.computation()
    def initial_model_weights_fn():
        return tff.learning.models.ModelWeights.from_model(model_fn())

    weights_type = initial_model_weights_fn.type_signature.result
    client_work = build_fused_client_work(model_fn, client_optimizer_fn, weighting, client_dataset_fn, seed, fedsgd)
    aggregator = tff.aggregators.MeanFactory().create(weights_type.trainable, tff.TensorType(np.float32))
    finalizer = tff.learning.templates.build_apply_optimizer_finalizer(server_optimizer_fn, weights_type)
    return tff.learning.templates.compose_learning_process(
        initial_model_weights_fn, tff.learning.templates.build_broadcast_process(weights_type), client_work,
        aggregator, finalizer)


REQUIRES: dict[str, tuple[str, ...]] = {
    "fused_round_data": (),
    "ClientsOneByOne": ("fused_round_data",),
    "_group_spec": (),
    "_build_group_training": (),
    "build_fused_client_work": ("_group_spec", "_build_group_training"),
    "build_fused_process": ("build_fused_client_work",),
}
