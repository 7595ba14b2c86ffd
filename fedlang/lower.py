"""Lowering: CheckedSpec → Plan (TFF builders, Keras layers and data steps, as literal calls)."""

from __future__ import annotations

from . import __version__
from .checked import CheckedSpec, DataConfig, ModelConfig, TrainConfig
from .diagnostics import Source
from .plan import Plan, PyCall, PyRef, Section

_ACTIVATION_OR_NONE = lambda a: None if a == "linear" else a  # noqa: E731


def lower(checked: CheckedSpec, source: Source) -> Plan:
    """Decide every TFF/Keras/NumPy call of the experiment."""
    model, data, train = checked.model, checked.data, checked.train
    binary = model.loss == "binary_crossentropy"
    metric_names = ("loss",) + model.metrics
    return Plan(
        checked=checked,
        source_name=source.name,
        fedlang_version=__version__,
        constants=_constants(checked),
        imports=_imports(data),
        stdlib_imports=tuple(sorted(_STDLIB_IMPORTS + (("csv",) if data.source.name == "csv" else ()))),
        helpers=_helpers(data),
        data_steps=_data_steps(data),
        layers=tuple(_layer(layer, i) for i, layer in enumerate(model.layers)),
        loss=_loss(model),
        metrics=tuple(_metric(name, binary, model.from_logits) for name in model.metrics),
        element_spec=(
            PyCall.of("tf.TensorSpec", [None, *data.feature_shape], PyRef("tf.float32")),
            PyCall.of("tf.TensorSpec", [None, 1] if binary else [None],
                      PyRef("tf.float32" if binary else "tf.int64")),
        ),
        binary_labels=binary,
        process=_process(train),
        sections=_sections(checked, source),
        model_weights_type=model_weights_type(model),
        client_data_type=client_data_type(data, binary),
        round_signature=round_signature(model, data, binary),
        metric_names=metric_names,
    )


# ---------------------------------------------------------------- constants and imports


def _constants(checked: CheckedSpec) -> tuple[tuple[str, object], ...]:
    train, data = checked.train, checked.data
    return (
        ("EXPERIMENT", checked.experiment),
        ("SEED", checked.seed),
        ("ROUNDS", train.rounds),
        ("CLIENTS_PER_ROUND", train.clients_per_round),
        ("LOCAL_EPOCHS", train.local_epochs),
        ("BATCH_SIZE", data.batch),
        ("SHUFFLE_BUFFER", data.shuffle),
        ("EVAL_EVERY", checked.evaluate.every if checked.evaluate else 0),
    )


# Used by the copied helpers (fedlang/lib/data.py and tff_worker.py) and the program itself.
_STDLIB_IMPORTS = ("argparse", "atexit", "ctypes", "math", "os", "signal", "socket", "subprocess", "sys",
                   "threading", "time")


def _imports(data: DataConfig) -> tuple[str, ...]:
    imports = []
    if data.source.name.startswith("sklearn."):
        imports.append("import sklearn.datasets")
    return tuple(imports)


def _helpers(data: DataConfig) -> tuple[str, ...]:
    names = ["sample_clients"]
    source = data.source.name
    if source == "synthetic":
        names.append("synthetic_fedprox")
    elif source in ("npz", "csv"):
        names.append(f"load_{source}")
    if data.test.name == "holdout":
        names.append("holdout_split")
    if data.scale in ("minmax", "standard"):
        names += ["fit_scaler", "apply_scaler"]
    names.append(f"partition_{data.partition.name}")
    return tuple(names)


def _data_steps(data: DataConfig) -> dict[str, object]:
    """Literal arguments of each data step; the template lays the steps out in order."""
    source = data.source
    steps: dict[str, object] = {"source": source.name, "args": dict(source.args)}
    if source.name.startswith("sklearn."):
        from .registry import SKLEARN_SETS

        steps["loader"] = "sklearn.datasets." + SKLEARN_SETS[source.name].loader
    if data.path is not None:
        steps["path"] = data.path
    steps["test"] = data.test.name
    steps["test_fraction"] = data.test.args.get("fraction")
    steps["scale"] = data.scale
    steps["reshape"] = list(data.reshape) if data.reshape else None
    steps["partition"] = data.partition.name
    steps["partition_args"] = dict(data.partition.args)
    return steps


# ---------------------------------------------------------------- model


def _layer(layer, index: int) -> PyCall:
    a = layer.args
    if layer.kind == "dense":
        kwargs = {"activation": _ACTIVATION_OR_NONE(a["activation"])}
        if not a["use_bias"]:
            kwargs["use_bias"] = False
        return PyCall.of("tf.keras.layers.Dense", a["units"], **kwargs)
    if layer.kind == "dropout":
        # A seeded dropout keeps runs reproducible inside TFF's graphs (masks then repeat each round).
        return PyCall.of("tf.keras.layers.Dropout", a["rate"], seed=PyRef(f"SEED + {index}"))
    if layer.kind == "conv2d":
        return PyCall.of("tf.keras.layers.Conv2D", a["filters"], list(a["kernel"]), strides=list(a["strides"]),
                         padding=a["padding"], activation=_ACTIVATION_OR_NONE(a["activation"]))
    if layer.kind == "maxpool":
        strides = list(a["strides"]) if a["strides"] else None
        return PyCall.of("tf.keras.layers.MaxPool2D", list(a["pool"]), strides=strides, padding=a["padding"])
    if layer.kind == "flatten":
        return PyCall.of("tf.keras.layers.Flatten")
    if layer.kind == "reshape":
        return PyCall.of("tf.keras.layers.Reshape", list(a["shape"]))
    raise AssertionError(layer.kind)


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
        return PyCall.of("tf.keras.metrics.AUC", name="auc", from_logits=from_logits)
    cls = {"precision": "Precision", "recall": "Recall"}[name]
    return PyCall.of(f"tf.keras.metrics.{cls}", name=name, thresholds=threshold)


# ---------------------------------------------------------------- training process


def _optimizer(choice) -> PyCall:
    a = dict(choice.args)
    if choice.name == "sgd":
        momentum = a.pop("momentum")
        return PyCall.of("tff.learning.optimizers.build_sgdm", learning_rate=a["learning_rate"],
                         **({"momentum": momentum} if momentum else {}))
    return PyCall.of(f"tff.learning.optimizers.build_{choice.name}", **a)


def _process(train: TrainConfig) -> PyCall:
    model_fn = PyRef("model_fn")
    server = _optimizer(train.server_optimizer)
    weighted = train.weighting == "examples"
    if train.algorithm == "fedsgd":
        return PyCall.of("tff.learning.algorithms.build_fed_sgd", model_fn, server_optimizer_fn=server)
    client = _optimizer(train.client_optimizer)
    prefix = "build_weighted" if weighted else "build_unweighted"
    if train.algorithm == "fedprox":
        return PyCall.of(f"tff.learning.algorithms.{prefix}_fed_prox", model_fn, proximal_strength=train.mu,
                         client_optimizer_fn=client, server_optimizer_fn=server)
    return PyCall.of(f"tff.learning.algorithms.{prefix}_fed_avg", model_fn,
                     client_optimizer_fn=client, server_optimizer_fn=server)


# ---------------------------------------------------------------- types, in TFF's notation


def _tensor(shape) -> str:
    return "float32[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def model_weights_type(model: ModelConfig) -> str:
    trainable = ",".join(_tensor(s) for s in model.weight_shapes)
    return f"<trainable=<{trainable}>,non_trainable=<>>"


def client_data_type(data: DataConfig, binary: bool) -> str:
    x = _tensor([None, *data.feature_shape])
    y = "float32[?,1]" if binary else "int64[?]"
    return f"{{<{x},{y}>*}}@CLIENTS"


def round_signature(model: ModelConfig, data: DataConfig, binary: bool) -> str:
    metrics = ",".join(f"{m}=float32" for m in sorted(("loss",) + model.metrics))
    return (f"(<model={model_weights_type(model)}@SERVER,client_data={client_data_type(data, binary)}> -> "
            f"<model={model_weights_type(model)}@SERVER,metrics=<{metrics}>@SERVER>)")


# ---------------------------------------------------------------- source comments


def _sections(checked: CheckedSpec, source: Source) -> dict[str, Section]:
    def section(lines) -> Section:
        first, last = lines
        return Section(first, last, tuple(source.lines(first, last)))

    out = {"model": section(checked.model.lines), "data": section(checked.data.lines),
           "train": section(checked.train.lines)}
    if checked.evaluate and checked.evaluate.lines:
        out["evaluate"] = section(checked.evaluate.lines)
    return out
