"""The personalize pass, and how per-client test data, federated evaluation and fine-tuning combine.

`test per_client(f)` gives every client its own test set (replayed in check/clients.py);
an evaluate block then also evaluates the global model on the clients' test sets (TFF's
personalization evaluation, fedlang/lib/personal.py), and a personalize block fine-tunes it on
each client before evaluating again.
"""

from __future__ import annotations

from .. import ast
from ..checked import DataConfig, EvaluateConfig, PersonalizeConfig
from ..diagnostics import Diagnostics, Span
from ..registry import PERSONALIZE_SETTINGS
from .settings import resolve_settings


def check_personalize(block: ast.PersonalizeBlock, diags: Diagnostics) -> PersonalizeConfig | None:
    """Type the block's settings (the data's batch is filled in by check_client_evaluation)."""
    before = len(diags.errors)
    s = resolve_settings("personalize", block.settings, PERSONALIZE_SETTINGS, block.span, diags)
    if len(diags.errors) > before:
        return None
    return PersonalizeConfig(epochs=s["epochs"], optimizer=s["optimizer"], batch=s["batch"] or 0,
                             every=s["every"], lines=(block.span.line, block.span.end_line))


def check_client_evaluation(data: DataConfig, evaluate: EvaluateConfig | None,
                            personalize: PersonalizeConfig | None, blocks: dict, diags: Diagnostics,
                            ) -> PersonalizeConfig | None:
    """Errors for what cannot combine; returns the personalize config with its batch filled in."""
    per_client = data.per_client_test is not None
    if personalize is not None and not per_client:
        diags.error("E702", "a personalize block evaluates on each client's own test set, but the data block has "
                            "no per-client test data", _head(blocks["personalize"].span, "personalize"),
                    _add_per_client_hint(blocks["data"]))
    if personalize is not None and evaluate is None and per_client:
        diags.error("E703", "a personalize block needs an evaluate block: fine-tuned models are compared with the "
                            "global model at its federated evaluations", _head(blocks["personalize"].span,
                                                                                "personalize"),
                    "add `evaluate { every 5 }`")
    if evaluate is not None and evaluate.clients is not None:
        setting = next(x for x in blocks["evaluate"].settings if x.key.name == "clients")
        if not per_client:
            diags.error("E704", "`clients` samples clients for federated evaluation, which needs per-client test data",
                        setting.key.span, _add_per_client_hint(blocks["data"]) + ", or remove `clients`")
        elif evaluate.clients > data.num_clients:
            diags.error("E704", f"federated evaluation samples {evaluate.clients} clients but there are only "
                                f"{data.num_clients}", setting.value.span,
                        f"use at most {data.num_clients}, or remove `clients` to evaluate on every client")
    if personalize is not None and personalize.every is not None and evaluate is not None \
            and personalize.every % evaluate.every:
        setting = next(x for x in blocks["personalize"].settings if x.key.name == "every")
        diags.error("E705", f"fine-tuning every {personalize.every} rounds, but the clients are evaluated every "
                            f"{evaluate.every}", setting.value.span,
                    f"use a multiple of {evaluate.every} (fine-tuning is measured at federated evaluations)")
    if personalize is not None and not personalize.batch:
        import dataclasses

        personalize = dataclasses.replace(personalize, batch=data.batch)
    return personalize


def describe_client_tests(data: DataConfig) -> str | None:
    """`check`'s line about per-client test sets: their sizes (min, median, max)."""
    if data.per_client_test is None:
        return None
    sizes = data.client_test_sizes
    if not sizes:
        return f"each client keeps {data.per_client_test:g} of its examples (sizes known at run time)"
    ordered = sorted(sizes)
    median = ordered[len(ordered) // 2] if len(ordered) % 2 else (ordered[len(ordered) // 2 - 1]
                                                                 + ordered[len(ordered) // 2]) / 2
    return (f"each client keeps {data.per_client_test:g} of its examples: {sum(sizes):,} in all, per client "
            f"min {ordered[0]:,}, median {median:,g}, max {ordered[-1]:,}")


def _add_per_client_hint(data_block: ast.DataBlock) -> str:
    test = next((s for s in data_block.settings if s.key.name == "test"), None)
    if test is not None:
        return f"replace `test …` on line {test.span.line} with e.g. `test per_client(0.2)`"
    return f"add `test per_client(0.2)` to the data block (line {data_block.span.line})"


def _head(span: Span, word: str) -> Span:
    return Span(span.line, span.column, span.line, span.column + len(word))


def client_round_metrics(checked) -> dict[str, str]:
    """The columns a federated evaluation (and fine-tuning) adds to a round's row, for the monitor."""
    names = ("loss",) + tuple(checked.model.metrics)
    every = checked.evaluate.every
    out: dict[str, str] = {}
    prefixes = [("fed_", "the global model on the clients' own test sets")]
    if checked.personalize is not None:
        prefixes.append(("ft_", "the fine-tuned models on the clients' own test sets"))
    for prefix, what in prefixes:
        for m in names:
            out[f"{prefix}{m}"] = f"{m} of {what}, example-weighted mean (every {every} rounds)"
            out[f"{prefix}{m}_uniform"] = f"{m} of {what}, mean over clients"
            for q in ("p10", "p50", "p90"):
                out[f"{prefix}{m}_{q}"] = f"{m} of {what}, {q[1:]}th percentile over clients"
            out[f"{prefix}{m}_worst10"] = f"{m} of {what}, mean of the worst 10% of clients"
    if checked.personalize is not None:
        for key in ("mean", "p10", "p50", "p90"):
            out[f"ft_gain_{key}"] = f"gain of fine-tuning per client ({key})"
        out["ft_worse"] = "clients whose fine-tuned model is worse than the global model"
        out["ft_better"] = "clients whose fine-tuned model is better than the global model"
    return out


def describe_evaluation(checked) -> list[tuple[str, str]]:
    """`check`'s lines about federated evaluation and fine-tuning."""
    data, evaluate, p = checked.data, checked.evaluate, checked.personalize
    if evaluate is None or data.per_client_test is None:
        return []
    every = f"every {evaluate.every} round{'s' if evaluate.every > 1 else ''} (and after the last)"
    who = (f"a seeded sample of {evaluate.clients} of {data.num_clients} clients" if evaluate.clients
           and evaluate.clients < data.num_clients else f"all {data.num_clients} clients")
    how = ("each with its own local layers (FedPer)" if checked.model.has_local_layers
           else "TFF personalization evaluation")
    rows = [("federated eval", f"{every} on {who}' own test sets ({how}): "
                               "example-weighted and client mean, p10/p50/p90, worst decile")]
    if p is not None:
        when = f"every {p.every} rounds and after the last" if p.every else "after the last round"
        rows.append(("fine-tuning", f"{p.epochs} local epoch{'s' if p.epochs > 1 else ''}, batch {p.batch}, "
                                    f"{p.optimizer.text()}, {when}, on each evaluated client's training data; "
                                    "the global model is not changed"))
    return rows


def describe_local_layers(model) -> str:
    """Which layers stay on the clients (FedPer) and how many parameters that keeps out of the bytes."""
    local = [layer for layer in model.layers if layer.local is not None]
    kept = sum(layer.params for layer in local)
    lines = ", ".join(f"line {layer.line} ({layer.kind})" for layer in local)
    return (f"{lines}: {kept:,} parameters stay on each client (FedPer), never broadcast, aggregated or counted in "
            f"the bytes; {model.param_count - kept:,} are federated")


def fedper_round_signature(model, client_data_type: str) -> str:
    """A FedPer round in TFF's notation: shared weights at the server, each client's local weights at the clients."""
    from ..checked import layer_weight_shapes

    def tensors(local: bool) -> str:
        return ",".join("float32[" + ",".join(map(str, shape)) + "]" for layer in model.layers
                        if (layer.local is not None) == local for shape in layer_weight_shapes(layer))

    shared, local = f"<{tensors(False)}>", f"<{tensors(True)}>"
    metrics = ",".join(f"{m}=float32" for m in ("loss",) + model.metrics)
    return (f"(<shared={shared}@SERVER,local={{{local}}}@CLIENTS,client_data={client_data_type}> -> "
            f"<shared={shared}@SERVER,local={{{local}}}@CLIENTS,metrics=<{metrics}>@SERVER>)")
