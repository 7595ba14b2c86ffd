"""Check passes: AST → CheckedSpec, collecting every diagnostic instead of stopping at one.

Passes run per block (structure, model, data, train, evaluate), then one cross-block pass
(model against data, sampling against the population).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import ast
from ..checked import AggregationConfig, AttackConfig, CheckedSpec, DataConfig, ModelConfig, TrainConfig
from ..diagnostics import Diagnostics, Source, Span
from ..registry import ATTACK_SETTINGS, HEADER_SEED
from .data import check_data
from .privacy import check_aggregation, check_privacy
from .simulation import check_simulation, check_simulation_interplay, check_simulation_privacy
from .settings import resolve_settings
from .steps import check_aggregates, check_round
from .model import check_model
from .monitor import check_monitor
from .local_layers import check_local_layers
from .personalize import check_client_evaluation, check_personalize
from .runtime import check_runtime
from .structure import blocks_by_kind
from .train import check_evaluate, check_train
from .values import INVALID, resolve

__all__ = ["check"]


def check(spec: ast.Spec, source: Source, base_dir: Path | None = None) -> CheckedSpec:
    """Validate a parsed spec; raise SpecError with all diagnostics if anything is wrong."""
    diags = Diagnostics()
    base_dir = base_dir if base_dir is not None else Path(source.name).parent
    blocks = blocks_by_kind(spec, diags)

    name = blocks["experiment"].name.value if "experiment" in blocks else Path(source.name).stem
    seed = 0
    if "seed" in blocks:
        value = resolve(HEADER_SEED, blocks["seed"].value, diags, "seed")
        seed = 0 if value is INVALID else value
    elif spec.items:
        diags.warning("W001", "no seed given; using seed 0", Span(1, 1, 1, 2),
                      "add `seed 42` to make the choice explicit")

    model = check_model(blocks["model"], diags) if "model" in blocks else None
    data = check_data(blocks["data"], base_dir, seed, diags) if "data" in blocks else None
    train = check_train(blocks["train"], diags) if "train" in blocks else None
    evaluate = check_evaluate(blocks["evaluate"], diags) if "evaluate" in blocks else None
    aggregates = check_aggregates([i for i in spec.items if isinstance(i, ast.AggregateBlock)], diags)
    round_config = check_round(blocks["round"], aggregates, diags) if "round" in blocks else None
    declared = tuple(i.name.name for i in spec.items if isinstance(i, ast.AggregateBlock))
    aggregation = (check_aggregation(blocks["aggregation"], aggregates, diags, declared)
                   if "aggregation" in blocks else None)
    attack = check_attack(blocks["attack"], diags) if "attack" in blocks else None
    personalize = check_personalize(blocks["personalize"], diags) if "personalize" in blocks else None
    runtime = check_runtime(blocks["runtime"], diags) if "runtime" in blocks else None
    privacy = simulation = None

    if model and data and train:
        train = _check_together(model, data, train, blocks, diags)
        if "simulation" in blocks:
            simulation = check_simulation(blocks["simulation"], data, train, seed, base_dir, diags)
        _warn_unused(model, data, train, evaluate, blocks, diags)
        if round_config is not None:
            aggregation = _check_round_alone(aggregation, blocks, diags)
        if (aggregation and aggregation.aggregator) or round_config or attack:
            train = _check_custom_aggregation(train, aggregation, attack, data, blocks, diags)
        if simulation is not None:
            check_simulation_interplay(simulation, train, aggregation, attack, blocks, diags)
        # Robust aggregators and attacks have made the weighting uniform by now; DP implies it too.
        if aggregation and aggregation.secure and "privacy" not in blocks:
            _check_secure_weighting(train, blocks["train"], blocks["aggregation"], diags)
        if "privacy" in blocks and not diags.errors:
            simulated_rate = None if simulation is None else (
                lambda population: check_simulation_privacy(simulation, blocks["privacy"], population,
                                                            train.clients_per_round, blocks, diags))
            privacy = check_privacy(blocks["privacy"], data, train, aggregation, blocks["train"], diags,
                                    blocks.get("aggregation"), simulated_rate)
            if privacy is not None:
                train = dataclasses.replace(train, weighting="uniform")
        personalize = check_client_evaluation(data, evaluate, personalize, blocks, diags)
        check_local_layers(model, data, train, blocks, diags)
        if evaluate and data.test.name == "none":
            data_block: ast.DataBlock = blocks["data"]
            test = next((s for s in data_block.settings if s.key.name == "test"), None)
            where = (f"replace `test none` on line {test.span.line}" if test is not None
                     else f"add `test holdout(0.2)` to the data block (line {data_block.span.line})")
            diags.error("E701", "an evaluate block needs test data, but the data block has none",
                        _head(blocks["evaluate"].span, "evaluate"),
                        f"{where}, or remove the evaluate block")
    diags.raise_if_errors(source)
    assert model and data and train
    used = aggregation.aggregator.name if aggregation and aggregation.aggregator else None
    reachable, todo = set(), [used] if used else []
    if round_config is not None:
        todo.extend(round_config.aggregate.helpers_called)
    while todo:  # blocks the aggregator uses, directly or through other blocks
        block_name = todo.pop()
        if block_name in aggregates and block_name not in reachable:
            reachable.add(block_name)
            todo.extend(aggregates[block_name].helpers_called)
    for unused in sorted(set(aggregates) - reachable):
        block = next(i for i in spec.items if isinstance(i, ast.AggregateBlock) and i.name.name == unused)
        diags.warning("W901", f"aggregate '{unused}' is never used", block.name.span,
                      f"use it with `aggregation {{ aggregator {unused} }}`")
    checked = CheckedSpec(source.name, name, seed, model, data, train, evaluate, tuple(diags.warnings),
                          privacy=privacy, aggregation=aggregation, aggregates=aggregates, attack=attack,
                          simulation=simulation, personalize=personalize, round=round_config, runtime=runtime)
    if train.execution == "fused":
        _check_fused(checked, blocks["train"], diags)
        diags.raise_if_errors(source)
    if "monitor" in blocks:  # alerts are checked against the metrics the other blocks make the run report
        monitor = check_monitor(blocks["monitor"], checked, source, diags)
        diags.raise_if_errors(source)
        checked = dataclasses.replace(checked, monitor=monitor, warnings=tuple(diags.warnings))
    return checked


def check_attack(block: ast.AttackBlock, diags: Diagnostics) -> AttackConfig | None:
    before = len(diags.errors)
    s = resolve_settings("attack", block.settings, ATTACK_SETTINGS, block.span, diags)
    if len(diags.errors) > before:
        return None
    return AttackConfig(s["clients"], float(s["scale"]), (block.span.line, block.span.end_line))


def _check_custom_aggregation(train: TrainConfig, aggregation, attack, data: DataConfig, blocks,
                              diags: Diagnostics) -> TrainConfig:
    """Robust aggregators and simulated attackers run on unweighted FedAvg."""
    choice = aggregation.aggregator if aggregation else None
    m = train.clients_per_round
    if choice is not None and choice.name == "trimmed_mean" and int(choice["fraction"] * m) == 0:
        diags.warning("W902", f"trimmed_mean(fraction = {choice['fraction']:g}) trims nothing with {m} clients per "
                              f"round: it is the plain mean", choice.span,
                      f"trim at least one update at each end: fraction ≥ {1 / m:.2g}, or more clients per round")
    if choice is not None and choice.name in ("krum", "multi_krum") and m <= 2 * choice["byzantine"] + 2:
        diags.warning("W903", f"{choice.name} tolerates {choice['byzantine']} Byzantine clients only with more than "
                              f"{2 * choice['byzantine'] + 2} clients per round; with {m} it is not robust",
                      choice.span, f"use more than {2 * choice['byzantine'] + 2} clients per round")
    train_block: ast.TrainBlock = blocks["train"]
    what = (f"aggregator '{aggregation.aggregator.name}'" if aggregation and aggregation.aggregator
            else "the round block" if "round" in blocks else "an attack block")
    if train.algorithm != "fedavg":
        diags.error("E815", f"{what} needs `train fedavg`", _head(train_block.span, "train"),
                    "robust aggregation and simulated attacks are implemented for FedAvg")
    weighting = next((x for x in train_block.settings if x.key.name == "weighting"), None)
    if weighting is not None and train.weighting == "examples":
        diags.error("E815", f"{what} averages client updates unweighted", weighting.value.span,
                    "remove `weighting examples` (it implies `weighting uniform`)")
    if attack is not None:
        if attack.clients >= train.clients_per_round:
            span = next(x.value.span for x in blocks["attack"].settings if x.key.name == "clients")
            diags.error("E916", f"{attack.clients} attackers but only {train.clients_per_round} clients per round",
                        span, "attackers take part in every round, alongside at least one honest client")
        if "privacy" in blocks:
            diags.error("E916", "an attack block cannot be combined with a privacy block yet",
                        _head(blocks["attack"].span, "attack"), None)
    return dataclasses.replace(train, weighting="uniform")


def _check_round_alone(aggregation: AggregationConfig | None, blocks,
                       diags: Diagnostics) -> AggregationConfig | None:
    """A round block's steps are the model aggregator: nothing else may aggregate the updates.
    Returns the aggregation without a rejected aggregator (no follow-on warnings about it)."""
    if aggregation is not None and aggregation.aggregator is not None:
        diags.error("E914", "a round block already aggregates: it cannot also name an aggregator",
                    aggregation.aggregator.span, "remove `aggregator` from the aggregation block")
        aggregation = dataclasses.replace(aggregation, aggregator=None)
    elif aggregation is not None and (aggregation.secure or aggregation.quantize_bits or aggregation.sparsify):
        block: ast.AggregationBlock = blocks["aggregation"]
        key = "secure" if aggregation.secure else "compress"
        setting = next(s for s in block.settings if s.key.name == key)
        what, hint = (("secure aggregation", "sum in the round's steps with `secure_sum(u, lower = …, upper = …)`, "
                                             "and remove `secure`") if aggregation.secure else
                      ("compression", "remove `compress`: the round's steps aggregate the float32 updates"))
        diags.error("E914", f"a round block already aggregates: it cannot be combined with {what}",
                    setting.span, hint)
    if "privacy" in blocks:
        diags.error("E914", "a round block already aggregates: it cannot be combined with a privacy block yet",
                    _head(blocks["privacy"].span, "privacy"),
                    "DP replaces the model aggregator; remove the privacy block or the round block")
    return aggregation


def _check_secure_weighting(train: TrainConfig, train_block: ast.TrainBlock,
                            aggregation_block: ast.AggregationBlock, diags: Diagnostics) -> None:
    if train.weighting == "examples":
        secure = next(s for s in aggregation_block.settings if s.key.name == "secure")
        written = next((s for s in train_block.settings if s.key.name == "weighting"), None)
        if train.algorithm == "fedsgd":
            what, span = "fedsgd weights updates by example count", train_block.algorithm.span
            fix = "use `train fedavg { weighting uniform … }`: fedsgd always weights"
        elif written is not None:
            what, span = "the train block has `weighting examples`", written.value.span
            fix = "use `weighting uniform`"
        else:
            what, span = "the train block weights updates by example count (the default)", train_block.span
            span = _head(span, "train")
            fix = "add `weighting uniform` to the train block"
        diags.error("E811", f"secure aggregation (line {secure.span.line}) needs `weighting uniform`, but {what}",
                    span, f"{fix}: with example weights each client sends weight × update, so no fixed bounds "
                          "fit every client")


def _warn_unused(model: ModelConfig, data: DataConfig, train: TrainConfig, evaluate, blocks, diags) -> None:
    """Legal specs that probably do not do what their author meant."""
    if data.test.name == "holdout" and evaluate is None:
        data_block: ast.DataBlock = blocks["data"]
        test = next(s for s in data_block.settings if s.key.name == "test")
        diags.warning("W002", "the test set is held out but never used: there is no evaluate block",
                      test.span, "add `evaluate { every 5 }`, or drop `test` to train on every example")
    if data.source.name == "emnist" and not any(s.key.name == "clients_per_round" for s in blocks["train"].settings):
        diags.warning("W003", f"all {data.num_clients:,} EMNIST writers train in every round",
                      _head(blocks["train"].span, "train"), "add e.g. `clients_per_round 20`")
    if model.layers[-1].kind == "dropout":
        layer = next(i for i in reversed(blocks["model"].items) if isinstance(i, ast.Layer))
        diags.warning("W004", "dropout after the output layer perturbs the predictions themselves",
                      layer.kind.span, "move dropout before the last dense layer")


def _check_together(model: ModelConfig, data: DataConfig, train: TrainConfig, blocks, diags: Diagnostics):
    model_block: ast.ModelBlock = blocks["model"]
    input_decl = next(i for i in model_block.items if isinstance(i, ast.InputDecl))
    if model.input_shape != data.feature_shape:
        reshape = (f"; or reshape the data with `reshape {list(model.input_shape)}`"
                   if _prod(model.input_shape) == _prod(data.feature_shape) else "")
        diags.error("E510", f"the model's input {list(model.input_shape)} does not match the data's "
                            f"examples {list(data.feature_shape)} ({data.facts.description})",
                    input_decl.shape.span, f"write `input {list(data.feature_shape)}`{reshape}")
    if model.feature_dtype != "float32":
        _check_tokens(model, data, model_block, blocks["data"], diags)
    units, classes = model.output_units, data.facts.classes
    last = next(i for i in reversed(model_block.items) if isinstance(i, ast.Layer))
    if model.loss == "sparse_categorical_crossentropy" and units != classes:
        diags.error("E511", f"the last layer has {units} units but the data has {classes} classes "
                            f"({data.facts.description})",
                    _units_span(last), _dense_hint(model, classes))
    if model.loss == "binary_crossentropy":
        if classes != 2:
            diags.error("E512", f"binary_crossentropy is for 2 classes; the data has {classes}",
                        _loss_span(model_block), "use sparse_categorical_crossentropy")
        elif units != 1:
            diags.error("E511", f"binary_crossentropy needs 1 output unit; the last layer has {units}",
                        _units_span(last), "use `dense 1 sigmoid`")
    cpr = train.clients_per_round
    train_block: ast.TrainBlock = blocks["train"]
    if cpr is not None and cpr > data.num_clients:
        span = next(s.value.span for s in train_block.settings if s.key.name == "clients_per_round")
        diags.error("E520", f"clients_per_round is {cpr} but there are only {data.num_clients} clients",
                    span, f"use at most {data.num_clients}, or partition into more clients")
    return dataclasses.replace(train, clients_per_round=min(cpr or data.num_clients, data.num_clients))


def _check_tokens(model: ModelConfig, data: DataConfig, model_block: ast.ModelBlock, data_block: ast.DataBlock,
                  diags: Diagnostics) -> None:
    """An embedding first: the data's features must be integer token ids it has rows for."""
    embedding = next(i for i in model_block.items if isinstance(i, ast.Layer))
    tokens, vocab = data.facts.tokens, model.layers[0].args["vocab"]
    if tokens is None:
        diags.error("E513", f"embedding reads integer token ids, but the data's features are real numbers "
                            f"({data.facts.description})", embedding.kind.span,
                    "use a source of token ids (e.g. markov), or start the model with another layer")
    elif data.scale is not None:
        scale = next(s for s in data_block.settings if s.key.name == "scale")
        diags.error("E513", "embedding reads integer token ids, but `scale` turns them into other numbers",
                    scale.span, "remove `scale` from the data block")
    elif tokens > vocab:
        written = next((a for a in embedding.args if (a.key is None and isinstance(a.value, ast.Number))
                        or (a.key is not None and a.key.name == "vocab")), None)
        diags.error("E514", f"the data has token ids up to {tokens - 1}, but the embedding has rows for "
                            f"{vocab} ({data.facts.description})",
                    written.value.span if written else embedding.span, f"use `embedding {tokens} …`")


def _dense_hint(model: ModelConfig, classes: int) -> str:
    last = model.layers[-1]
    if last.kind != "dense":
        return f"end the model with `dense {classes} softmax`"
    activation = last.args.get("activation", "linear")
    return f"use `dense {classes}{'' if activation == 'linear' else ' ' + activation}`"


def _units_span(layer: ast.Layer) -> Span:
    """The units of a `dense` line (its first number), else the whole line."""
    if layer.kind.name == "dense":
        for arg in layer.args:
            if (arg.key is None and isinstance(arg.value, ast.Number)) or (arg.key and arg.key.name == "units"):
                return arg.value.span
    return layer.span


def _check_fused(checked: CheckedSpec, train_block: ast.TrainBlock, diags: Diagnostics) -> None:
    """`execution fused` on a spec whose run needs each client's own TFF computation."""
    from ..execution import fused_blocker

    blocker = fused_blocker(checked)
    if blocker is not None:
        setting = next(s for s in train_block.settings if s.key.name == "execution")
        diags.error("E640", f"the fused path cannot run this spec: {blocker}", setting.value.span,
                    "use `execution auto` (it falls back to the per-client path) or `execution per_client`")


def _head(span: Span, word: str) -> Span:
    return Span(span.line, span.column, span.line, span.column + len(word))


def _loss_span(block: ast.ModelBlock) -> Span:
    return next(i.loss.span for i in block.items if isinstance(i, ast.LossDecl))


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out
