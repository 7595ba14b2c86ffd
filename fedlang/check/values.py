"""Typing of values against registry parameters, shared by every check pass.

`resolve` turns one AST value into a Python value of the parameter's type, or reports why it
can't (and returns INVALID). `resolve_form` does the same for `name(arg, key = value)`,
including positional/keyword matching, unknown and missing options.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from .. import ast
from ..checked import Choice
from ..diagnostics import Diagnostics, Span, closest, did_you_mean, one_of
from ..registry import ACTIVATIONS, LAYERS, Form, Param

INVALID = object()

# Noise multipliers the accountants handle (the `noise auto` search spans 0.01…1000).
NOISE_LOW, NOISE_HIGH = 0.01, 1e6
# Integers beyond this are refused as values (int64 and float64 both hold every integer up to it).
INT_LIMIT = 2**53


# Shapes and sizes: TensorFlow keeps dimensions in int32 in places.
MAX_DIMENSION = 2**31 - 1
FLOAT32_MAX = 3.4028234663852886e38


def _float32(number) -> bool:
    """True if `number` (finite) is representable as a finite float32."""
    return abs(float(number)) <= FLOAT32_MAX


def _finite(number) -> bool:
    """math.isfinite that also answers for integers too large for a float (it raises on those)."""
    if isinstance(number, int):
        return abs(number) <= INT_LIMIT
    return math.isfinite(number)

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "name": "a name",
    "shape": "a list of positive integers, e.g. [8, 8, 1]",
    "names": "a list of names, e.g. [accuracy]",
    "size": "an integer or a pair [h, w]",
    "addresses": 'a list of "HOST:PORT" strings, e.g. ["10.0.0.5:8000"]',
    "scale": "minmax, standard or a positive number",
    "noise": "a noise multiplier (a number >= 0) or auto",
    "clip": "a positive clip norm, or adaptive(…)",
    "rate": "a positive number, or a schedule such as exponential_decay(0.01, 10, 0.96)",
}


def type_words(param: Param) -> str:
    if param.type == "name" and param.choices:
        return f"one of: {one_of(param.choices)}"
    if param.type == "form":
        return f"one of: {one_of(param.forms or ())}"
    return _TYPE_WORDS[param.type]


def resolve(param: Param, value: ast.Value, diags: Diagnostics, owner: str,
            context: str | None = None) -> Any:
    """The value of `param` written as `value`, or INVALID after reporting a diagnostic.

    `context` is a hint for type errors that says where the value came from (e.g. which
    positional argument of a layer it filled); it replaces the parameter's doc in the hint.
    """
    kind = param.type
    if kind == "form":
        choice = resolve_form(value, param.forms or {}, param.name, diags)
        return INVALID if choice is None else choice
    if kind in ("int", "float"):
        if not isinstance(value, ast.Number) or (kind == "int" and not isinstance(value.value, int)):
            hint = None
            if kind == "int" and isinstance(value, ast.Number) and float(value.value).is_integer() \
                    and math.isfinite(value.value):
                hint = f"write it without a fraction or exponent: {int(value.value)}"
            elif isinstance(value, ast.String) and _is_number(value.value):
                hint = f"numbers are written without quotes: {value.value.strip()}"
            return _type_error(param, value, diags, owner, hint, context)
        if not _finite(value.value):
            shown = value.text if len(value.text) <= 24 else value.text[:20] + "…"
            message = (f"'{param.name}' is too large: {shown} (integers go up to 2**53 = {INT_LIMIT})"
                       if isinstance(value.value, int) else f"'{param.name}' must be a finite number; {shown} overflows")
            diags.error("E206", message, value.span,
                        f"{param.name} must be {param.range_text()}" if param.range_text() else None)
            return INVALID
        return _check_range(param, value.value if kind == "int" else float(value.value), value, diags, owner)
    if kind == "bool":
        if not isinstance(value, ast.Bool):
            hint = None
            if isinstance(value, ast.Number) and value.value in (0, 1):
                hint = f"write {'true' if value.value else 'false'} instead of {value.text}"
            elif isinstance(value, (ast.String, ast.Name)) and str(_text(value)).lower() in ("true", "false"):
                hint = f"write {str(_text(value)).lower()}, without quotes or capitals"
            return _type_error(param, value, diags, owner, hint or context or "write true or false")
        return value.value
    if kind == "str":
        if not isinstance(value, ast.String):
            hint = f'quote it: "{value.text}"' if isinstance(value, (ast.Name, ast.Number)) else None
            return _type_error(param, value, diags, owner, hint, context)
        return value.value
    if kind == "name":
        if not isinstance(value, ast.Name):
            hint = None
            if isinstance(value, ast.String) and (not param.choices or value.value in param.choices):
                hint = f"names are written without quotes: {value.value}"
            return _type_error(param, value, diags, owner, hint, context)
        if param.choices and value.text not in param.choices:
            diags.error("E201", f"unknown {param.name} '{value.text}'", value.span,
                        did_you_mean(value.text, param.choices) or f"choose one of: {one_of(param.choices)}")
            return INVALID
        return value.text
    if kind == "shape":
        if isinstance(value, ast.ListValue) and value.items:
            bad = next((i for i in value.items if not (isinstance(i, ast.Number) and isinstance(i.value, int)
                                                       and 1 <= i.value <= MAX_DIMENSION)), None)
            if bad is not None:
                if isinstance(bad, ast.Number) and isinstance(bad.value, int) and bad.value > MAX_DIMENSION:
                    diags.error("E206", f"a dimension of '{param.name}' must be at most {MAX_DIMENSION}; "
                                        f"got {bad.text[:24]}", bad.span, "shapes are sizes of real arrays")
                    return INVALID
                if isinstance(bad, ast.Number) and _finite(bad.value) and float(bad.value).is_integer() \
                        and 1 <= bad.value <= MAX_DIMENSION:
                    hint = f"write {int(bad.value)}"
                elif isinstance(bad, ast.Number) and bad.value < 1:
                    hint = "every dimension is at least 1"
                else:
                    hint = f"e.g. `{param.name} [8, 8, 1]`" if param.name in ("input", "reshape") else "e.g. [8, 8, 1]"
                diags.error("E205", f"the dimensions of '{param.name}' must be positive integers; "
                                    f"got {ast.describe(bad)}", bad.span, hint)
                return INVALID
            return tuple(i.value for i in value.items)
        hint = None
        if isinstance(value, ast.Number) and isinstance(value.value, int) and value.value >= 1:
            hint = f"a shape is a list, even with one dimension: [{value.value}]"
        elif isinstance(value, ast.ListValue):
            hint = "give at least one dimension, e.g. [64]"
        return _type_error(param, value, diags, owner, hint, context)
    if kind == "names":
        if isinstance(value, ast.Name):
            return (value.text,)
        if isinstance(value, ast.ListValue) and all(isinstance(i, ast.Name) for i in value.items):
            return tuple(i.text for i in value.items)
        return _type_error(param, value, diags, owner, None, context)
    if kind == "addresses":  # "HOST:PORT" strings (check/runtime.py checks their form)
        items = value.items if isinstance(value, ast.ListValue) else (value,)
        if all(isinstance(i, ast.String) for i in items):
            return tuple(i.value for i in items)
        hint = 'quote each address: ["10.0.0.5:8000", "10.0.0.6:8000"]'
        return _type_error(param, value, diags, owner, hint, context)
    if kind == "size":
        if isinstance(value, ast.Number) and isinstance(value.value, int):
            if not 1 <= value.value <= MAX_DIMENSION:
                diags.error("E206", f"'{param.name}' must be in [1, {MAX_DIMENSION}]; got {value.text[:24]}", value.span,
                            f"{param.name}: {param.doc}" if param.doc else None)
                return INVALID
            return (value.value, value.value)
        items = _int_list(value)
        if items is not None and len(items) == 2 and min(items) >= 1 and max(items) <= MAX_DIMENSION:
            return tuple(items)
        return _type_error(param, value, diags, owner, None, context)
    if kind == "scale":
        if isinstance(value, ast.Name) and value.text in ("minmax", "standard"):
            return value.text
        if isinstance(value, ast.Number) and value.value > 0 and _finite(value.value):
            if not _float32(value.value):
                diags.error("E206", f"'{param.name}' {value.text[:24]} is too large: features are float32, "
                                    f"whose largest value is {FLOAT32_MAX:.4g}", value.span,
                            f"divide by a factor the features can hold, e.g. `{param.name} 255`")
                return INVALID
            return float(value.value)
        hint = did_you_mean(value.text, ("minmax", "standard")) if isinstance(value, ast.Name) else None
        return _type_error(param, value, diags, owner, hint, context)
    if kind == "noise":
        if isinstance(value, ast.Name) and value.text == "auto":
            return "auto"
        if isinstance(value, ast.Number) and value.value >= 0 and _finite(value.value):
            if value.value != 0 and not NOISE_LOW <= value.value <= NOISE_HIGH:
                diags.error("E206", "a noise multiplier must be 0 or in [0.01, 1e6]; "
                                    f"got {value.text}", value.span,
                            "below 0.01 one round spends an ε in the hundreds of thousands; above 1e6 the "
                            "update is lost in the noise. Around 1 is usual, or `noise auto` with an epsilon")
                return INVALID
            return float(value.value)
        return _type_error(param, value, diags, owner, "e.g. `noise 1.1`, or `noise auto` with an epsilon target",
                           context)
    if kind == "rate":  # a learning rate: a number, or a schedule over rounds
        if isinstance(value, ast.Number):
            return resolve(Param(param.name, "float", param.default, param.low, param.high, param.low_open,
                                 param.high_open, doc=param.doc), value, diags, owner, context)
        from ..registry import SCHEDULES

        choice = resolve_form(value, SCHEDULES, "schedule", diags)
        return INVALID if choice is None else choice
    if kind == "clip":
        if isinstance(value, ast.Number):
            if value.value > 0 and _finite(value.value):
                return float(value.value)
            return _type_error(param, value, diags, owner, None, context)
        from ..registry import CLIPS

        choice = resolve_form(value, CLIPS, "clip", diags)
        return INVALID if choice is None else choice
    raise AssertionError(f"unknown parameter type {kind}")


def resolve_form(value: ast.Value, forms: Mapping[str, Form], what: str,
                 diags: Diagnostics) -> Choice | None:
    """Resolve `name` or `name(args…)` against `forms`; None after reporting a problem."""
    if isinstance(value, ast.Name):
        name, args, name_span = value.text, (), value.span
    elif isinstance(value, ast.Call):
        name, args, name_span = value.name.text, value.args, value.name.span
    else:
        hint = _example_hint(forms)
        if isinstance(value, ast.String) and (value.value in forms or did_you_mean(value.value, forms)):
            hint = f"names are written without quotes: {value.value}"
        diags.error("E205", f"{what} must be one of: {one_of(forms)}; got {ast.describe(value)}", value.span,
                    hint)
        return None
    form = forms.get(name)
    if form is None:
        diags.error("E201", f"unknown {what.replace('_', ' ')} '{name}'", name_span,
                    did_you_mean(name, forms) or f"choose one of: {one_of(forms)}")
        return None
    resolved = resolve_args(form, args, value.span, diags)
    return None if resolved is None else Choice(name, resolved, value.span)


def resolve_args(form: Form, args: Iterable[ast.Arg], span: Span, diags: Diagnostics,
                 positional_names: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """Match positional and keyword arguments to a form's parameters, then type each one.

    Positional arguments fill `positional_names` (default: the parameters in order). For
    layers, a positional *name* fills the `activation` parameter wherever it appears.
    """
    ok = True
    given: dict[str, ast.Arg] = {}
    positional = list(positional_names or [p.name for p in form.params])
    slots: dict[str, int] = {}  # parameter → which positional argument filled it (1-based)
    misspelled: set[str] = set()  # parameters a misspelled key was probably meant for
    for arg in args:
        if arg.key is not None:
            key = arg.key.name
            if form.param(key) is None:
                names = [p.name for p in form.params]
                close = closest(key, names)
                if close is not None:
                    misspelled.add(close)
                hint = did_you_mean(key, names) or (f"options: {', '.join(names)}" if names
                                                    else f"'{form.name}' takes no options")
                diags.error("E202", f"'{form.name}' has no option '{key}'", arg.key.span, hint)
                ok = False
                continue
        elif isinstance(arg.value, ast.Name) and form.param("activation") is not None:
            if "activation" in given:
                diags.error("E207", f"'{form.name}' has one activation; got '{given['activation'].value.text}' "
                                    f"and '{arg.value.text}'", arg.span, "keep one of them")
                ok = False
                continue
            key = "activation"
        elif isinstance(arg.value, ast.Name) and arg.value.text in ACTIVATIONS and \
                any(f.param("activation") for f in LAYERS.values()) and form.name in LAYERS:
            takes = " and ".join(f.name for f in LAYERS.values() if f.param("activation"))
            diags.error("E202", f"'{form.name}' has no activation", arg.span,
                        f"only {takes} take an activation; remove '{arg.value.text}'")
            ok = False
            continue
        else:
            key = next((n for n in positional if n not in given and n != "activation"), None)
            if key is not None:
                slots[key] = [n for n in positional if n != "activation"].index(key) + 1
            if key is None:
                diags.error("E203", f"too many arguments for '{form.name}'", arg.span,
                            f"'{form.name}' takes: {', '.join(p.name for p in form.params) or 'nothing'}"
                            + (f"; e.g. `{form.example}`" if form.example else ""))
                ok = False
                continue
        if key in given:
            first = given[key]
            where = "" if first.span.line == arg.span.line else f" on line {first.span.line}"
            diags.error("E207", f"'{key}' is given twice", arg.span,
                        f"first given as `{_source_text(first)}`{where}; remove one")
            ok = False
            continue
        given[key] = arg
    out: dict[str, Any] = {}
    order = [n for n in positional if n != "activation"]
    for param in form.params:
        if param.name in given:
            context = None
            if slots.get(param.name, 1) > 1:
                activation = " (and a name, the activation)" if "activation" in positional else ""
                context = (f"unnamed arguments of '{form.name}' fill {', '.join(order)} in that order"
                           f"{activation}, so this one is {param.name}"
                           + (f"; e.g. `{form.example}`" if form.example else ""))
            value = resolve(param, given[param.name].value, diags, form.name, context)
            ok = ok and value is not INVALID
            out[param.name] = value
        elif param.name in misspelled:
            ok = False  # already reported as a misspelled option
        elif param.required:
            example = f"; e.g. `{form.example}`" if form.example else ""
            diags.error("E204", f"'{form.name}' needs '{param.name}'", span,
                        f"add {param.name} ({type_words(param)}){example}")
            ok = False
        else:
            default = param.default
            if param.type == "size" and isinstance(default, int):
                default = (default, default)
            out[param.name] = default
    return out if ok else None


def default_choice(param: Param, span: Span) -> Choice | None:
    """The Choice a form-typed setting takes when the spec leaves it out."""
    if param.default is None:
        return None
    name, overrides = param.default
    form = param.forms[name]
    args = {p.name: p.default for p in form.params}
    args.update(overrides)
    return Choice(name, args, span)


def _int_list(value: ast.Value) -> list[int] | None:
    if not isinstance(value, ast.ListValue):
        return None
    if not all(isinstance(i, ast.Number) and isinstance(i.value, int) for i in value.items):
        return None
    return [i.value for i in value.items]


def _type_error(param: Param, value: ast.Value, diags: Diagnostics, owner: str, hint: str | None = None,
                context: str | None = None):
    diags.error("E205", f"'{param.name}' must be {type_words(param)}; got {ast.describe(value)}",
                value.span, hint or context or (f"{param.name}: {param.doc}" if param.doc else None))
    return INVALID


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _text(value: ast.Value) -> str:
    return value.value if isinstance(value, ast.String) else value.text


def _source_text(arg: ast.Arg) -> str:
    value = arg.value
    shown = value.text if isinstance(value, (ast.Number, ast.Name)) else ast.describe(value)
    return f"{arg.key.name} = {shown}" if arg.key else shown


def _check_range(param: Param, number, value: ast.Value, diags: Diagnostics, owner: str):
    too_low = param.low is not None and (number <= param.low if param.low_open else number < param.low)
    too_high = param.high is not None and (number >= param.high if param.high_open else number > param.high)
    if too_low or too_high:
        diags.error("E206", f"'{param.name}' must be {param.range_text()}; got {value.text}", value.span,
                    f"{param.name}: {param.doc}" if param.doc else None)
        return INVALID
    return number


def _example_hint(forms: Mapping[str, Form]) -> str | None:
    example = next((f.example for f in forms.values() if f.example), None)
    return f"e.g. `{example}`" if example else None
