"""The model pass: layers exist and take valid options, shapes flow, loss fits the output."""

from __future__ import annotations

import math

from .. import ast
from ..checked import LayerConfig, ModelConfig, layer_weight_shapes
from ..constructs.layers import LAYER_BY_NAME, ShapeError
from ..diagnostics import Diagnostics, Span, did_you_mean, one_of
from ..registry import BINARY_ONLY_METRICS, LAYERS, LOSSES, METRICS, Param, home_of, move_hint
from .values import INVALID, resolve, resolve_args, resolve_form

_INPUT = Param("input", "shape", doc="shape of one example, without the batch dimension")


def check_model(block: ast.ModelBlock, diags: Diagnostics) -> ModelConfig | None:
    """Type the model block and infer every layer's shape and parameter count."""
    before = len(diags.errors)
    decls: dict[type, ast.ModelItem] = {}
    layers: list[ast.Layer] = []
    for item in block.items:
        if isinstance(item, ast.Layer):
            layers.append(item)
        elif type(item) in decls:
            word = {ast.InputDecl: "input", ast.LossDecl: "loss", ast.MetricsDecl: "metrics"}[type(item)]
            diags.error("E207", f"'{word}' is declared twice in the model", _head(item.span, word),
                        f"first declared on line {decls[type(item)].span.line}")
        else:
            decls[type(item)] = item

    header = _head(block.span, "model")
    input_decl = decls.get(ast.InputDecl)
    input_shape = None
    if input_decl is None:
        diags.error("E401", f"model '{block.name.name}' has no input shape", header,
                    "add a line such as `input [64]` (the shape of one example)")
    else:
        input_shape = resolve(_INPUT, input_decl.shape, diags, "model")
    if not layers:
        diags.error("E403", f"model '{block.name.name}' has no layers", header,
                    "add layers such as `dense 10 softmax`")

    loss_name = None
    loss_decl = decls.get(ast.LossDecl)
    if loss_decl is None:
        diags.error("E402", f"model '{block.name.name}' has no loss", header,
                    "add `loss sparse_categorical_crossentropy` (or binary_crossentropy)")
    else:
        choice = resolve_form(loss_decl.loss, LOSSES, "loss", diags)
        loss_name = choice.name if choice else None

    metrics: tuple[str, ...] = ()
    metrics_decl = decls.get(ast.MetricsDecl)
    if metrics_decl is not None:
        metrics = _check_metrics(metrics_decl.metrics, loss_name, diags)

    configs = _infer_layers(layers, input_shape if input_shape is not INVALID else None, diags)
    batch_norm = next((layer for layer in layers if layer.kind.name == "batch_norm"), None)
    if batch_norm is not None:
        diags.warning("W401", "batch_norm's moving mean and variance are not trained federatedly: FedAvg "
                              "averages trainable weights only, so the server keeps them at 0 and 1 and "
                              "evaluation normalizes with those", batch_norm.kind.span,
                      "use layer_norm, which keeps no statistics across batches")
    if configs is None or loss_name is None or len(diags.errors) > before:
        return None

    output = configs[-1].output_shape
    if len(output) != 1:
        diags.error("E414", f"the model's output has shape {list(output)}; it must be a vector",
                    layers[-1].span, "end the model with `flatten` and a `dense` layer")
        return None
    activation = next((c.args.get("activation") for c in reversed(configs) if "activation" in c.args), "linear")
    last = next((layer for layer, c in zip(reversed(layers), reversed(configs)) if "activation" in c.args), layers[-1])
    if not _loss_fits(loss_name, activation, diags, _arg_span(last, "activation", None, ast.Name), loss_decl):
        return None
    return ModelConfig(
        name=block.name.name,
        input_shape=input_shape,
        layers=configs,
        loss=loss_name,
        from_logits=activation == "linear",
        metrics=metrics,
        lines=(block.span.line, block.span.end_line),
    )


def _head(span: Span, word: str) -> Span:
    return Span(span.line, span.column, span.line, span.column + len(word))


def _check_metrics(value: ast.Value, loss: str | None, diags: Diagnostics) -> tuple[str, ...]:
    items = value.items if isinstance(value, ast.ListValue) else (value,)
    names: list[str] = []
    for item in items:
        if not isinstance(item, ast.Name):
            quoted = isinstance(item, ast.String) and item.value in METRICS
            diags.error("E205", f"metrics are names such as accuracy; got {ast.describe(item)}", item.span,
                        f"names are written without quotes: {item.value}" if quoted
                        else f"available metrics: {one_of(METRICS)}")
        elif item.text not in METRICS:
            diags.error("E201", f"unknown metric '{item.text}'", item.span,
                        did_you_mean(item.text, METRICS) or f"available metrics: {one_of(METRICS)}")
        elif item.text in BINARY_ONLY_METRICS and loss == "sparse_categorical_crossentropy":
            diags.error("E421", f"metric '{item.text}' is for binary classification", item.span,
                        "use it with `loss binary_crossentropy`, or use accuracy")
        elif item.text in names:
            diags.error("E207", f"metric '{item.text}' is listed twice", item.span)
        else:
            names.append(item.text)
    return tuple(names)


def _infer_layers(layers: list[ast.Layer], shape: tuple[int, ...] | None,
                  diags: Diagnostics) -> tuple[LayerConfig, ...] | None:
    configs: list[LayerConfig] = []
    ok = True
    for layer in layers:
        form = LAYERS.get(layer.kind.name)
        where = home_of(layer.kind.name)
        if form is None and where is not None:
            home, what = where
            diags.error("E201", f"'{layer.kind.name}' is {what}, not a layer", layer.kind.span,
                        move_hint(home))
            ok = False
            continue
        if form is None:
            diags.error("E201", f"unknown layer '{layer.kind.name}'", layer.kind.span,
                        did_you_mean(layer.kind.name, LAYERS) or f"layers: {', '.join(LAYERS)}")
            ok = False
            continue
        marker = next((a for a in layer.args if a.key is None and isinstance(a.value, ast.Name)
                       and a.value.text == "local"), None)  # `dense 10 softmax local`: split personalization
        args = resolve_args(form, tuple(a for a in layer.args if a is not marker) if marker else layer.args,
                            layer.span, diags)
        if args is None:
            ok = False
            continue
        if form.name == "embedding" and configs:
            diags.error("E417", "embedding reads integer token ids, so it must be the model's first layer",
                        layer.kind.span, "move it to just after `input`, or remove it")
            ok = False
            continue
        if shape is None:
            continue
        out = _output_shape(form.name, args, shape, layer, diags)
        if out is None:
            ok = False
            shape = None
            continue
        config = LayerConfig(form.name, args, shape, out, 0, layer.span.line)
        definition = LAYER_BY_NAME[form.name]
        params = sum(math.prod(s) for s in layer_weight_shapes(config) + definition.non_trainable(args, shape))
        configs.append(LayerConfig(form.name, args, shape, out, params, layer.span.line,
                                   local=marker.value.span if marker else None))
        shape = out
    return tuple(configs) if ok and shape is not None else None


def _output_shape(kind: str, args: dict, shape: tuple[int, ...], layer: ast.Layer,
                  diags: Diagnostics) -> tuple[int, ...] | None:
    """The layer definition's shape rule; its error, if any, at the option it names."""
    out = LAYER_BY_NAME[kind].shape(args, shape)
    if isinstance(out, ShapeError):
        where = layer.kind.span if out.arg is None else _arg_span(layer, out.arg, out.position)
        diags.error(out.code, out.message, where, out.hint)
        return None
    return tuple(out)


def _loss_fits(loss: str, activation: str, diags: Diagnostics, where: Span, decl) -> bool:
    if loss == "sparse_categorical_crossentropy" and activation not in ("softmax", "linear"):
        diags.error("E420", f"sparse_categorical_crossentropy needs softmax (or linear logits) outputs, "
                            f"but the last layer uses '{activation}'", where,
                    "use softmax here" + (" (or binary_crossentropy with `dense 1 sigmoid` for two classes)"
                                          if activation == "sigmoid" else ""))
        return False
    if loss == "binary_crossentropy" and activation not in ("sigmoid", "linear"):
        diags.error("E420", f"binary_crossentropy needs a sigmoid (or linear logit) output, "
                            f"but the last layer uses '{activation}'", where,
                    "end with `dense 1 sigmoid`" + (" (or use sparse_categorical_crossentropy with softmax)"
                                                    if activation == "softmax" else ""))
        return False
    return True


def _arg_span(layer: ast.Layer, key: str, position: int | None, kind: type | None = None) -> Span:
    """Where option `key` of a layer line is written: `key = …`, the `position`-th unnamed
    argument, or the first unnamed argument of type `kind`; else the whole line."""
    unnamed = [a for a in layer.args if a.key is None]
    for arg in layer.args:
        if arg.key is not None and arg.key.name == key:
            return arg.value.span
    if kind is not None:
        for arg in unnamed:
            if isinstance(arg.value, kind):
                return arg.value.span
    elif position is not None:
        slots = [a for a in unnamed if not isinstance(a.value, ast.Name)]  # a name is the activation
        if position < len(slots):
            return slots[position].value.span
    return layer.span
