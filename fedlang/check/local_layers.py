"""Split personalization: layers marked `local` keep their weights on each client (FedPer).

What FedPer (fedlang/lib/fedper.py) implements: FedAvg of the shared layers with plain SGD on
clients and server; each client's local layers start from the same initial weights and then
stay with it across rounds. Everything that assumes one global model, or that wraps TFF's
learning process, is an error at its token, with the `local` marker's line in the message.
"""

from __future__ import annotations

from .. import ast
from ..checked import Choice, DataConfig, ModelConfig, TrainConfig
from ..diagnostics import Diagnostics, Span


def check_local_layers(model: ModelConfig, data: DataConfig, train: TrainConfig, blocks: dict,
                       diags: Diagnostics) -> None:
    marked = [layer for layer in model.layers if layer.local is not None]
    if not marked:
        return
    first = marked[0].local
    line = f"local layers (line {first.line})"
    for layer in marked:
        if layer.params == 0:
            diags.error("E708", f"{layer.kind} has no weights: marking it local changes nothing", layer.local,
                        "mark the layers with weights (dense, conv2d, …) that each client should keep")
    if all(layer.local is not None for layer in model.layers if layer.params):
        diags.error("E708", "every layer with weights is local: nothing would be federated", first,
                    "keep at least the first layers federated (FedPer shares the feature extractor)")
    if data.central_test and "evaluate" in blocks:
        test = next(s for s in blocks["data"].settings if s.key.name == "test")
        diags.error("E706", f"{line} make a model per client, but central evaluation needs a single global model",
                    test.value.span, "use `test per_client(0.2)`: each client is evaluated with its own local layers")
    for keyword in ("privacy", "aggregation", "attack", "simulation", "round", "personalize"):
        if keyword in blocks:
            block = blocks[keyword]
            diags.error("E707", f"{line} cannot be combined with a {keyword} block yet",
                        Span(block.span.line, block.span.column, block.span.line, block.span.column + len(keyword)),
                        "FedPer runs plain FedAvg of the shared layers; remove the block or the `local` markers")
    train_block: ast.TrainBlock = blocks["train"]
    if train.algorithm != "fedavg":
        diags.error("E707", f"{line} need `train fedavg` (FedPer averages the shared layers' updates)",
                    train_block.algorithm.span, "use `train fedavg { … }`")
    if train.on_nonfinite == "skip":
        setting = next(s for s in train_block.settings if s.key.name == "on_nonfinite")
        diags.error("E707", f"{line} cannot redo a round without its non-finite clients (on_nonfinite skip)",
                    setting.value.span, "use `on_nonfinite stop` (the default)")
    for key, choice in (("client_optimizer", train.client_optimizer), ("server_optimizer", train.server_optimizer)):
        if _plain_sgd(choice):
            continue
        setting = next((s for s in train_block.settings if s.key.name == key), None)
        diags.error("E707", f"{line} train with plain SGD (a constant learning rate, no momentum); "
                            f"{key} is {choice.text()}", setting.value.span if setting else train_block.algorithm.span,
                    f"use `{key} sgd(learning_rate = …)`")


def _plain_sgd(choice: Choice) -> bool:
    return (choice.name == "sgd" and not choice.args.get("momentum")
            and isinstance(choice["learning_rate"], (int, float)))
