"""The typed AST: frozen dataclasses, each carrying the span of source it came from.

The AST mirrors the grammar one-to-one and holds no interpretation: whether `dense` is a
layer, whether `0.5` is a valid dropout rate, is decided by the check passes (fedlang/check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .diagnostics import Span


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Ident:
    name: str
    span: Span


@dataclass(frozen=True)
class Number:
    value: int | float
    text: str
    span: Span


@dataclass(frozen=True)
class String:
    value: str
    span: Span


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True)
class Name:
    """A bare or dotted name: `relu`, `sklearn.digits`."""

    parts: tuple[str, ...]
    span: Span

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class ListValue:
    items: tuple["Value", ...]
    span: Span


@dataclass(frozen=True)
class Arg:
    """A call or layer argument: positional (`key is None`) or `key = value`."""

    key: Ident | None
    value: "Value"
    span: Span


@dataclass(frozen=True)
class Call:
    """`dirichlet(alpha = 0.5, clients = 100)`."""

    name: Name
    args: tuple[Arg, ...]
    span: Span


Value = Union[Number, String, Bool, Name, ListValue, Call]


def describe(value: Value) -> str:
    """How a value is named in messages: 'the number 0.5', 'the name relu'…"""
    if isinstance(value, Number):
        return f"the number {value.text}"
    if isinstance(value, String):
        return f"the string {value.value!r}"
    if isinstance(value, Bool):
        return "true" if value.value else "false"
    if isinstance(value, Name):
        return f"the name '{value.text}'"
    if isinstance(value, ListValue):
        return "a list"
    return f"the call '{value.name.text}(…)'"


# ---------------------------------------------------------------- statements and blocks


@dataclass(frozen=True)
class Setting:
    """`key value` inside a data/train/evaluate block."""

    key: Ident
    value: Value
    span: Span


@dataclass(frozen=True)
class Layer:
    """A model line such as `dense 128 relu` or `conv2d 32 kernel = 3 relu`."""

    kind: Ident
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True)
class InputDecl:
    shape: Value
    span: Span


@dataclass(frozen=True)
class LossDecl:
    loss: Value
    span: Span


@dataclass(frozen=True)
class MetricsDecl:
    metrics: Value
    span: Span


ModelItem = Union[InputDecl, LossDecl, MetricsDecl, Layer]


@dataclass(frozen=True)
class Experiment:
    name: String
    span: Span


@dataclass(frozen=True)
class Seed:
    value: Value
    span: Span


@dataclass(frozen=True)
class ModelBlock:
    name: Ident
    items: tuple[ModelItem, ...]
    span: Span


@dataclass(frozen=True)
class DataBlock:
    name: Ident | None
    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class TrainBlock:
    algorithm: Ident
    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class EvaluateBlock:
    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class PrivacyBlock:
    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class AggregationBlock:
    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class AttackBlock:
    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class SimulationBlock:
    """Simulated client conditions: availability, dropout, deadlines, stragglers (check/simulation.py)."""

    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class PersonalizeBlock:
    """Local fine-tuning of the global model on each client (check/personalize.py)."""

    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class RuntimeBlock:
    """Where the rounds run: local TFF workers or running ones on other machines (check/runtime.py)."""

    settings: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class FedTypeSyntax:
    """`float32[*] @CLIENTS` as written: dtype name, dims (int, "*" = model size, "?"), placement."""

    dtype: Ident
    dims: tuple[int | str, ...]
    placement: Ident
    span: Span


@dataclass(frozen=True)
class FedParam:
    name: Ident
    type: FedTypeSyntax
    span: Span


@dataclass(frozen=True)
class Assign:
    """`all @SERVER = gather(update)`."""

    target: Ident
    placement: Ident
    value: Value
    span: Span


@dataclass(frozen=True)
class Return:
    value: Value
    span: Span


@dataclass(frozen=True)
class AggregateBlock:
    name: Ident
    params: tuple[FedParam, ...]
    result: FedTypeSyntax
    steps: tuple[Assign | Return, ...]
    span: Span


@dataclass(frozen=True)
class RoundBlock:
    """A whole round as Federated Core steps (broadcast, local_train, aggregation, server_update)."""

    steps: tuple[Assign, ...]
    span: Span


@dataclass(frozen=True)
class MonitorCheckpoint:
    """`checkpoint every 5` inside a monitor block."""

    every: Value
    span: Span


@dataclass(frozen=True)
class Alert:
    """`alert METRIC OP VALUE [of target] -> ACTION`, `alert METRIC not improving for N rounds -> ACTION`
    or `alert nan -> ACTION`; `kind` is "threshold", "not_improving" or "nan"."""

    kind: str
    metric: Ident | None
    op: Ident | None  # the comparison, e.g. `<`
    value: Value | None  # the threshold, or N of "for N rounds"
    unit: Ident | None  # `target` after `of`, or `rounds` after N
    action: Ident
    span: Span
    by: Value | None = None  # `not improving by 0.01 for …`: the smallest change that counts


@dataclass(frozen=True)
class MonitorBlock:
    items: tuple[MonitorCheckpoint | Alert, ...]
    span: Span


Item = Union[RoundBlock, MonitorBlock, Experiment, Seed, ModelBlock, DataBlock, TrainBlock, EvaluateBlock, PrivacyBlock,
             AggregationBlock, AttackBlock, AggregateBlock, SimulationBlock, PersonalizeBlock,
             RuntimeBlock]


@dataclass(frozen=True)
class Spec:
    """A whole .fed file, items in source order."""

    items: tuple[Item, ...]
