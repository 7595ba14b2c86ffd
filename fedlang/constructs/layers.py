"""Layers: one `LayerDef` per layer keyword, with every hook the compiler needs.

- `form`: the keyword and its options (checked by fedlang/check/values.py);
- `shape(args, input_shape)`: the output shape of one example, or a `ShapeError`;
- `weights(args, input_shape)`: shapes of the trainable variables, in Keras order;
- `non_trainable(args, input_shape)`: shapes of the non-trainable variables (batch_norm's moving
  statistics), in Keras order;
- `input_dtype`: what the layer reads ("float32", or "int64" for token ids); the first layer's
  decides the dtype of the examples (element spec, client data type, data pipeline cast);
- `keras(args, index, input_shape)`: the Keras layer as a `PyCall` (index: position in the model).

tests/tff/test_layer_rules_vs_keras.py holds every shape and weights hook to Keras's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..forms import Form, Param, forms
from ..plan import PyCall, PyOp, PyRef

Shape = tuple[int, ...]
Args = Mapping[str, Any]

ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "gelu", "swish", "softplus")
PADDINGS = ("valid", "same")


@dataclass(frozen=True)
class ShapeError:
    """A layer that cannot take its input. The caret goes on option `arg` (its `position`-th
    unnamed argument when written without a key), or on the layer keyword when `arg` is None."""

    code: str
    message: str
    hint: str | None = None
    arg: str | None = None
    position: int | None = None


@dataclass(frozen=True)
class LayerDef:
    form: Form
    shape: Callable[[Args, Shape], "Shape | ShapeError"]
    weights: Callable[[Args, Shape], list[Shape]]
    keras: Callable[[Args, int, Shape], PyCall]
    input_dtype: str = "float32"
    non_trainable: Callable[[Args, Shape], list[Shape]] = lambda args, shape: []

    @property
    def name(self) -> str:
        return self.form.name


def keras_activation(name: str) -> str | None:
    return None if name == "linear" else name


def _no_weights(args: Args, shape: Shape) -> list[Shape]:
    return []


def _same_shape(args: Args, shape: Shape) -> Shape:
    return shape


# ---------------------------------------------------------------- dense


def _dense_shape(args: Args, shape: Shape) -> "Shape | ShapeError":
    if len(shape) != 1:
        return ShapeError("E410", f"dense expects a vector, but its input has shape {list(shape)}",
                          "add a `flatten` layer before it")
    return (args["units"],)


def _dense_weights(args: Args, shape: Shape) -> list[Shape]:
    return [(shape[-1], args["units"])] + ([(args["units"],)] if args["use_bias"] else [])


def _dense_keras(args: Args, index: int, shape: Shape) -> PyCall:
    kwargs: dict[str, Any] = {"activation": keras_activation(args["activation"])}
    if not args["use_bias"]:
        kwargs["use_bias"] = False
    return PyCall.of("tf.keras.layers.Dense", args["units"], **kwargs)


# ---------------------------------------------------------------- 2-d windows (conv2d, maxpool)


def _window_shape(kind: str, window_key: str, channels: Callable[[Args, Shape], int]):
    """Output shape of a 2-d sliding window over [height, width, channels]."""
    def rule(args: Args, shape: Shape) -> "Shape | ShapeError":
        if len(shape) != 3:
            return ShapeError("E411", f"{kind} expects [height, width, channels], but its input has shape "
                                      f"{list(shape)}",
                              "reshape the examples first, e.g. `reshape [8, 8, 1]` in the data block "
                              "or a `reshape [8, 8, 1]` layer")
        window = args[window_key]
        strides = args["strides"] or window
        dims = [math.ceil(size / s) if args["padding"] == "same" else (size - k) // s + 1
                for size, k, s in zip(shape[:2], window, strides)]
        if min(dims) < 1:
            position = 1 if window_key == "kernel" else 0  # conv2d's first unnamed argument is its filters
            return ShapeError("E412", f"{kind} window {list(window)} is larger than its input {list(shape[:2])}",
                              f"use a {window_key} of at most {list(shape[:2])}, or padding = same",
                              arg=window_key, position=position)
        return (dims[0], dims[1], channels(args, shape))
    return rule


def _conv2d_weights(args: Args, shape: Shape) -> list[Shape]:
    kh, kw = args["kernel"]
    return [(kh, kw, shape[-1], args["filters"]), (args["filters"],)]


def _conv2d_keras(args: Args, index: int, shape: Shape) -> PyCall:
    return PyCall.of("tf.keras.layers.Conv2D", args["filters"], list(args["kernel"]), strides=list(args["strides"]),
                     padding=args["padding"], activation=keras_activation(args["activation"]))


def _maxpool_keras(args: Args, index: int, shape: Shape) -> PyCall:
    strides = list(args["strides"]) if args["strides"] else None
    return PyCall.of("tf.keras.layers.MaxPool2D", list(args["pool"]), strides=strides, padding=args["padding"])


# ---------------------------------------------------------------- reshaping


def _reshape_shape(args: Args, shape: Shape) -> "Shape | ShapeError":
    new = tuple(args["shape"])
    if math.prod(new) != math.prod(shape):
        return ShapeError("E413", f"cannot reshape {list(shape)} ({math.prod(shape)} values) to "
                                  f"{list(new)} ({math.prod(new)} values)",
                          f"the product of the new shape must be {math.prod(shape)}", arg="shape", position=0)
    return new


def _dropout_keras(args: Args, index: int, shape: Shape) -> PyCall:
    # A seeded dropout keeps runs reproducible inside TFF's graphs (masks then repeat each round).
    return PyCall.of("tf.keras.layers.Dropout", args["rate"], seed=PyOp(PyRef("SEED"), "+", index))


_activation = Param("activation", "name", default="linear", choices=ACTIVATIONS, doc="activation function")


# ---------------------------------------------------------------- sequences, 1-d windows, normalization


def _windowed(size: int, window: int, stride: int, padding: str) -> int:
    return math.ceil(size / stride) if padding == "same" else (size - window) // stride + 1


def _sequence_input(kind: str, shape: Shape) -> ShapeError | None:
    if len(shape) == 2:
        return None
    return ShapeError("E415", f"{kind} expects a sequence [steps, features], but its input has shape {list(shape)}",
                      "start with `embedding` for token ids, reshape to [steps, features], or set "
                      "`return_sequences = true` on a recurrent layer before it")


def _recurrent_shape(kind: str):
    def rule(args: Args, shape: Shape) -> "Shape | ShapeError":
        return _sequence_input(kind, shape) or (
            (shape[0], args["units"]) if args["return_sequences"] else (args["units"],))
    return rule


def _recurrent_keras(cls: str):
    def lower(args: Args, index: int, shape: Shape) -> PyCall:
        return PyCall.of(f"tf.keras.layers.{cls}", args["units"],
                         **({"return_sequences": True} if args["return_sequences"] else {}))
    return lower


def _lstm_weights(args: Args, shape: Shape) -> list[Shape]:
    units = args["units"]
    return [(shape[-1], 4 * units), (units, 4 * units), (4 * units,)]


def _gru_weights(args: Args, shape: Shape) -> list[Shape]:
    units = args["units"]  # Keras's default reset_after=True keeps two bias rows
    return [(shape[-1], 3 * units), (units, 3 * units), (2, 3 * units)]


def _conv1d_shape(args: Args, shape: Shape) -> "Shape | ShapeError":
    if (error := _sequence_input("conv1d", shape)) is not None:
        return error
    steps = _windowed(shape[0], args["kernel"], args["strides"], args["padding"])
    if steps < 1:
        return ShapeError("E412", f"conv1d kernel {args['kernel']} is longer than its input ({shape[0]} steps)",
                          f"use a kernel of at most {shape[0]}, or padding = same", arg="kernel", position=1)
    return (steps, args["filters"])


def _conv1d_keras(args: Args, index: int, shape: Shape) -> PyCall:
    return PyCall.of("tf.keras.layers.Conv1D", args["filters"], args["kernel"], strides=args["strides"],
                     padding=args["padding"], activation=keras_activation(args["activation"]))


def _maxpool1d_shape(args: Args, shape: Shape) -> "Shape | ShapeError":
    if (error := _sequence_input("maxpool1d", shape)) is not None:
        return error
    steps = _windowed(shape[0], args["pool"], args["strides"] or args["pool"], args["padding"])
    if steps < 1:
        return ShapeError("E412", f"maxpool1d window {args['pool']} is longer than its input ({shape[0]} steps)",
                          f"use a pool of at most {shape[0]}, or padding = same", arg="pool", position=0)
    return (steps, shape[1])


def _avgpool_keras(args: Args, index: int, shape: Shape) -> PyCall:
    strides = list(args["strides"]) if args["strides"] else None
    return PyCall.of("tf.keras.layers.AveragePooling2D", list(args["pool"]), strides=strides, padding=args["padding"])


def _global_avgpool_shape(args: Args, shape: Shape) -> "Shape | ShapeError":
    if len(shape) not in (2, 3):
        return ShapeError("E416", f"global_avgpool averages over steps [steps, channels] or positions "
                                  f"[height, width, channels]; its input has shape {list(shape)}",
                          "use it after conv1d, conv2d or a recurrent layer with return_sequences = true")
    return (shape[-1],)


def _global_avgpool_keras(args: Args, index: int, shape: Shape) -> PyCall:
    return PyCall.of("tf.keras.layers.GlobalAveragePooling1D" if len(shape) == 2
                     else "tf.keras.layers.GlobalAveragePooling2D")


def _last_axis_pair(args: Args, shape: Shape) -> list[Shape]:
    return [(shape[-1],), (shape[-1],)]  # gamma, beta (layer_norm, batch_norm); moving mean, variance


_return_sequences = Param("return_sequences", "bool", default=False,
                          doc="output every step [steps, units] instead of the last [units]")

SEQUENCE_LAYER_DEFS: tuple[LayerDef, ...] = (
    LayerDef(
        Form("embedding", (Param("vocab", "int", low=1, doc="number of token ids (ids are 0 … vocab−1)"),
                           Param("dim", "int", low=1, doc="length of each token's vector")),
             doc="token ids [steps] → vectors [steps, dim]; the first layer, on integer features",
             example="embedding 20 8"),
        shape=lambda args, shape: (*shape, args["dim"]), weights=lambda args, shape: [(args["vocab"], args["dim"])],
        keras=lambda args, index, shape: PyCall.of("tf.keras.layers.Embedding", args["vocab"], args["dim"]),
        input_dtype="int64"),
    LayerDef(
        Form("lstm", (Param("units", "int", low=1, doc="state size"), _return_sequences),
             doc="LSTM over a sequence [steps, features]", example="lstm 32"),
        shape=_recurrent_shape("lstm"), weights=_lstm_weights, keras=_recurrent_keras("LSTM")),
    LayerDef(
        Form("gru", (Param("units", "int", low=1, doc="state size"), _return_sequences),
             doc="GRU over a sequence [steps, features]", example="gru 32 return_sequences = true"),
        shape=_recurrent_shape("gru"), weights=_gru_weights, keras=_recurrent_keras("GRU")),
    LayerDef(
        Form("conv1d", (Param("filters", "int", low=1, doc="output channels"), _activation,
                        Param("kernel", "int", default=3, low=1, doc="window length"),
                        Param("strides", "int", default=1, low=1, doc="step"),
                        Param("padding", "name", default="valid", choices=PADDINGS, doc="valid or same")),
             doc="1-d convolution over [steps, channels]", example="conv1d 16 relu kernel = 3"),
        shape=_conv1d_shape, weights=lambda args, shape: [(args["kernel"], shape[-1], args["filters"]),
                                                          (args["filters"],)],
        keras=_conv1d_keras),
    LayerDef(
        Form("maxpool1d", (Param("pool", "int", default=2, low=1, doc="window length"),
                           Param("strides", "int", default=None, low=1, doc="step (default: the pool length)"),
                           Param("padding", "name", default="valid", choices=PADDINGS, doc="valid or same")),
             doc="1-d max pooling over [steps, channels]", example="maxpool1d 2"),
        shape=_maxpool1d_shape, weights=_no_weights,
        keras=lambda args, index, shape: PyCall.of("tf.keras.layers.MaxPool1D", args["pool"], strides=args["strides"],
                                                   padding=args["padding"])),
    LayerDef(
        Form("avgpool", (Param("pool", "size", default=2, doc="window size, n or [h, w]"),
                         Param("strides", "size", default=None, doc="step, n or [h, w] (default: the pool size)"),
                         Param("padding", "name", default="valid", choices=PADDINGS, doc="valid or same")),
             doc="2-d average pooling", example="avgpool 2"),
        shape=_window_shape("avgpool", "pool", lambda args, shape: shape[2]), weights=_no_weights,
        keras=_avgpool_keras),
    LayerDef(
        Form("global_avgpool", (), doc="the mean over steps [steps, channels] or positions [height, width, "
                                       "channels] → [channels]", example="global_avgpool"),
        shape=_global_avgpool_shape, weights=_no_weights, keras=_global_avgpool_keras),
    LayerDef(
        Form("layer_norm", (), doc="layer normalization over the last axis (learned scale and offset)",
             example="layer_norm"),
        shape=_same_shape, weights=_last_axis_pair,
        keras=lambda args, index, shape: PyCall.of("tf.keras.layers.LayerNormalization")),
    LayerDef(
        Form("batch_norm", (Param("momentum", "float", default=0.99, low=0, high=1, high_open=True,
                                  doc="decay of the moving mean and variance"),),
             doc="batch normalization over the last axis; its moving statistics stay on the clients (W401)",
             example="batch_norm"),
        shape=_same_shape, weights=_last_axis_pair, non_trainable=_last_axis_pair,
        keras=lambda args, index, shape: PyCall.of("tf.keras.layers.BatchNormalization", momentum=args["momentum"])),
    LayerDef(
        Form("activation", (Param("activation", "name", choices=ACTIVATIONS, doc="activation function"),),
             doc="an activation on its own (e.g. after a normalization)", example="activation relu"),
        shape=_same_shape, weights=_no_weights,
        keras=lambda args, index, shape: PyCall.of("tf.keras.layers.Activation", args["activation"])),
)

LAYER_DEFS: tuple[LayerDef, ...] = (
    LayerDef(
        Form("dense", (Param("units", "int", low=1, doc="output units"), _activation,
                       Param("use_bias", "bool", default=True, doc="add a bias vector")),
             doc="fully connected layer", example="dense 128 relu"),
        shape=_dense_shape, weights=_dense_weights, keras=_dense_keras),
    LayerDef(
        Form("dropout", (Param("rate", "float", low=0, high=1, high_open=True, doc="fraction dropped"),),
             doc="dropout (active during local training only)", example="dropout 0.2"),
        shape=_same_shape, weights=_no_weights, keras=_dropout_keras),
    LayerDef(
        Form("conv2d", (Param("filters", "int", low=1, doc="output channels"), _activation,
                        Param("kernel", "size", default=3, doc="window size, n or [h, w]"),
                        Param("strides", "size", default=1, doc="step, n or [h, w]"),
                        Param("padding", "name", default="valid", choices=PADDINGS, doc="valid or same")),
             doc="2-d convolution over [height, width, channels]", example="conv2d 32 relu kernel = 3"),
        shape=_window_shape("conv2d", "kernel", lambda args, shape: args["filters"]),
        weights=_conv2d_weights, keras=_conv2d_keras),
    LayerDef(
        Form("maxpool", (Param("pool", "size", default=2, doc="window size, n or [h, w]"),
                         Param("strides", "size", default=None, doc="step, n or [h, w] (default: the pool size)"),
                         Param("padding", "name", default="valid", choices=PADDINGS, doc="valid or same")),
             doc="2-d max pooling", example="maxpool 2"),
        shape=_window_shape("maxpool", "pool", lambda args, shape: shape[2]),
        weights=_no_weights, keras=_maxpool_keras),
    LayerDef(
        Form("flatten", (), doc="flattens to a vector", example="flatten"),
        shape=lambda args, shape: (math.prod(shape),), weights=_no_weights,
        keras=lambda args, index, shape: PyCall.of("tf.keras.layers.Flatten")),
    LayerDef(
        Form("reshape", (Param("shape", "shape", doc="new shape of one example"),),
             doc="reshapes (batch dimension excluded)", example="reshape [8, 8, 1]"),
        shape=_reshape_shape, weights=_no_weights,
        keras=lambda args, index, shape: PyCall.of("tf.keras.layers.Reshape", list(args["shape"]))),
    *SEQUENCE_LAYER_DEFS,
)

LAYER_BY_NAME: dict[str, LayerDef] = {d.name: d for d in LAYER_DEFS}
LAYERS: dict[str, Form] = forms(*(d.form for d in LAYER_DEFS))
