"""Lowering: CheckedSpec → Plan (TFF builders, Keras layers and data steps, as literal calls)."""

from __future__ import annotations

import builtins
import keyword
import math
import os

from . import __version__
from .constructs.layers import LAYER_BY_NAME
from .constructs.operators import OPERATORS, STEP_NAMES, aggregate_call
from .constructs.partitions import PARTITION_BY_NAME, client_tests, holdout
from .constructs.sources import SOURCE_BY_NAME
from .constructs.training import AGGREGATOR_BY_NAME, OPTIMIZER_BY_SIDE
from .checked import CheckedSpec, DataConfig, ModelConfig, MonitorConfig, RuntimeConfig, TrainConfig
from .diagnostics import Source
from .execution import FUSED_GROUPS, execution_path
from .plan import AggregateCode, AggregateStep, DataSteps, Plan, PyCall, PyOp, PyRef, Section


def lower(checked: CheckedSpec, source: Source) -> Plan:
    """Decide every TFF/Keras/NumPy call of the experiment."""
    model, data, train = checked.model, checked.data, checked.train
    binary = model.loss == "binary_crossentropy"
    metric_names = ("loss",) + model.metrics
    aggregator = _aggregator(checked)
    execution = execution_path(checked)
    fused = execution[0] == "fused"
    return Plan(
        source_name=source.name,
        fedlang_version=__version__,
        experiment=checked.experiment,
        model_name=model.name,
        algorithm=train.algorithm,
        data_description=data.facts.description,
        constants=_constants(checked, source),
        imports=_imports(checked),
        helper_modules=_helper_modules(checked),
        aggregates=tuple(aggregate_code(a, source, checked.aggregates) for a in checked.aggregates.values())
        + ((aggregate_code(checked.round.aggregate, source, checked.aggregates, is_round=True),)
           if checked.round is not None else ()),
        attacked=checked.attack is not None,
        data_steps=_data_steps(data, checked.evaluate is not None, _stream(checked)),
        input_shape=tuple(model.input_shape),
        feature_dtype=model.feature_dtype,
        layers=_model_layers(model),
        loss=_loss(model),
        metrics=tuple(_metric(name, binary, model.from_logits) for name in model.metrics),
        element_spec=(
            PyCall.of("tf.TensorSpec", [None, *data.feature_shape], PyRef(f"tf.{model.feature_dtype}")),
            PyCall.of("tf.TensorSpec", [None, 1] if binary else [None],
                      PyRef("tf.float32" if binary else "tf.int64")),
        ),
        binary_labels=binary,
        process=(_fedper_process(checked) if model.has_local_layers else
                 _fused_process(train) if fused else
                 _process(train, aggregator is not None, checked.attack is not None)),
        aggregator=aggregator,
        dp_clip=checked.privacy.clip if checked.privacy is not None else None,
        dp_seeded=bool(checked.privacy and checked.privacy.seeded_noise),
        secure_bounds=bool(checked.aggregation and checked.aggregation.secure),
        robust_name=(checked.aggregation.aggregator.name
                     if checked.aggregation and checked.aggregation.aggregator else None),
        round_block=checked.round is not None,
        quantize_bits=checked.aggregation.quantize_bits if checked.aggregation else None,
        sparsify=checked.aggregation.sparsify if checked.aggregation else None,
        dp_accountant=checked.privacy.accountant if checked.privacy is not None else None,
        secure_aggregation=uses_secure_intrinsics(checked),
        communication=communication(checked),
        sections=_sections(checked, source),
        model_weights_type=model_weights_type(model),
        client_data_type=client_data_type(data, binary, model.feature_dtype, fused),
        round_signature=round_signature(model, data, binary, fused),
        metric_names=metric_names,
        simulation=_simulation(checked),
        schedules=_schedules(checked),
        monitor=_monitor(checked),
        skips_nonfinite=train.on_nonfinite == "skip",
        checks_client_data=checks_client_data(checked),
        personal=_personal(checked),
        execution=execution,
        runtime=_runtime(checked),
    )


def _fedper_process(checked: CheckedSpec) -> PyCall:
    """Layers marked `local`: FedPer (fedlang/lib/fedper.py), shared layers averaged with plain SGD."""
    train = checked.train
    return PyCall.of("FedPerProcess", PyRef("build_keras_model"), PyRef("build_loss"), PyRef("build_metrics"),
                     PyRef("ELEMENT_SPEC"), local_mask=list(checked.model.local_mask),
                     num_clients=checked.data.num_clients,
                     client_learning_rate=float(train.client_optimizer["learning_rate"]),
                     server_learning_rate=float(train.server_optimizer["learning_rate"]),
                     weighted=train.weighting == "examples")


def _personal(checked: CheckedSpec) -> dict | None:
    """Federated evaluation on per-client test sets and fine-tuning (fedlang/lib/personal.py), for the template."""
    if checked.data.per_client_test is None:
        return None
    p = checked.personalize
    return {"evaluates": checked.evaluate is not None, "local_layers": checked.model.has_local_layers,
            "finetune_optimizer": _optimizer(p.optimizer, "client") if p is not None else None}


def _model_layers(model: ModelConfig) -> tuple[PyCall, ...]:
    """Each layer's Keras call (fedlang/constructs/layers.py)."""
    return tuple(LAYER_BY_NAME[layer.kind].keras(layer.args, i, layer.input_shape)
                 for i, layer in enumerate(model.layers))


def _monitor(checked: CheckedSpec) -> MonitorConfig:
    """The monitor block's checkpoint interval and alerts (the defaults without one)."""
    return checked.monitor if checked.monitor is not None else MonitorConfig()


def _runtime(checked: CheckedSpec) -> RuntimeConfig:
    """Where the rounds run: the runtime block (or `fedlang run --workers/--worker`), else one local worker."""
    return checked.runtime if checked.runtime is not None else RuntimeConfig()


def _simulation(checked: CheckedSpec) -> dict | None:
    """What the template writes for a simulation block: its row columns and what it changes."""
    sim = checked.simulation
    if sim is None:
        return None
    columns = ["available", "selected", "completed", "dropped", "straggling"]
    if sim.config["over_select"] > 1:
        columns.append("surplus")
    columns.append("participation")
    return {"changes_steps": sim.changes_steps, "columns": tuple(columns),
            "timed": sim.config["speed"] is not None, "attributes": bool(sim.config.get("attributes"))}


# ---------------------------------------------------------------- constants and imports


def _constants(checked: CheckedSpec, source: Source) -> tuple[tuple[str, object, str | None], ...]:
    """(name, value, where it came from) of the program's constants."""
    train, data = checked.train, checked.data
    comm = communication(checked)
    seed_line = next((n for n in range(1, len(source.text.splitlines()) + 1)
                      if source.line_text(n).split()[:1] == ["seed"]), None)
    seed_origin = (f"{source.name}:{seed_line}: {source.line_text(seed_line).strip()}" if seed_line
                   else "no seed in the spec: 0")
    weighted = "+ its example-count weight" if comm["weight"] else ""
    constants: list[tuple[str, object, str | None]] = [
        ("EXPERIMENT", checked.experiment, None),
        ("SEED", checked.seed, seed_origin),
        ("ROUNDS", train.rounds, None),
        ("CLIENTS_PER_ROUND", train.clients_per_round,
         None if train.clients_per_round != data.num_clients else "all clients"),
        ("LOCAL_EPOCHS", train.local_epochs, None),
        ("BATCH_SIZE", data.batch, None),
        *([("SHUFFLE_BUFFER", data.shuffle, None)] if data.shuffle > 0 else []),
        *([("EVAL_EVERY", checked.evaluate.every, None)]  # on the central test set or the clients' own
          if checked.evaluate and (data.central_test or data.per_client_test is not None) else []),
        ("BYTES_DOWN_PER_CLIENT", comm["down"], "the float32 model, per sampled client per round"),
        ("BYTES_UP_PER_CLIENT", comm["up"], f"its update{' ' + weighted if weighted else ''}"
         + (f", {checked.aggregation.quantize_bits}-bit quantized" if checked.aggregation and checked.aggregation.quantize_bits
            else f", top {checked.aggregation.sparsify:g} of each tensor" if comm["up"] != comm["up_uncompressed"] else "")),
        # FedPer's process is not guarded (fedlang/lib/fedper.py), so it has no use for ON_NONFINITE.
        *([] if checked.model.has_local_layers else
          [("ON_NONFINITE", train.on_nonfinite, None)]),
    ]
    if checked.simulation is not None:
        constants.append(("SIMULATION", dict(checked.simulation.config), None))
    if data.per_client_test is not None:  # federated evaluation on the clients' own test sets
        constants.append(("EVAL_CLIENTS", checked.evaluate.clients if checked.evaluate else None,
                          None if checked.evaluate and checked.evaluate.clients else "all clients"))
        p = checked.personalize
        constants += [("FINETUNE_EPOCHS", p.epochs if p else None, None if p else "no personalize block"),
                      *([("FINETUNE_BATCH", p.batch, None)] if p and not checked.model.has_local_layers else []),
                      ("FINETUNE_EVERY", p.every if p else None, None)]
    if execution_path(checked)[0] == "fused":
        runtime = _runtime(checked)
        pool = (len(runtime.remote) or runtime.workers) if runtime.pooled else 1
        constants.append(("FUSED_GROUPS", max(FUSED_GROUPS, pool),
                          "clients per round are trained in this many TFF client computations"
                          + (" (one per worker of the runtime's pool)" if pool > 1 else "")))
    schedules = _schedules(checked)
    if schedules is not None:  # learning-rate schedules over rounds (fedlang/lib/schedules.py)
        constants += [("CLIENT_LEARNING_RATE", schedules["client"], None),
                      ("SERVER_LEARNING_RATE", schedules["server"], None)]
    if checked.attack is not None:
        constants += [("ATTACKERS", checked.attack.clients, None), ("ATTACK_SCALE", checked.attack.scale, None)]
    if checked.privacy is not None:
        p = checked.privacy
        solved = (f"solved by fedlang: smallest z with epsilon <= {p.epsilon_target:g} at delta {p.delta:g} "
                  f"in {train.rounds} rounds ({p.accountant.upper()})") if p.noise_solved else None
        constants += [
            ("NOISE_MULTIPLIER", p.noise_multiplier, solved),
            ("POPULATION", p.population, None),
            ("DELTA", p.delta, None),
            ("EPSILON_TARGET", p.epsilon_target, None),
            ("ON_EXCEED", p.on_exceed, None),
            ("ACCOUNTANT", p.accountant, None),
        ]
        constants.append(("SAMPLING_RATE", p.sampling_rate,  # what check accounted (fedlang/check/privacy.py)
                          "P(a client is selected) under the simulated availability" if checked.simulation is not None
                          else "CLIENTS_PER_ROUND / POPULATION (Poisson sampling)"))
    return tuple(constants)


def uses_secure_intrinsics(checked: CheckedSpec) -> bool:
    """Secure aggregation, or a step's secure_sum: the run needs TFF's (simulated) secure context."""
    return bool(checked.aggregation and checked.aggregation.secure) or any(
        "secure_sum" in a.helpers for a in checked.all_aggregates)


def _imports(checked: CheckedSpec) -> tuple[str, ...]:
    """Third-party imports the program's own code needs (helpers bring their own)."""
    imports = list(SOURCE_BY_NAME[checked.data.source.name].imports)
    privacy = checked.privacy
    if privacy is not None and (privacy.seeded_noise or (checked.aggregation and checked.aggregation.secure)):
        imports.append("import tensorflow_privacy as tfp")
    return tuple(imports)


def _federated_helpers(checked: CheckedSpec) -> tuple[str, ...]:
    """fedlang.lib.federated names the program needs (the emitter adds what they require)."""
    names: list[str] = []
    aggregation = checked.aggregation
    if checked.step_aggregate is not None:
        names.append("steps_aggregation_factory")
        for config in checked.all_aggregates:
            names.extend(config.helpers)
    elif aggregation is not None and aggregation.aggregator is not None:
        names.append(AGGREGATOR_BY_NAME[aggregation.aggregator.name].factory)
    if checked.attack is not None:
        names.append("build_attackable_fed_avg")
    if checked.privacy is not None and checked.privacy.seeded_noise:
        names.append("SeededGaussianSumQuery")
    return tuple(dict.fromkeys(names))


# ---------------------------------------------------------------- Federated Core steps → Python

# Names a step function may refer to, or that its definition needs unshadowed: Python's, the
# program's modules, and every name a lowered operator refers to (fedlang/constructs/operators.py).
_RESERVED_NAMES = frozenset(set(keyword.kwlist) | set(dir(builtins)) | STEP_NAMES
                            | {"tf", "tff", "np", "dim", "collections", "math", "os", "sys", "time"})


def value_names(config, aggregate_names) -> dict[str, str]:
    """Spec value names → distinct Python names that shadow nothing a step refers to
    (`all` → `all_`; `gathered_steps` → `gathered_steps_`; `aggregate_x` → `aggregate_x_`)."""
    taken = set(_RESERVED_NAMES) | {f"aggregate_{n}" for n in aggregate_names}
    names = [config.name, config.param] + [s.target for s in config.steps if s.target]
    mapping: dict[str, str] = {}
    for name in names:
        candidate = name
        while candidate in taken:
            candidate += "_"
        mapping[name] = candidate
        taken.add(candidate)
    return mapping


def _step_value(step, placements: dict[str, str], names: dict[str, str]):
    """The call tree of one typed step (its operator's lowering); operands are PyRefs to validated
    names, options literals."""
    x = [PyRef(names[n]) for n in step.operands]
    if step.operator == "identity":
        return x[0]
    at_server = bool(step.operands) and placements[step.operands[0]] == "SERVER"
    operator = OPERATORS.get(step.operator) or aggregate_call(step.operator)  # else another aggregate block
    return operator.lower(x, step.options, at_server)


def aggregate_code(config, source: Source, aggregate_names, is_round: bool = False) -> AggregateCode:
    """One aggregate block (or the round block's aggregation steps) as typed
    Federated Core steps (the template writes one line per step)."""
    names = value_names(config, aggregate_names)
    placements = {config.param: "CLIENTS"}
    steps = []
    for step in config.steps:
        value = _step_value(step, placements, names)
        if step.target is not None:
            placements[step.target] = step.type.placement
        steps.append(AggregateStep(names[step.target] if step.target is not None else None, value,
                                   step.type.notation()))
    return AggregateCode(config.name, names[config.name], names[config.param], tuple(steps),
                         Section(config.lines[0], config.lines[1], tuple(source.lines(*config.lines))), is_round)


def _helper_modules(checked: CheckedSpec) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The fedlang/lib functions the program copies, per module (the emitter adds what they call)."""
    data = checked.data
    source = SOURCE_BY_NAME[data.source.name]
    names = [] if checked.simulation is not None else ["sample_clients"]  # else simulate_round samples
    names += [n for module, ns in source.helpers if module == "data.py" for n in ns]
    held_out = holdout(data.test, source.streamed)
    if held_out is not None:  # holdout_split, or holdout_tails for a streamed source (each file's tail)
        names.append(held_out.call.func)
    if not source.streamed:  # a streamed source has one client per file and scales as it streams
        if data.scale in ("minmax", "standard"):
            names += ["fit_scaler", "apply_scaler"]
        names.append(PARTITION_BY_NAME[data.partition.name].split(data.partition).func)
    modules: dict[str, list[str]] = {"data.py": names}
    for module, ns in source.helpers:
        if module != "data.py":
            modules.setdefault(module, []).extend(ns)
    stream = _stream(checked)
    if stream is not None:  # its format's counter and reader only
        modules.setdefault("files.py", []).append(stream[0].func)
        modules["streams.py"] = [stream[1].func]
    federated = _federated_helpers(checked)
    if federated:
        modules["federated.py"] = list(federated)
    if checked.train.algorithm == "fedprox":
        modules["proximal.py"] = ["ProximalOptimizer"]
    fused = execution_path(checked)[0] == "fused"
    if fused:
        modules["fused.py"] = ["build_fused_process", "fused_round_data", "ClientsOneByOne"]
    if checked.aggregation is not None and checked.aggregation.sparsify is not None:
        modules["compression.py"] = ["top_k_sum_factory"]
    if checked.simulation is not None:
        modules["simulation.py"] = ["prepare_simulation", "simulate_round"]
        if checked.simulation.config.get("attributes"):
            modules["simulation.py"].append("participant_spread")
    if data.per_client_test is not None:
        modules["client_tests.py"] = ["split_client_tests"]
        if checked.evaluate is not None:
            modules["client_tests.py"] += ["sample_eval_clients", "client_metric_summary"]
            if not checked.model.has_local_layers:  # FedPer evaluates with its own computation
                modules["personal.py"] = ["build_client_evaluation", "evaluate_clients"]
            if checked.personalize is not None:
                modules["client_tests.py"].append("finetune_summary")
                modules["personal.py"].append("finetune_fn")
    if checked.model.has_local_layers:
        modules["fedper.py"] = ["FedPerProcess"]
    if _schedules(checked) is not None:
        modules["schedules.py"] = ["learning_rate_at"]
    if checked.privacy is not None:
        modules["privacy.py"] = ["epsilon_per_round", "last_round_within"]
    budget = checked.monitor is not None and any("adjust" in a for a in checked.monitor.alerts)
    if budget:  # a monitor alert's lower_rate / raise_noise (fedlang/check/budget.py)
        modules["privacy.py"].append("epsilon_per_round_phases")
    # FedPer's own process (fedlang/lib/fedper.py) is not guarded and measures its update norms itself.
    fedper = checked.model.has_local_layers  # local layers never come with a simulation block (E707)
    modules["faults.py"] = (["check_client_data"] if checks_client_data(checked) else []) + (
        [] if fedper else ["guard_round"])
    modules["tff_worker.py"] = ["use_tff_workers" if _runtime(checked).pooled else "use_local_tff_worker"] + (
        ["simulate_secure_sums"] if uses_secure_intrinsics(checked) else [])
    modules["worker_process.py"] = ["start_worker_binary"]  # tff_worker.py's workers are started with it
    alerts = checked.monitor is not None and bool(checked.monitor.alerts)
    modules["monitor.py"] = [*([] if fused or fedper else ["measure_update_norms"]),
                             "RunDirectory" if _monitor(checked).resumable else "RunLog"] + (
        ["Monitor", "describe_alert"] if alerts else []) + (["change_dp_mechanism"] if budget else [])
    return tuple((module, tuple(dict.fromkeys(ns))) for module, ns in modules.items())


def checks_client_data(checked: CheckedSpec) -> bool:
    """Whether train() checks the clients' data before round 1 (faults.py check_client_data): for a
    file the program reads again when it runs (npz, csv), data `check` could not replay (EMNIST), and
    a `scale` factor above 1 (its products may overflow float32). `check` has replayed every client
    of a bundled or generated source, whose values are finite and stay so under minmax or standard
    scaling or a factor of at most 1; streamed files (not in memory) are checked by `check` only."""
    data = checked.data
    source = SOURCE_BY_NAME[data.source.name]
    overflows = isinstance(data.scale, (int, float)) and abs(data.scale) > 1
    return not source.streamed and (source.path_option is not None or data.client_sizes is None or overflows)


def _stream(checked: CheckedSpec) -> "tuple[PyCall, PyCall] | None":
    """A streamed source's two calls on `path`: count its examples, read it with tf.data."""
    data = checked.data
    source = SOURCE_BY_NAME[data.source.name]
    return (source.stream(data.source, data.facts, tuple(data.feature_shape), checked.model.feature_dtype)
            if source.streamed else None)


def _data_steps(data: DataConfig, evaluates: bool, stream: "tuple[PyCall, PyCall] | None") -> DataSteps:
    """load_data()'s steps with their literal arguments; the template lays them out in order."""
    source, definition = data.source, SOURCE_BY_NAME[data.source.name]
    path = os.path.abspath(data.path) if data.path is not None else None  # runs from any folder
    partition = PARTITION_BY_NAME[data.partition.name]
    per_client = data.per_client_test  # each client's own test set, beside a central hold-out if any
    held_out = holdout(data.test, definition.streamed)
    test = data.test.name if per_client is None else ("holdout" if held_out is not None else "none")
    return DataSteps(
        load=definition.load(source, path),
        streamed=definition.streamed,
        stream=stream,
        test=test,
        holdout=held_out,
        scale=data.scale,
        reshape=tuple(data.reshape) if data.reshape else None,
        split=partition.split(data.partition),
        first=data.partition.args.get("first"),
        keeps_client_ids=partition.needs_client_ids,
        shuffle=data.shuffle > 0,
        evaluates=evaluates and test != "none",
        per_client=per_client,
        client_tests=client_tests(data.test),
    )


# ---------------------------------------------------------------- model


def _loss(model: ModelConfig) -> PyCall:
    cls = {"sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
           "binary_crossentropy": "BinaryCrossentropy"}[model.loss]
    return PyCall.of(f"tf.keras.losses.{cls}", **({"from_logits": True} if model.from_logits else {}))


def _metric(name: str, binary: bool, from_logits: bool) -> PyCall:
    threshold = 0.0 if from_logits else 0.5
    if name == "accuracy":
        if binary:
            return PyCall.of("tf.keras.metrics.BinaryAccuracy", name="accuracy", threshold=threshold)
        return PyCall.of("tf.keras.metrics.SparseCategoricalAccuracy", name="accuracy")
    if name == "auc":
        # 1000 thresholds (Keras default: 200) keep AUC accurate when outputs saturate near 0 or 1.
        return PyCall.of("tf.keras.metrics.AUC", name="auc", num_thresholds=1000, from_logits=from_logits)
    cls = {"precision": "Precision", "recall": "Recall"}[name]
    return PyCall.of(f"tf.keras.metrics.{cls}", name=name, thresholds=threshold)


# ---------------------------------------------------------------- training process


def schedule_tuple(rate) -> tuple | None:
    """A learning-rate schedule as fedlang/lib/schedules.py reads it (None for a plain number)."""
    from .checked import Choice
    from .registry import SCHEDULES

    if not isinstance(rate, Choice):
        return None
    return (rate.name, *(rate.args[p.name] for p in SCHEDULES[rate.name].params))


def _schedules(checked: CheckedSpec) -> dict | None:
    train = checked.train
    client = None if train.algorithm == "fedsgd" else schedule_tuple(train.client_optimizer["learning_rate"])
    server = schedule_tuple(train.server_optimizer["learning_rate"])
    return None if client is None and server is None else {"client": client, "server": server}


def _optimizer(choice, side: str) -> PyCall:
    """The TFF optimizer builder call of a client or server optimizer (fedlang/constructs/training.py)."""
    a = dict(choice.args)
    schedule = schedule_tuple(a["learning_rate"])
    if schedule is not None:  # the round-1 rate; the program sets each round's rate (set_hparams)
        from .lib.schedules import learning_rate_at

        a["learning_rate"] = float(learning_rate_at(schedule, 1))
    return OPTIMIZER_BY_SIDE[side][choice.name].build(a)


# Each algorithm's TFF builder (`build_weighted_…` / `build_unweighted_…` where TFF has both).
ALGORITHM_BUILDERS = {"fedavg": "fed_avg", "fedprox": "fed_avg", "fedsgd": "fed_sgd"}  # fedprox: see _process


def _process(train: TrainConfig, custom_aggregator: bool, attacked: bool = False) -> PyCall:
    model_fn = PyRef("model_fn")
    server = _optimizer(train.server_optimizer, "server")
    extra = {"model_aggregator": PyCall.of("build_aggregator")} if custom_aggregator else {}
    builder = ALGORITHM_BUILDERS[train.algorithm]
    if builder == "fed_sgd":
        return PyCall.of("tff.learning.algorithms.build_fed_sgd", model_fn, server_optimizer_fn=server, **extra)
    client = _optimizer(train.client_optimizer, "client")
    if attacked:
        return PyCall.of("build_attackable_fed_avg", model_fn, client_optimizer_fn=client,
                         server_optimizer_fn=server, **extra)
    prefix = "build_weighted" if train.weighting == "examples" else "build_unweighted"
    if train.algorithm == "fedprox":
        # FedAvg whose client optimizer adds mu·(w − w_global): TFF 0.87's fed_prox has the sign of
        # its proximal term reversed (fedlang/lib/proximal.py, tests/tff/test_proximal.py).
        client = PyCall.of("ProximalOptimizer", client, mu=train.mu)
        builder = "fed_avg"
    return PyCall.of(f"tff.learning.algorithms.{prefix}_{builder}", model_fn,
                     client_optimizer_fn=client, server_optimizer_fn=server, **extra)


def _fused_process(train: TrainConfig) -> PyCall:
    """The fused path's process (fedlang/lib/fused.py): TFF's FedAvg/FedSGD parts around a client work
    that trains a group of clients in one TFF client computation."""
    common = {"client_dataset_fn": PyRef("client_dataset"), "seed": PyRef("SEED")}
    server = _optimizer(train.server_optimizer, "server")
    if train.algorithm == "fedsgd":
        return PyCall.of("build_fused_process", PyRef("model_fn"), server_optimizer_fn=server, fedsgd=True, **common)
    client = _optimizer(train.client_optimizer, "client")
    if train.algorithm == "fedprox":  # as on the per-client path (see _process)
        client = PyCall.of("ProximalOptimizer", client, mu=train.mu)
    return PyCall.of("build_fused_process", PyRef("model_fn"), client_optimizer_fn=client,
                     server_optimizer_fn=server, weighting=train.weighting, **common)


def _aggregator(checked: CheckedSpec) -> PyCall | None:
    """The model aggregator for DP, secure aggregation or compression (None: TFF's default mean)."""
    privacy, aggregation = checked.privacy, checked.aggregation
    secure = aggregation.secure if aggregation else None
    if secure is not None:
        lower, upper = secure
        secure_sum = PyCall.of("tff.aggregators.SecureSumFactory", upper_bound_threshold=upper,
                               lower_bound_threshold=lower)
    if privacy is not None:
        dp = "tff.aggregators.DifferentiallyPrivateFactory"
        if privacy.adaptive is not None:
            a = privacy.adaptive
            return PyCall.of(f"{dp}.gaussian_adaptive", noise_multiplier=PyRef("NOISE_MULTIPLIER"),
                             clients_per_round=PyRef("CLIENTS_PER_ROUND"), initial_l2_norm_clip=a["initial"],
                             target_unclipped_quantile=a["quantile"], learning_rate=a["learning_rate"])
        if secure is None and not privacy.seeded_noise:
            return PyCall.of(f"{dp}.gaussian_fixed", noise_multiplier=PyRef("NOISE_MULTIPLIER"),
                             clients_per_round=PyRef("CLIENTS_PER_ROUND"), clip=privacy.clip)
        # gaussian_fixed spelled out (clip at the clients, sum, add noise to the sum at the server),
        # to secure-sum the clipped updates or to seed the noise.
        stddev = PyOp(PyRef("NOISE_MULTIPLIER"), "*", privacy.clip)
        sum_query = (PyCall.of("SeededGaussianSumQuery", l2_norm_clip=privacy.clip, stddev=stddev, seed=PyRef("SEED"))
                     if privacy.seeded_noise else
                     PyCall.of("tfp.GaussianSumQuery", l2_norm_clip=privacy.clip, stddev=stddev))
        query = PyCall.of("tfp.NormalizedQuery", sum_query, denominator=PyCall.of("float", PyRef("CLIENTS_PER_ROUND")))
        if secure is None:
            return PyCall.of(dp, query)
        return PyCall.of(dp, query, record_aggregation_factory=secure_sum)
    if secure is not None:
        return PyCall.of("tff.aggregators.UnweightedMeanFactory", value_sum_factory=secure_sum)
    steps = checked.step_aggregate
    if steps is not None:  # the round block's or an aggregate block's steps
        return PyCall.of("steps_aggregation_factory", PyRef(f"aggregate_{steps.name}"))
    if aggregation is not None and aggregation.aggregator is not None:
        choice = aggregation.aggregator
        return AGGREGATOR_BY_NAME[choice.name].build(dict(choice.args))
    if aggregation is not None and aggregation.quantize_bits is not None:
        encoded = PyCall.of("tff.aggregators.EncodedSumFactory.quantize_above_threshold",
                            quantization_bits=aggregation.quantize_bits, threshold=aggregation.quantize_threshold)
        mean = "MeanFactory" if checked.train.weighting == "examples" else "UnweightedMeanFactory"
        return PyCall.of(f"tff.aggregators.{mean}", value_sum_factory=encoded)
    if aggregation is not None and aggregation.sparsify is not None:  # fedlang/lib/compression.py
        encoded = PyCall.of("top_k_sum_factory", aggregation.sparsify, threshold=aggregation.quantize_threshold)
        mean = "MeanFactory" if checked.train.weighting == "examples" else "UnweightedMeanFactory"
        return PyCall.of(f"tff.aggregators.{mean}", value_sum_factory=encoded)
    return None


# ---------------------------------------------------------------- communication


def communication(checked: CheckedSpec) -> dict[str, int]:
    """Bytes each sampled client receives and sends per round, with and without compression.

    Down: the float32 model (non-trainable variables included). Up: the float32 update (plus a float32 weight when example-weighted);
    with `quantize(bits)`, each quantized tensor costs ceil(n·bits/8) bytes plus 8 for its range;
    with `topk(fraction)`, 8·ceil(fraction·n) (the kept entries' float32 values and int32 indices).
    """
    # Layers marked `local` never leave their client: neither broadcast nor sent back (FedPer).
    shapes = [s for s, local in zip(checked.model.weight_shapes, checked.model.local_mask) if not local]
    sizes = [math.prod(s) for s in shapes]
    weight = 4 if checked.train.weighting == "examples" and checked.privacy is None else 0
    down = 4 * (sum(sizes) + sum(math.prod(s) for s in checked.model.non_trainable_shapes))
    up_plain = 4 * sum(sizes) + weight
    up = up_plain
    aggregation = checked.aggregation
    if aggregation is not None and aggregation.quantize_bits is not None:
        bits, threshold = aggregation.quantize_bits, aggregation.quantize_threshold
        up = weight + sum(math.ceil(n * bits / 8) + 8 if n > threshold else 4 * n for n in sizes)
    if aggregation is not None and aggregation.sparsify is not None:  # top-k: float32 value + int32 index each
        fraction, threshold = aggregation.sparsify, aggregation.quantize_threshold
        up = weight + sum(8 * max(1, math.ceil(fraction * n - 1e-9)) if n > threshold else 4 * n for n in sizes)
    return {"down": down, "up": up, "up_uncompressed": up_plain, "weight": weight}


# ---------------------------------------------------------------- types, in TFF's notation


def _tensor(shape, dtype: str = "float32") -> str:
    return dtype + "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def model_weights_type(model: ModelConfig) -> str:
    trainable = ",".join(_tensor(s) for s in model.weight_shapes)
    non_trainable = ",".join(_tensor(s) for s in model.non_trainable_shapes)
    return f"<trainable=<{trainable}>,non_trainable=<{non_trainable}>>"


def client_data_type(data: DataConfig, binary: bool, feature_dtype: str = "float32", fused: bool = False) -> str:
    """A TFF client's data: a sequence of batches; on the fused path a group of clients, one element
    with their examples back to back and each client's size, shuffle seed and steps."""
    x = _tensor([None, *data.feature_shape], feature_dtype)
    y = "float32[?,1]" if binary else "int64[?]"
    if fused:
        return f"{{<x={x},y={y},sizes=int64[?],seeds=int64[?],steps=int64[?]>*}}@CLIENTS"
    return f"{{<{x},{y}>*}}@CLIENTS"


def round_signature(model: ModelConfig, data: DataConfig, binary: bool, fused: bool = False) -> str:
    metrics = ",".join(f"{m}=float32" for m in model.metrics + ("loss",))  # TFF's order
    return (f"(<model={model_weights_type(model)}@SERVER,client_data={client_data_type(data, binary, model.feature_dtype, fused)}> -> "
            f"<model={model_weights_type(model)}@SERVER,metrics=<{metrics}>@SERVER>)")


# ---------------------------------------------------------------- source comments


def _sections(checked: CheckedSpec, source: Source) -> dict[str, Section]:
    def section(lines) -> Section:
        first, last = lines
        return Section(first, last, tuple(source.lines(first, last)))

    out = {"model": section(checked.model.lines), "data": section(checked.data.lines),
           "train": section(checked.train.lines)}
    for name in ("evaluate", "privacy", "aggregation", "attack", "runtime"):
        config = getattr(checked, name)
        if config is not None and config.lines:
            out[name] = section(config.lines)
    return out
