"""Federated Core step operators: one `Operator` per name an `aggregate` or `round` step may call.

Each carries every hook the compiler needs:
- `operands`, `options`: how it is called (options resolved like any form's);
- `rule(types, names)`: its placement and type rule, a FedType or a RuleError (code, message, hint);
- `lower(operands, options, at_server)`: the step's value as a call tree (fedlang/plan.py), referring
  only to `tff`, `dim` and the names in `helpers`;
- `helpers`: the fedlang/lib/federated.py names the program copies for it.

`STEP_NAMES` is every name a lowered step may refer to (fedlang/lower.py keeps spec value names
clear of them). `tests/frontend/test_registry_complete.py` checks each operator's helpers against
fedlang/lib/federated.py's definitions and that its lowering refers to nothing else; lowering
itself never reads the lib file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..checked import FedType
from ..forms import Param
from ..plan import PyAttr, PyCall, PyRef

CLIENTS, SERVER = "CLIENTS", "SERVER"
VECTOR, MATRIX, SCALAR = ("*",), ("?", "*"), ()
AGGREGATE_HINT = "aggregate it (mean, sum, weighted_mean, gather) before using it at SERVER"


@dataclass(frozen=True)
class RuleError:
    """Why a type rule refuses its operands: the error code, the message and a hint."""

    code: str
    message: str
    hint: str | None = None


E_PLACEMENT, E_ALREADY_AGGREGATED, E_TYPE = "E901", "E902", "E903"


# A lowering: (operand references, options, is the first operand at SERVER) -> the step's value.
Lowering = Callable[[list[PyRef], dict[str, Any], bool], "PyCall | PyAttr | PyRef"]


@dataclass(frozen=True)
class Operator:
    """An operator: how many operands, its options, its type rule, its lowering and the
    fedlang/lib/federated.py names it needs (copied into the program; the lowering refers to no
    other name but `tff` and `dim`)."""

    name: str
    operands: int
    rule: Callable[[list[FedType], list[str]], FedType | RuleError]
    lower: Lowering
    options: tuple[Param, ...] = ()
    doc: str = ""
    helpers: tuple[str, ...] = ()


def _describe(t: FedType, name: str) -> str:
    return f"'{name}' is {t.notation()}"


def _local(shape_in, shape_out, what: str):
    """A local computation applied where its operand is placed (lowered to federated_map)."""
    def rule(types: list[FedType], names: list[str]) -> FedType | RuleError:
        (t,) = types
        if t.dims != shape_in:
            want = FedType(shape_in, t.placement).notation()
            return RuleError(E_TYPE, f"{what} takes {want}; {_describe(t, names[0])}")
        return FedType(shape_out, t.placement)
    return rule


def _server_matrix(what: str):
    def rule(types: list[FedType], names: list[str]) -> FedType | RuleError:
        (t,) = types
        if t.placement == CLIENTS:
            return RuleError(E_TYPE, f"{what} works on the gathered matrix at SERVER; {_describe(t, names[0])}: "
                                     f"gather it first, e.g. `all @SERVER = gather({names[0]})`")
        if t.dims != MATRIX:
            return RuleError(E_TYPE, f"{what} takes float32[?,*]@SERVER (one row per client); {_describe(t, names[0])}")
        return FedType(VECTOR, SERVER)
    return rule


def _clients_to_server(shapes=(VECTOR, SCALAR), out=None, what: str = ""):
    def rule(types: list[FedType], names: list[str]) -> FedType | RuleError:
        t = types[0]
        if t.placement == SERVER:
            return RuleError(E_ALREADY_AGGREGATED, f"{_describe(t, names[0])}: it is already at SERVER; {what} "
                                                   f"combines values placed at CLIENTS",
                             "a SERVER value needs no aggregation: use it directly")
        if t.dims not in shapes:
            return RuleError(E_TYPE, f"{what} takes {{float32[*]}}@CLIENTS; {_describe(t, names[0])}")
        for extra, name in zip(types[1:], names[1:]):
            if extra.placement != CLIENTS or extra.dims != SCALAR:
                return RuleError(E_TYPE, f"{what}'s weight must be {{float32}}@CLIENTS; {_describe(extra, name)}")
        return FedType(out if out is not None else t.dims, SERVER)
    return rule


def _arithmetic(what: str):
    """add/subtract: two vectors at the same placement."""
    def rule(types: list[FedType], names: list[str]) -> FedType | RuleError:
        a, b = types
        for t, name in zip(types, names):
            if t.dims != VECTOR:
                return RuleError(E_TYPE, f"{what} takes two float32[*] vectors; {_describe(t, name)}")
        if a.placement != b.placement:
            at_clients = names[0] if a.placement == CLIENTS else names[1]
            return RuleError(E_PLACEMENT, f"'{at_clients}' is placed at CLIENTS and the other value at SERVER; "
                                          f"{AGGREGATE_HINT}")
        return FedType(VECTOR, a.placement)
    return rule


def _broadcast(types: list[FedType], names: list[str]) -> FedType | RuleError:
    (t,) = types
    if t.placement == CLIENTS:
        return RuleError(E_TYPE, f"{_describe(t, names[0])}: broadcast sends a SERVER value to the clients")
    return FedType(t.dims, CLIENTS)


def _overloaded(matrix_rule, clients_rule):
    """median/krum/multi_krum: on the gathered matrix at SERVER, or directly on client values."""
    def rule(types: list[FedType], names: list[str]) -> FedType | RuleError:
        return clients_rule(types, names) if types[0].placement == CLIENTS else matrix_rule(types, names)
    return rule


_FRACTION = Param("fraction", "float", default=0.1, low=0, high=0.5, high_open=True,
                  doc="share trimmed at each end")
_CLIP = Param("clip", "float", low=0, low_open=True, doc="L2 norm bound")
_THRESHOLD = Param("threshold", "float", low=0, low_open=True, doc="L2 norm above which an update is zeroed")
_BYZANTINE = Param("byzantine", "int", default=1, low=0, doc="number of Byzantine clients tolerated (f)")
_SELECT = Param("m", "int", low=1, doc="updates averaged by Multi-Krum")
_FACTOR = Param("factor", "float", doc="multiplier")



# ---------------------------------------------------------------- lowerings (call trees)

DIM = PyRef("dim")  # the model's parameter count, the argument of every aggregate_<name>(dim)


def _fn(function: str, *options: str):
    """`function(dim, <options…>)`: a fedlang/lib/federated.py tff.tf_computation of one vector."""
    return lambda o: PyCall.of(function, DIM, *(o.get(k) for k in options))


def _intrinsic(name: str, weighted: bool = False) -> Lowering:
    if weighted:
        return lambda x, o, at_server: PyCall.of(name, x[0], weight=x[1])
    return lambda x, o, at_server: PyCall.of(name, x[0])


def _mapped(fn) -> Lowering:
    """A local computation, applied where its operand is placed."""
    return lambda x, o, at_server: PyCall.of("tff.federated_map", fn(o), x[0] if len(x) == 1 else tuple(x))


def _gathered(fn) -> Lowering:
    """Gather the client values, then apply a local computation to the matrix at SERVER."""
    return lambda x, o, at_server: PyCall(PyCall.of("gathered_steps", DIM, fn(o)), ((None, x[0]),))


def _on_matrix_or_gathered(fn) -> Lowering:
    """median/krum/multi_krum: on the gathered matrix at SERVER, or directly on client values."""
    mapped, gathered = _mapped(fn), _gathered(fn)
    return lambda x, o, at_server: (mapped if at_server else gathered)(x, o, at_server)


def _steps_result(function: str, option: str) -> Lowering:
    """A fedlang/lib/federated.py aggregation process's `next` result."""
    return lambda x, o, at_server: PyAttr(PyCall(PyCall.of(function, DIM, o[option]), ((None, x[0]),)), "result")


OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("gather", 1, _clients_to_server((VECTOR,), MATRIX, "gather"),
             lambda x, o, at_server: PyCall.of("gather", x[0], DIM),
             doc="every client's value at the server, one row per client", helpers=("gather",)),
    Operator("mean", 1, _clients_to_server(what="mean"), _intrinsic("tff.federated_mean"),
             doc="unweighted mean of client values"),
    Operator("sum", 1, _clients_to_server(what="sum"), _intrinsic("tff.federated_sum"), doc="sum of client values"),
    Operator("weighted_mean", 2, _clients_to_server(what="weighted_mean"),
             _intrinsic("tff.federated_mean", weighted=True), doc="mean weighted by a client value"),
    Operator("broadcast", 1, _broadcast, _intrinsic("tff.federated_broadcast"),
             doc="a server value sent to every client"),
    Operator("clip_norm", 1, _local(VECTOR, VECTOR, "clip_norm"), _mapped(_fn("clip_norm_fn", "clip")), (_CLIP,),
             doc="scale a vector down to L2 norm ≤ clip", helpers=("clip_norm_fn",)),
    Operator("zero_large", 1, _local(VECTOR, VECTOR, "zero_large"), _mapped(_fn("zero_large_fn", "threshold")),
             (_THRESHOLD,), doc="zero a vector whose L2 norm exceeds threshold", helpers=("zero_large_fn",)),
    Operator("scale", 1, _local(VECTOR, VECTOR, "scale"), _mapped(_fn("scale_fn", "factor")), (_FACTOR,),
             doc="multiply by a constant", helpers=("scale_fn",)),
    Operator("norm", 1, _local(VECTOR, SCALAR, "norm"), _mapped(_fn("norm_fn")), doc="L2 norm of a vector",
             helpers=("norm_fn",)),
    Operator("add", 2, _arithmetic("add"), _mapped(_fn("add_fn")), doc="x + y, where both are placed",
             helpers=("add_fn",)),
    Operator("subtract", 2, _arithmetic("subtract"), _mapped(_fn("subtract_fn")), doc="x − y, where both are placed",
             helpers=("subtract_fn",)),
    Operator("secure_sum", 1, _clients_to_server((VECTOR,), VECTOR, "secure_sum"),
             lambda x, o, at_server: PyCall.of("secure_sum", x[0], DIM, lower=o["lower"], upper=o["upper"]),
             (Param("lower", "float", doc="smallest value a coordinate may take"),
              Param("upper", "float", doc="largest value a coordinate may take")),
             doc="sum by TFF's secure summation, coordinates clipped to [lower, upper]",
             helpers=("secure_sum",)),
    Operator("trim_mean", 1, _server_matrix("trim_mean"), _mapped(_fn("trim_mean_fn", "fraction")), (_FRACTION,),
             doc="coordinate-wise trimmed mean of the rows", helpers=("trim_mean_fn",)),
    Operator("median", 1, _overloaded(_server_matrix("median"), _clients_to_server((VECTOR,), VECTOR, "median")),
             _on_matrix_or_gathered(_fn("median_fn")),
             doc="coordinate-wise median (of the rows, or of the client values)",
             helpers=("median_fn", "gathered_steps", "gather")),
    Operator("krum", 1, _overloaded(_server_matrix("krum"), _clients_to_server((VECTOR,), VECTOR, "krum")),
             _on_matrix_or_gathered(_fn("krum_fn", "byzantine")),
             (_BYZANTINE,), doc="Krum: the update closest to its n − f − 2 neighbours",
             helpers=("krum_fn", "gathered_steps", "gather")),
    Operator("multi_krum", 1, _overloaded(_server_matrix("multi_krum"),
                                          _clients_to_server((VECTOR,), VECTOR, "multi_krum")),
             _on_matrix_or_gathered(_fn("multi_krum_fn", "byzantine", "m")),
             (_BYZANTINE, _SELECT), doc="Multi-Krum: mean of the m best-scored updates",
             helpers=("multi_krum_fn", "gathered_steps", "gather")),
    Operator("trimmed_mean", 1, _clients_to_server((VECTOR,), VECTOR, "trimmed_mean"),
             _gathered(_fn("trim_mean_fn", "fraction")), (_FRACTION,),
             doc="library: gather, then coordinate-wise trimmed mean",
             helpers=("trim_mean_fn", "gathered_steps", "gather")),
    Operator("norm_clipped_mean", 1, _clients_to_server((VECTOR,), VECTOR, "norm_clipped_mean"),
             _steps_result("clipped_mean_steps", "clip"), (_CLIP,),
             doc="library: clip each update's norm, then average", helpers=("clipped_mean_steps",)),
    Operator("zeroing_mean", 1, _clients_to_server((VECTOR,), VECTOR, "zeroing_mean"),
             _steps_result("zeroed_mean_steps", "threshold"), (_THRESHOLD,),
             doc="library: zero updates with a large norm, then average", helpers=("zeroed_mean_steps",)),
)}


def aggregate_call(name: str) -> Operator:
    """A step that calls another aggregate block: `aggregate_<name>(dim)(update)`."""
    return Operator(name, 1, _clients_to_server((VECTOR,), VECTOR, name),
                    lambda x, o, at_server: PyCall(PyCall.of(f"aggregate_{name}", DIM), ((None, x[0]),)))


# Every name a lowered step may refer to: the helpers it copies, TFF and the model size.
STEP_NAMES: frozenset[str] = frozenset({"tff", "dim"} | {h for op in OPERATORS.values() for h in op.helpers})
