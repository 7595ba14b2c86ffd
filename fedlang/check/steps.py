"""The placement and type pass over `aggregate` blocks (Federated Core steps).

Every value has a type in TFF's sense: a float32 tensor whose dimensions may mention `*` (the
model's parameter count d, fixed once the model is known) and `?` (the number of clients), placed
at CLIENTS or SERVER. Each operator has a placement rule and a type rule (OPERATORS, defined with
its lowering in fedlang/constructs/operators.py); values move between placements only through the
federated operators. Mistakes are reported at the token, with a hint, before TensorFlow is ever
imported.
"""

from __future__ import annotations

from .. import ast
from ..checked import AggregateConfig, FedType, RoundConfig, TypedStep
from ..constructs.operators import AGGREGATE_HINT, CLIENTS, OPERATORS, SERVER, VECTOR, RuleError, aggregate_call
from ..diagnostics import Diagnostics, Span, did_you_mean
from ..registry import BLOCK_KEYWORDS, Form
from .values import resolve_args

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
                            AGGREGATE_HINT if typed.type.placement == CLIENTS else None)
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
        operator = aggregate_call(op_name)
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
                diags.error("E901", f"'{names[0]}' is placed at CLIENTS; {AGGREGATE_HINT}", operands[0].span,
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
        diags.error("E901", f"'{delta.text}' is placed at CLIENTS; {AGGREGATE_HINT}", delta.span,
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
