"""The data pass: a real source, a partition that fits it, and what we know of its shape.

Files the user supplies (npz, csv) are read here, with NumPy only, so a missing or malformed
file is reported by `fedlang check` at the line that names it.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

from .. import ast
from ..checked import Choice, DataConfig, DatasetFacts
from ..diagnostics import Diagnostics, Span
from ..registry import DATA_SETTINGS, EMNIST_FACTS, NATURAL_SOURCES, SKLEARN_SETS
from .clients import replay_client_sizes
from .settings import resolve_settings


def check_data(block: ast.DataBlock, base_dir: Path, seed: int, diags: Diagnostics) -> DataConfig | None:
    """Type the data block, work out the data set's facts and split it as the run will (with `seed`)."""
    before = len(diags.errors)
    s = resolve_settings("data", block.settings, DATA_SETTINGS, block.span, diags)
    if not s.valid("source"):
        return None
    source: Choice = s["source"]
    loaded = _facts(source, base_dir, _path_span(s.settings.get("source")) or source.span, diags)
    if loaded is None:
        return None
    facts, labels, client_ids = loaded

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
    else:
        num_clients = partition["clients"]

    test: Choice = s["test"]
    if test.name == "split" and source.name != "emnist":
        diags.error("E504", f"{source.name} has no test split of its own", test.span,
                    "use `test holdout(0.2)` to hold out a fraction of the examples")
        return None

    if facts.examples is not None and partition.name != "natural":
        held_out = round(test["fraction"] * facts.examples) if test.name == "holdout" else 0
        train_examples = facts.examples - held_out
        needed = num_clients * (partition["per_client"] if partition.name == "shards" else 1)
        if needed > train_examples:
            what = "shards" if partition.name == "shards" else "clients"
            diags.error("E505", f"{needed} {what} but only {train_examples} training examples",
                        partition.span, "use fewer clients" + (" or fewer shards per client"
                                                               if partition.name == "shards" else ""))
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
    client_sizes = replay_client_sizes(source, test, partition, seed, labels, client_ids, diags)
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
        path=str(resolve_data_path(source["path"], base_dir)) if "path" in source.args else None,
        client_sizes=client_sizes,
    )


def _path_span(setting: ast.Setting | None) -> Span | None:
    """The path string of `source npz("…")` / `source csv(path = "…")`, to put the caret on."""
    if setting is None or not isinstance(setting.value, ast.Call):
        return None
    args = setting.value.args
    for arg in args:
        if arg.key is not None and arg.key.name == "path":
            return arg.value.span
    unnamed = [a for a in args if a.key is None]
    return unnamed[0].value.span if unnamed else None


def _read_hint(source: Choice, exc: Exception, path: Path, base_dir: Path) -> str | None:
    if isinstance(exc, FileNotFoundError):
        return f"paths are relative to the spec's folder ({base_dir.as_posix() or '.'})"
    if path.is_dir():
        return "give the path of a file, not a folder"
    text = str(exc)
    missing = re.search(r"has no array '([^']*)' \(arrays: (.*)\)$", text)
    if source.name == "npz" and missing:
        roles = {source[r]: r for r in ("x", "y", "client") if source[r] is not None}
        role = roles.get(missing.group(1), "y")
        others = [a for a in missing.group(2).split(", ") if a not in roles and a != "none"]
        if others:
            return f'say which array to use, e.g. npz("…", {role} = "{others[0]}")'
        return f"the file has no array for {role}; save it with np.savez(path, x = …, y = …)"
    if source.name == "csv" and "not found in" in text and "column" in text:
        return 'name the column to use, e.g. csv("…", label = "target")'
    if source.name == "csv" and "expected a number" in text:
        column = re.search(r"column '([^']*)': expected a number", text)
        if column and source["client"] is None:
            return (f"every column except the label must hold numbers; if '{column.group(1)}' says which "
                    f"client an example belongs to, write csv(\"…\", client = \"{column.group(1)}\")")
        return "every column except the label (and client) column must hold numbers"
    if source.name == "csv" and " columns, found " in text:
        return "every row needs one cell per column of the header"
    return None


def resolve_data_path(path: str, base_dir: Path) -> Path:
    """Data paths in a spec are relative to the spec's own folder."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


Loaded = tuple[DatasetFacts, np.ndarray | None, np.ndarray | None]  # facts, labels, client ids


def _facts(source: Choice, base_dir: Path, span: Span, diags: Diagnostics) -> Loaded | None:
    """The data set's facts, with a file's labels and client ids (the other sources have none on hand)."""
    if source.name in SKLEARN_SETS:
        info = SKLEARN_SETS[source.name]
        return DatasetFacts(info.examples, info.features, info.classes, None,
                            f"scikit-learn {source.name.split('.')[1]}"), None, None
    if source.name == "synthetic":
        return DatasetFacts(None, (source["features"],), source["classes"], source["devices"],
                            f"Synthetic({source['alpha']:g}, {source['beta']:g})"
                            + (" iid" if source["iid"] else "")), None, None
    if source.name == "emnist":
        examples, clients, classes = EMNIST_FACTS[source["only_digits"]]
        return DatasetFacts(examples, (28, 28), classes, clients,
                            "federated EMNIST" + (" (digits)" if source["only_digits"] else "")), None, None
    return _file_facts(source, base_dir, span, diags)


def _file_facts(source: Choice, base_dir: Path, span: Span, diags: Diagnostics) -> Loaded | None:
    from ..lib import data as datalib  # NumPy only

    path = resolve_data_path(source["path"], base_dir)
    try:
        if source.name == "npz":
            x, y, clients = datalib.load_npz(str(path), source["x"], source["y"], source["client"])
        else:
            x, y, clients = datalib.load_csv(str(path), source["label"], source["client"])
    except (OSError, ValueError, csv.Error) as exc:
        diags.error("E501", f"cannot read {source.name} data: {exc}", span, _read_hint(source, exc, path, base_dir))
        return None
    if x.ndim < 2:
        diags.error("E501", f"cannot read {source.name} data: {path}: array '{source['x']}' has shape "
                            f"{list(x.shape)}; expected one row of features per example", span,
                    "save x with shape [examples, features…], e.g. x.reshape(-1, 1) for one feature")
        return None
    if len(y) and int(y.min()) < 0:
        diags.error("E502", f"labels in {path.name} must be class numbers 0, 1, 2, …; found {int(y.min())}",
                    span)
        return None
    classes = int(y.max()) + 1 if len(y) else 0
    natural = None if clients is None else len(set(clients.tolist()))
    return DatasetFacts(len(y), tuple(x.shape[1:]), max(classes, 2), natural, f"{path.name}"), y, clients
