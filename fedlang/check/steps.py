"""The placement and type pass over `aggregate` blocks (Federated Core steps).

Every value has a type in TFF's sense: a float32 tensor whose dimensions may mention `*` (the
model's parameter count d, fixed once the model is known) and `?` (the number of clients), placed
at CLIENTS or SERVER. Each operator has a placement rule and a type rule (OPERATORS); values move
between placements only through the federated operators. Mistakes are reported at the token, with
a hint, before TensorFlow is ever imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .. import ast
from ..diagnostics import Diagnostics, Span, did_you_mean
from ..checked import AggregateConfig, FedType, RoundConfig, TypedStep
from ..registry import BLOCK_KEYWORDS, Form, Param
from .values import resolve_args

CLIENTS, SERVER = "CLIENTS", "SERVER"
VECTOR, MATRIX, SCALAR = ("*",), ("?", "*"), ()
_AGGREGATE_HINT = "aggregate it (mean, sum, weighted_mean, gather) before using it at SERVER"


@dataclass(frozen=True)
class RuleError:
    """Why a type rule refuses its operands: the error code, the message and a hint."""

    code: str
    message: str
    hint: str | None = None


E_PLACEMENT, E_ALREADY_AGGREGATED, E_TYPE = "E901", "E902", "E903"


@dataclass(frozen=True)
class Operator:
    """An operator: how many operands, its options, its type rule and what it needs from the lib."""

    name: str
    operands: int
    rule: Callable[[list[FedType], list[str]], FedType | RuleError]
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
                                          f"{_AGGREGATE_HINT}")
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

OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("gather", 1, _clients_to_server((VECTOR,), MATRIX, "gather"),
             doc="every client's value at the server, one row per client", helpers=("gather",)),
    Operator("mean", 1, _clients_to_server(what="mean"), doc="unweighted mean of client values"),
    Operator("sum", 1, _clients_to_server(what="sum"), doc="sum of client values"),
    Operator("weighted_mean", 2, _clients_to_server(what="weighted_mean"), doc="mean weighted by a client value"),
    Operator("broadcast", 1, _broadcast, doc="a server value sent to every client"),
    Operator("clip_norm", 1, _local(VECTOR, VECTOR, "clip_norm"), (_CLIP,),
             doc="scale a vector down to L2 norm ≤ clip", helpers=("clip_norm_fn",)),
    Operator("zero_large", 1, _local(VECTOR, VECTOR, "zero_large"), (_THRESHOLD,),
             doc="zero a vector whose L2 norm exceeds threshold", helpers=("zero_large_fn",)),
    Operator("scale", 1, _local(VECTOR, VECTOR, "scale"), (_FACTOR,), doc="multiply by a constant",
             helpers=("scale_fn",)),
    Operator("norm", 1, _local(VECTOR, SCALAR, "norm"), doc="L2 norm of a vector", helpers=("norm_fn",)),
    Operator("add", 2, _arithmetic("add"), doc="x + y, where both are placed", helpers=("add_fn",)),
    Operator("subtract", 2, _arithmetic("subtract"), doc="x − y, where both are placed", helpers=("subtract_fn",)),
    Operator("secure_sum", 1, _clients_to_server((VECTOR,), VECTOR, "secure_sum"),
             (Param("lower", "float", doc="smallest value a coordinate may take"),
              Param("upper", "float", doc="largest value a coordinate may take")),
             doc="sum by TFF's secure summation, coordinates clipped to [lower, upper]",
             helpers=("secure_sum",)),
    Operator("trim_mean", 1, _server_matrix("trim_mean"), (_FRACTION,),
             doc="coordinate-wise trimmed mean of the rows", helpers=("trim_mean_fn",)),
    Operator("median", 1, _overloaded(_server_matrix("median"), _clients_to_server((VECTOR,), VECTOR, "median")),
             doc="coordinate-wise median (of the rows, or of the client values)",
             helpers=("median_fn", "gathered_steps", "gather")),
    Operator("krum", 1, _overloaded(_server_matrix("krum"), _clients_to_server((VECTOR,), VECTOR, "krum")),
             (_BYZANTINE,), doc="Krum: the update closest to its n − f − 2 neighbours",
             helpers=("krum_fn", "gathered_steps", "gather")),
    Operator("multi_krum", 1, _overloaded(_server_matrix("multi_krum"),
                                          _clients_to_server((VECTOR,), VECTOR, "multi_krum")),
             (_BYZANTINE, _SELECT), doc="Multi-Krum: mean of the m best-scored updates",
             helpers=("multi_krum_fn", "gathered_steps", "gather")),
    Operator("trimmed_mean", 1, _clients_to_server((VECTOR,), VECTOR, "trimmed_mean"), (_FRACTION,),
             doc="library: gather, then coordinate-wise trimmed mean",
             helpers=("trim_mean_fn", "gathered_steps", "gather")),
    Operator("norm_clipped_mean", 1, _clients_to_server((VECTOR,), VECTOR, "norm_clipped_mean"), (_CLIP,),
             doc="library: clip each update's norm, then average", helpers=("clipped_mean_steps",)),
    Operator("zeroing_mean", 1, _clients_to_server((VECTOR,), VECTOR, "zeroing_mean"), (_THRESHOLD,),
             doc="library: zero updates with a large norm, then average", helpers=("zeroed_mean_steps",)),
)}

_DTYPES = ("float32",)


def check_aggregates(blocks: list[ast.AggregateBlock], diags: Diagnostics) -> dict[str, AggregateConfig]:
    """Type every aggregate block; returns the valid ones by name."""
    out: dict[str, AggregateConfig] = {}
    for block in blocks:
        name = block.name.name
        if name in out or name in OPERATORS or name in BLOCK_KEYWORDS:
            what = ("an operator" if name in OPERATORS else f"a keyword (the {name} block)" if name in BLOCK_KEYWORDS
                    else f"defined on line {out[name].lines[0]}")
            diags.error("E910", f"'{name}' is already {what}", block.name.span, "give the aggregate another name")
            continue
        config = _check_block(block, out, diags)
        if config is not None:
            out[name] = config
    return out


def _type_of(syntax: ast.FedTypeSyntax, diags: Diagnostics) -> FedType | None:
    ok = True
    if syntax.dtype.name not in _DTYPES:
        diags.error("E903", f"unsupported dtype '{syntax.dtype.name}'", syntax.dtype.span,
                    did_you_mean(syntax.dtype.name, _DTYPES) or "model updates are float32")
        ok = False
    if syntax.placement.name not in (CLIENTS, SERVER):
        diags.error("E904", f"unknown placement '@{syntax.placement.name}'", syntax.placement.span,
                    did_you_mean(syntax.placement.name, (CLIENTS, SERVER)) or "placements are @CLIENTS and @SERVER")
        ok = False
    return FedType(tuple(syntax.dims), syntax.placement.name) if ok else None


def _check_block(block: ast.AggregateBlock, known: dict[str, AggregateConfig],
                 diags: Diagnostics) -> AggregateConfig | None:
    before = len(diags.errors)
    if len(block.params) != 1:
        diags.error("E912", f"aggregate '{block.name.name}' must take exactly one parameter, the client updates",
                    block.name.span, "write `aggregate name(update: float32[*] @CLIENTS) -> float32[*] @SERVER { … }`")
        return None
    param = block.params[0]
    param_type = _type_of(param.type, diags)
    result_type = _type_of(block.result, diags)
    if param_type is not None and param_type != FedType(VECTOR, CLIENTS):
        diags.error("E912", f"an aggregate takes the client updates, float32[*] @CLIENTS; "
                            f"got {param_type.notation()}", param.type.span,
                    "write `update: float32[*] @CLIENTS` (`*` is the model's parameter count)")
    if result_type is not None and result_type != FedType(VECTOR, SERVER):
        diags.error("E912", f"an aggregate returns the aggregated update, float32[*] @SERVER; "
                            f"got {result_type.notation()}", block.result.span, "write `-> float32[*] @SERVER`")
    if len(diags.errors) > before:
        return None

    env: dict[str, tuple[FedType, int]] = {param.name.name: (param_type, block.span.line)}
    used: set[str] = set()
    defined_at: dict[str, ast.Assign] = {}
    steps: list[TypedStep] = []
    helpers: list[str] = []
    returned = False
    failed: set[str] = set()  # targets of steps that did not check: no follow-on errors about them
    for step in block.steps:
        if returned:
            diags.error("E906", "a step after `return` never runs", step.span, "move `return` to the end")
            break
        used.update(_names_in(step.value))
        if _names_in(step.value) & failed:
            typed = None
        else:
            typed = _check_step(step, env, used, known, helpers, diags)
        if typed is None:
            if isinstance(step, ast.Assign):
                failed.add(step.target.name)
            else:
                returned = True
            continue
        if isinstance(step, ast.Return):
            returned = True
            if typed.type != FedType(VECTOR, SERVER):
                diags.error("E908", f"the aggregate returns {typed.type.notation()}, but its signature says "
                                    f"float32[*]@SERVER", step.value.span,
                            _AGGREGATE_HINT if typed.type.placement == CLIENTS else None)
        else:
            name = step.target.name
            if name in env:
                diags.error("E910", f"'{name}' is already defined on line {env[name][1]}", step.target.span,
                            "give each value its own name")
                continue
            env[name] = (typed.type, step.span.line)
            defined_at[name] = step
        steps.append(typed)
    if not returned and not any(isinstance(s, ast.Return) for s in block.steps):
        end = block.span
        diags.error("E906", f"aggregate '{block.name.name}' has no `return`", Span(end.end_line, 1, end.end_line, 2),
                    "end it with `return <value @SERVER>`")
    if len(diags.errors) > before:  # unused-value errors only for otherwise sound blocks
        return None
    for name, step in defined_at.items():
        if name not in used:
            diags.error("E905", f"'{name}' is computed but never used", step.target.span,
                        "use it in a later step or in `return`, or remove the step")
    if len(diags.errors) > before:
        return None
    called = tuple(dict.fromkeys(s.operator for s in steps if s.operator in known))
    return AggregateConfig(block.name.name, param.name.name, tuple(steps),
                           (block.span.line, block.span.end_line), tuple(dict.fromkeys(helpers)), called)


def _check_step(step: ast.Assign | ast.Return, env: dict[str, tuple[FedType, int]], used: set[str],
                known: dict[str, AggregateConfig], helpers: list[str], diags: Diagnostics) -> TypedStep | None:
    value = step.value
    if isinstance(value, ast.Name) and len(value.parts) == 1:  # `return all`
        name = value.text
        if name not in env:
            _unknown_value(name, value.span, env, diags)
            return None
        used.add(name)
        return TypedStep(None if isinstance(step, ast.Return) else step.target.name, "identity", (name,), {},
                         env[name][0], step.span.line, "")
    if not isinstance(value, ast.Call) or len(value.name.parts) != 1:
        diags.error("E911", f"a step is an operator applied to values, e.g. `gather(update)`; got "
                            f"{ast.describe(value)}", value.span, None)
        return None
    op_name = value.name.text
    operands = [a for a in value.args if a.key is None and isinstance(a.value, ast.Name)]
    option_args = [a for a in value.args if a not in operands]
    operator = OPERATORS.get(op_name)
    if operator is None and op_name in known:
        operator = Operator(op_name, 1, _clients_to_server((VECTOR,), VECTOR, op_name))
    if operator is None:
        diags.error("E904", f"unknown operator '{op_name}'", value.name.span,
                    did_you_mean(op_name, list(OPERATORS) + list(known))
                    or f"operators: {', '.join(OPERATORS)}")
        return None
    nested = next((a for a in value.args if isinstance(a.value, ast.Call)), None)
    if nested is not None:
        diags.error("E911", "steps apply one operator at a time", nested.span,
                    f"name the inner value first: `x @… = {nested.value.name.text}(…)`, then `{op_name}(x)`")
        return None
    if len(operands) != operator.operands:
        diags.error("E911", f"{op_name} takes {operator.operands} value{'s' if operator.operands > 1 else ''}, "
                            f"got {len(operands)}", value.span,
                    f"e.g. `{op_name}(update" + (", w)`" if operator.operands == 2 else ")`"))
        return None
    types, names = [], []
    for arg in operands:
        name = arg.value.text
        if name not in env:
            _unknown_value(name, arg.value.span, env, diags)
            return None
        used.add(name)
        types.append(env[name][0])
        names.append(name)
    options = resolve_args(Form(op_name, operator.options), option_args, value.span, diags)
    if options is None:
        return None
    if op_name == "secure_sum" and not options["lower"] < options["upper"]:
        lower, upper, operand = options["lower"], options["upper"], ", ".join(names)
        fix = (f"write the smaller bound first: `secure_sum({operand}, lower = {upper:g}, upper = {lower:g})`"
               if lower > upper else "e.g. `lower = -1.0, upper = 1.0`")
        diags.error("E812", f"secure_sum needs lower < upper; got lower {lower:g}, upper {upper:g}", value.span, fix)
        return None
    result = operator.rule(types, names)
    if isinstance(result, RuleError):
        diags.error(result.code, result.message, operands[0].span if operands else value.span, result.hint)
        return None
    if isinstance(step, ast.Assign):
        declared = step.placement.name
        if declared not in (CLIENTS, SERVER):
            diags.error("E904", f"unknown placement '@{declared}'", step.placement.span,
                        did_you_mean(declared, (CLIENTS, SERVER)) or "placements are @CLIENTS and @SERVER")
            return None
        if declared != result.placement:
            if declared == SERVER and types and types[0].placement == CLIENTS:
                diags.error("E901", f"'{names[0]}' is placed at CLIENTS; {_AGGREGATE_HINT}", operands[0].span,
                            f"{op_name}(…) runs where its input is, so this value is {result.notation()}")
            else:
                diags.error("E907", f"{op_name}(…) gives {result.notation()}, but the step declares @{declared}",
                            step.placement.span, f"write `{step.target.name} @{result.placement} = …`")
            return None
    helpers.extend(operator.helpers)
    if op_name in known:
        helpers.extend(known[op_name].helpers)
    target = step.target.name if isinstance(step, ast.Assign) else None
    return TypedStep(target, op_name, tuple(names), options, result, step.span.line, "")


def _names_in(value: ast.Value) -> set[str]:
    if isinstance(value, ast.Name):
        return {value.text}
    if isinstance(value, ast.Call):
        return {a.value.text for a in value.args if isinstance(a.value, ast.Name)}
    return set()


def _unknown_value(name: str, span: Span, env, diags: Diagnostics) -> None:
    diags.error("E909", f"'{name}' is not defined here", span,
                did_you_mean(name, env) or f"values defined so far: {', '.join(env)}")


# ---------------------------------------------------------------- round blocks

_ROUND_SHAPE = ("a round is: `w @CLIENTS = broadcast(model)`, `u @CLIENTS = local_train(w, data)`, "
                "steps that aggregate u, then `model @SERVER = server_update(model, delta)`")


def check_round(block: ast.RoundBlock, known: dict[str, AggregateConfig],
                diags: Diagnostics) -> RoundConfig | None:
    """Check a full round. Its aggregation steps are typed as an aggregate of the local updates
    (its emitted function is `aggregate_round`: no aggregate block can be named `round`, E910).

    `model` is the global model at SERVER (float32[*]) and `data` each client's examples; the
    broadcast, the local training and the server update are FedAvg's own (TFF's broadcast
    process, model-delta client work and optimizer finalizer)."""
    steps = list(block.steps)
    head = Span(block.span.line, block.span.column, block.span.line, block.span.column + 5)
    if len(steps) < 4:
        diags.error("E913", "a round needs a broadcast, local training, an aggregation and a server update",
                    head, _ROUND_SHAPE)
        return None

    def call(step: ast.Assign, op: str, placement: str, operands: int) -> list[ast.Name] | None:
        value = step.value
        if not (isinstance(value, ast.Call) and value.name.text == op):
            diags.error("E913", f"this step of the round must be `{op}(…)`", step.value.span, _ROUND_SHAPE)
            return None
        names = [a.value for a in value.args if isinstance(a.value, ast.Name)]
        if len(names) != operands or len(value.args) != operands:
            diags.error("E911", f"{op} takes {operands} value{'s' if operands > 1 else ''}", value.span, _ROUND_SHAPE)
            return None
        if step.placement.name != placement:
            diags.error("E907", f"{op}(…) gives a value @{placement}, but the step declares @{step.placement.name}",
                        step.placement.span, f"write `{step.target.name} @{placement} = …`")
            return None
        return names

    first, train, last = steps[0], steps[1], steps[-1]
    broadcast = call(first, "broadcast", CLIENTS, 1)
    if broadcast is not None and broadcast[0].text != "model":
        diags.error("E913", "the round broadcasts the global model", broadcast[0].span, "write `broadcast(model)`")
        broadcast = None
    if broadcast is None:  # the rest of the round would only repeat the same mistake
        return None
    local = call(train, "local_train", CLIENTS, 2)
    if local is not None and broadcast is not None:
        weights, data = local
        if weights.text == "model":
            diags.error("E901", "'model' is placed at SERVER; broadcast it to the clients before local_train",
                        weights.span, f"use `local_train({first.target.name}, data)`")
            local = None
        elif weights.text != first.target.name or data.text != "data":
            diags.error("E913", f"local_train trains the broadcast weights on the clients' data", train.value.span,
                        f"write `local_train({first.target.name}, data)`")
            local = None
    update = call(last, "server_update", SERVER, 2)
    if update is not None:
        model, delta = update
        if last.target.name != "model" or model.text != "model":
            diags.error("E913", "the round ends by updating the global model", last.span,
                        "write `model @SERVER = server_update(model, delta)`")
            update = None
    if broadcast is None or local is None or update is None:
        return None
    middle = steps[2:-1]
    for step in middle:
        for arg in (step.value.args if isinstance(step.value, ast.Call) else ()):
            if isinstance(arg.value, ast.Name) and arg.value.text in ("model", "data", first.target.name):
                diags.error("E913", f"'{arg.value.text}' cannot be used between local_train and server_update",
                            arg.value.span, "only the local update flows into the aggregation steps")
                return None
    delta = update[1]
    declared = {s.target.name: s.placement.name for s in middle}
    if declared.get(delta.text, CLIENTS if delta.text == train.target.name else None) == CLIENTS:
        diags.error("E901", f"'{delta.text}' is placed at CLIENTS; {_AGGREGATE_HINT}", delta.span,
                    f"add an aggregation step, e.g. `delta @SERVER = mean({delta.text})`, and update with delta")
        return None
    implicit = ast.AggregateBlock(
        ast.Ident("round", head),
        (ast.FedParam(train.target, ast.FedTypeSyntax(ast.Ident("float32", head), ("*",),
                                                       ast.Ident(CLIENTS, head), head), head),),
        ast.FedTypeSyntax(ast.Ident("float32", head), ("*",), ast.Ident(SERVER, head), head),
        tuple(middle) + (ast.Return(delta, last.span),),
        block.span,
    )
    config = _check_block(implicit, known, diags)
    if config is None:
        return None
    frame = ((first.span.line, first.target.name, FedType(VECTOR, CLIENTS)),
             (train.span.line, train.target.name, FedType(VECTOR, CLIENTS)),
             (last.span.line, "model", FedType(VECTOR, SERVER)))
    return RoundConfig(config, frame, (block.span.line, block.span.end_line))
