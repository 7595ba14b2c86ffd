"""The data pass: a real source, a partition that fits it, and what we know of its shape.

Files the user supplies (npz, csv) are read here, with NumPy only, so a missing or malformed
file is reported by `fedlang check` at the line that names it.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import ast
from ..checked import Choice, DataConfig, DatasetFacts
from ..diagnostics import Diagnostics, Span
from ..constructs.partitions import PARTITION_BY_NAME, holdout
from ..constructs.sources import SOURCE_BY_NAME, SourceError, SourceFacts
from ..registry import DATA_SETTINGS
from .clients import replay_client_sizes
from .settings import resolve_settings


def check_data(block: ast.DataBlock, base_dir: Path, seed: int, diags: Diagnostics) -> DataConfig | None:
    """Type the data block, work out the data set's facts and split it as the run will (with `seed`)."""
    before = len(diags.errors)
    s = resolve_settings("data", block.settings, DATA_SETTINGS, block.span, diags)
    if not s.valid("source"):
        return None
    source: Choice = s["source"]
    path_option = SOURCE_BY_NAME[source.name].path_option
    loaded = _facts(source, base_dir, _path_span(s.settings.get("source"), path_option) or source.span, diags)
    if loaded is None:
        return None
    facts, labels, client_ids = loaded.facts, loaded.labels, loaded.client_ids

    partition: Choice | None = s["partition"]
    if partition is None and s.valid("partition"):
        if facts.natural_clients is None:
            diags.error("E209", "the data block needs 'partition'", s.block_span,
                        f"{source.name} has no client ids: add e.g. `partition dirichlet(alpha = 0.5, clients = 20)`")
            return None
        partition = Choice("natural", {}, s.block_span)
    if not s.valid("partition", "test", "scale", "reshape", "batch", "shuffle"):
        return None

    if partition.name == "natural":
        if facts.natural_clients is None:
            column = " (give the client-id column: client = \"…\")" if source.name in ("csv", "npz") else ""
            diags.error("E503", f"{source.name} has no client ids, so it has no natural partition{column}",
                        partition.span, "use e.g. `partition iid(clients = 10)` or `dirichlet(alpha = 0.5, clients = 10)`")
            return None
        num_clients = facts.natural_clients
        first = partition.args.get("first")
        if first is not None and first > num_clients:
            diags.error("E509", f"natural(first = {first}) keeps more clients than {source.name} has ({num_clients})",
                        partition.span, f"use first = {num_clients} or fewer, or drop `first`")
            return None
        num_clients = first or num_clients
    else:
        num_clients = partition["clients"]

    definition = SOURCE_BY_NAME[source.name]
    if definition.streamed and partition.name != "natural":
        diags.error("E509", f"{source.name} makes one client per file, so it has only the natural partition",
                    partition.span, "use `partition natural` (the default) or `natural(first = N)`")
        return None
    if definition.streamed and s["scale"] in ("minmax", "standard"):
        diags.error("E509", f"{source.name} streams each client's file, so `scale {s['scale']}` (fitted on all the "
                            f"training data) is not available", s.value_span("scale"),
                    "scale by a factor, e.g. `scale 0.0625`, or scale the files")
        return None
    test: Choice = s["test"]
    if test.name == "split" and not SOURCE_BY_NAME[source.name].test_split:
        diags.error("E504", f"{source.name} has no test split of its own", test.span,
                    "use `test holdout(0.2)` to hold out a fraction of the examples")
        return None

    if test.name == "per_client" and definition.streamed:
        diags.error("E531", f"{source.name} streams each client's file: per-client test sets are not available "
                            "for it yet", test.span, "use `test holdout(0.2)` (the tail of each client's file)")
        return None
    needed = PARTITION_BY_NAME[partition.name].examples_needed(partition)
    if facts.examples is not None and needed is not None:
        central = holdout(test, definition.streamed)
        held_out = round(central.fraction * facts.examples) if central is not None else 0
        train_examples = facts.examples - held_out
        count, what, hint = needed
        if count > train_examples:
            diags.error("E505", f"{count} {what} but only {train_examples} training examples", partition.span, hint)
            return None

    reshape = s["reshape"]
    if reshape is not None and math.prod(reshape) != math.prod(facts.feature_shape):
        diags.error("E413", f"cannot reshape examples of shape {list(facts.feature_shape)} "
                            f"({math.prod(facts.feature_shape)} values) to {list(reshape)} "
                            f"({math.prod(reshape)} values)", s.value_span("reshape"),
                    f"the product of the new shape must be {math.prod(facts.feature_shape)}")
        return None
    if len(diags.errors) > before:
        return None
    client_test_sizes: list[int] = []
    client_sizes = replay_client_sizes(source, test, partition, seed, labels, client_ids, diags, client_test_sizes)
    if len(diags.errors) > before:
        return None
    return DataConfig(
        name=block.name.name if block.name else "data",
        source=source,
        partition=partition,
        test=test,
        scale=s["scale"],
        reshape=reshape,
        batch=s["batch"],
        shuffle=s["shuffle"],
        facts=facts,
        num_clients=num_clients,
        lines=(block.span.line, block.span.end_line),
        path=(str(resolve_data_path(source[SOURCE_BY_NAME[source.name].path_option], base_dir))
              if SOURCE_BY_NAME[source.name].path_option else None),
        client_sizes=client_sizes,
        client_test_sizes=tuple(client_test_sizes) if client_test_sizes else None,
    )


def _path_span(setting: ast.Setting | None, option: str | None) -> Span | None:
    """The path string of `source npz("…")` / `source csv(path = "…")`, to put the caret on."""
    if setting is None or not isinstance(setting.value, ast.Call) or option is None:
        return None
    args = setting.value.args
    for arg in args:
        if arg.key is not None and arg.key.name == option:
            return arg.value.span
    unnamed = [a for a in args if a.key is None]
    return unnamed[0].value.span if unnamed else None


def resolve_data_path(path: str, base_dir: Path) -> Path:
    """Data paths in a spec are relative to the spec's own folder; `~` and `~user` are home folders."""
    p = Path(path)
    try:
        p = p.expanduser()
    except RuntimeError:  # `~name/…` for a user this machine does not have: left as written
        pass
    return p if p.is_absolute() else base_dir / p


def _facts(source: Choice, base_dir: Path, span: Span, diags: Diagnostics) -> SourceFacts | None:
    """The data set's facts (the source definition's hook), its error at the path if any."""
    definition = SOURCE_BY_NAME[source.name]
    path = resolve_data_path(source[definition.path_option], base_dir) if definition.path_option else None
    found = definition.facts(source, path, base_dir)
    if isinstance(found, SourceError):
        diags.error(found.code, found.message, span, found.hint)
        return None
    return found
