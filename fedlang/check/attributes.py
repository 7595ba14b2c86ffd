"""Client attributes of a simulation block: what each client is (device type, region, clinic).

    attribute device(phone = 0.6, tablet = 0.3, laptop = 0.1)   # declared shares, drawn per client
    attribute column("clinic")                                   # read per client from a CSV column

Each becomes a tuple of the simulation config (fedlang/lib/simulation.py): a declared one
``(name, "categorical", values, weights)``, a column ``(name, "column", values, codes)`` with one
code per client, found by replaying the run's hold-out and natural partition. Every round's row
then reports ``<name>_<value>`` counts, ``<name>_coverage`` and ``<name>_entropy``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np

from .. import ast
from ..checked import DataConfig
from ..diagnostics import Diagnostics, did_you_mean
from ..lib import data as datalib
from ..constructs.partitions import holdout
from .clients import evaluate
from .data import resolve_data_path

MAX_VALUES = 64  # one count column per value: a column with thousands of values is not an attribute
# Row keys the run already writes, and prefixes of its metric names: an attribute's keys must not shadow them.
RESERVED_KEYS = {"round", "clients", "seconds", "bytes_down", "bytes_up", "available", "selected", "completed",
                 "dropped", "straggling", "surplus", "participation", "sim_seconds", "abandoned", "epsilon",
                 "epsilon_remaining", "clip", "clipped_clients", "client_lr", "server_lr", "update_norm_mean",
                 "update_norm_max"}
RESERVED_PREFIXES = ("train_", "eval_")


def split_attribute_settings(settings) -> tuple[list[ast.Setting], list[ast.Setting]]:
    """(the block's `attribute …` lines, its other settings)."""
    attributes = [s for s in settings if s.key.name == "attribute"]
    return attributes, [s for s in settings if s.key.name != "attribute"]


def _key_part(text: str) -> str:
    """A data value as part of a metric name: letters, digits and underscores."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text) or "_"


def check_attributes(settings: list[ast.Setting], data: DataConfig, seed: int, base_dir: Path,
                     diags: Diagnostics) -> tuple | None:
    """The attributes as simulation-config tuples, or None after an error."""
    before = len(diags.errors)
    found, keys = [], {}
    for setting in settings:
        value = setting.value
        if not isinstance(value, ast.Call) or len(value.name.parts) != 1:
            diags.error("E630", "an attribute is `NAME(value = share, …)` or `column(\"…\")`", value.span,
                        "e.g. `attribute device(phone = 0.6, tablet = 0.3, laptop = 0.1)`")
            continue
        name = value.name.parts[0]
        if name == "column":
            attribute = _column_attribute(value, data, seed, base_dir, diags)
        else:
            attribute = _declared_attribute(name, value, diags)
        if attribute is None:
            continue
        for key in [f"{attribute[0]}_{v}" for v in attribute[2]] + [f"{attribute[0]}_coverage",
                                                                     f"{attribute[0]}_entropy"]:
            clash = keys.get(key) or (key in RESERVED_KEYS or key.startswith(RESERVED_PREFIXES)) and "the run"
            if clash:
                diags.error("E630", f"attribute '{attribute[0]}' would report '{key}', which {clash} already "
                                    "reports", value.span, "give the attribute another name")
                break
            keys[key] = f"attribute '{attribute[0]}'"
        else:
            found.append(attribute)
    return tuple(found) if len(diags.errors) == before else None


def _declared_attribute(name: str, call: ast.Call, diags: Diagnostics) -> tuple | None:
    values, weights = [], []
    for arg in call.args:
        if arg.key is None or not isinstance(arg.value, ast.Number) or not arg.value.value > 0:
            diags.error("E630", f"each value of attribute '{name}' needs a share > 0: `value = share`", arg.span,
                        f"e.g. `attribute {name}(phone = 0.6, laptop = 0.4)`")
            return None
        if arg.key.name in ("coverage", "entropy"):
            diags.error("E630", f"'{arg.key.name}' names the attribute's own {arg.key.name} figure; a value "
                                "needs another name", arg.key.span, None)
            return None
        if arg.key.name in values:
            diags.error("E630", f"attribute '{name}' lists '{arg.key.name}' twice", arg.key.span, None)
            return None
        values.append(arg.key.name)
        weights.append(float(arg.value.value))
    if len(values) < 2:
        diags.error("E630", f"attribute '{name}' needs at least two values", call.span,
                    f"e.g. `attribute {name}(a = 0.5, b = 0.5)`")
        return None
    if abs(sum(weights) - 1) > 1e-6:
        diags.error("E630", f"the shares of attribute '{name}' add up to {sum(weights):g}, not 1", call.span,
                    f"the shares are fractions of the clients: divide each by {sum(weights):g}")
        return None
    return (name, "categorical", tuple(values), tuple(weights))


def _column_attribute(call: ast.Call, data: DataConfig, seed: int, base_dir: Path,
                      diags: Diagnostics) -> tuple | None:
    if len(call.args) != 1 or call.args[0].key is not None or not isinstance(call.args[0].value, ast.String):
        diags.error("E630", "`column(…)` takes the name of a data column", call.span, 'e.g. `column("clinic")`')
        return None
    column = call.args[0].value.value
    if data.source.name != "csv" or data.partition.name != "natural":
        diags.error("E631", "`column(…)` attributes come from a csv source with a natural partition "
                            f"(here: {data.source.name}, partition {data.partition.name})", call.span,
                    "declare the shares instead, e.g. `attribute region(eu = 0.5, us = 0.5)`")
        return None
    path = str(resolve_data_path(data.source["path"], base_dir))
    try:
        cells = _column_cells(path, column)
        _, _, client_ids = datalib.checked_load_csv(path, data.source["label"], data.source["client"])
    except (OSError, ValueError, csv.Error) as exc:
        diags.error("E631", f"cannot read the attribute column: {str(exc)[:200]}", call.args[0].span,
                    "name a column of the data file's header")
        return None
    rng = np.random.default_rng(seed)  # the run's draws: the hold-out, then the natural partition
    rows = np.arange(len(client_ids))
    held_out = holdout(data.test, streamed=False)  # the statement load_data() writes (csv is loaded whole)
    if held_out is not None:
        rows, _ = evaluate(held_out.call, {"y": rows, "rng": rng})
    parts = datalib.partition_natural(client_ids[rows])[:data.partition.args.get("first")]
    per_client = [Counter(cells[i] for i in rows[part]).most_common(1)[0][0] for part in parts]
    values = sorted(set(per_client))
    if len(values) > MAX_VALUES:
        diags.error("E631", f"column '{column}' has {len(values)} different values over the clients; an attribute "
                            f"reports one count per value (at most {MAX_VALUES})", call.args[0].span,
                    "use a column with fewer values (a region rather than a postcode)")
        return None
    names = [_key_part(v) for v in values]
    if len(set(names)) < len(names):
        diags.error("E631", f"values of column '{column}' differ only in characters other than letters, digits "
                            "and '_', so their counts would share a name", call.args[0].span, None)
        return None
    index = {v: i for i, v in enumerate(values)}
    return (_key_part(column), "column", tuple(names), tuple(index[v] for v in per_client))


def _column_cells(path: str, column: str) -> list[str]:
    """The column's cell of every data row (blank lines skipped, as load_csv does)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next((row for row in reader if row), None)
        header = [name.strip() for name in header or []]
        if column not in header:
            raise ValueError(f"column '{column}' is not in the header ({len(header)} columns)")
        at = header.index(column)
        return [row[at].strip() for row in reader if row and not (len(row) == 1 and not row[0].strip())]


def split_attribute_forms(settings, attributes: tuple, diags: Diagnostics) -> tuple[dict, list[ast.Setting]]:
    """`speed device(phone = 0.05, laptop = 0.01)` (or bandwidth): a value per attribute value, so a
    device's speed follows its declared or data-given attribute. Returns ({"speed": ("attribute",
    name, per-value numbers)}, the other settings)."""
    by_name = {a[0]: a for a in attributes}
    found, rest = {}, []
    for setting in settings:
        value = setting.value
        if (setting.key.name not in ("speed", "bandwidth") or not isinstance(value, ast.Call)
                or len(value.name.parts) != 1 or value.name.parts[0] not in by_name):
            rest.append(setting)
            continue
        name, _, values, _ = by_name[value.name.parts[0]]
        given = {}
        for arg in value.args:
            if arg.key is None or not isinstance(arg.value, ast.Number) or not arg.value.value > 0:
                diags.error("E632", f"`{setting.key.name} {name}(…)` needs `value = number` with a number > 0 for "
                                    f"each {name}", arg.span, f"e.g. `{setting.key.name} {name}("
                            + ", ".join(f"{v} = 0.01" for v in values[:2]) + ")`")
                break
            if arg.key.name not in values:
                diags.error("E632", f"'{arg.key.name}' is not a value of attribute '{name}'", arg.key.span,
                            did_you_mean(arg.key.name, values) or f"its values: {', '.join(values)}")
                break
            given[arg.key.name] = float(arg.value.value)
        else:
            missing = [v for v in values if v not in given]
            if missing:
                diags.error("E632", f"`{setting.key.name} {name}(…)` gives no {setting.key.name} for "
                                    f"{', '.join(missing)}", value.span, f"give every value of {name} a number")
            else:
                found[setting.key.name] = ("attribute", name, tuple(given[v] for v in values))
    return found, rest
