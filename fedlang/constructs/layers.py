"""Layers: one `LayerDef` per layer keyword, with every hook the compiler needs.

- `form`: the keyword and its options (checked by fedlang/check/values.py);
- `shape(args, input_shape)`: the output shape of one example, or a `ShapeError`;
- `weights(args, input_shape)`: shapes of the trainable variables, in Keras order;
- `input_dtype`: what the layer reads ("float32", or "int64" for token ids); the first layer's
  decides the dtype of the examples (element spec, client data type, data pipeline cast);
- `keras(args, index)`: the Keras layer as a `PyCall` (index: position in the model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..forms import Form, Param, forms
from ..plan import PyCall, PyRef

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
    keras: Callable[[Args, int], PyCall]
    input_dtype: str = "float32"

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


def _dense_keras(args: Args, index: int) -> PyCall:
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


def _conv2d_keras(args: Args, index: int) -> PyCall:
    return PyCall.of("tf.keras.layers.Conv2D", args["filters"], list(args["kernel"]), strides=list(args["strides"]),
                     padding=args["padding"], activation=keras_activation(args["activation"]))


def _maxpool_keras(args: Args, index: int) -> PyCall:
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


def _dropout_keras(args: Args, index: int) -> PyCall:
    # A seeded dropout keeps runs reproducible inside TFF's graphs (masks then repeat each round).
    return PyCall.of("tf.keras.layers.Dropout", args["rate"], seed=PyRef(f"SEED + {index}"))


_activation = Param("activation", "name", default="linear", choices=ACTIVATIONS, doc="activation function")

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
        keras=lambda args, index: PyCall.of("tf.keras.layers.Flatten")),
    LayerDef(
        Form("reshape", (Param("shape", "shape", doc="new shape of one example"),),
             doc="reshapes (batch dimension excluded)", example="reshape [8, 8, 1]"),
        shape=_reshape_shape, weights=_no_weights,
        keras=lambda args, index: PyCall.of("tf.keras.layers.Reshape", list(args["shape"]))),
)

LAYER_BY_NAME: dict[str, LayerDef] = {d.name: d for d in LAYER_DEFS}
LAYERS: dict[str, Form] = forms(*(d.form for d in LAYER_DEFS))
