"""Typing a block's `key value` settings against its parameter table."""

from __future__ import annotations

import difflib

from typing import Any, Iterable

from .. import ast
from ..diagnostics import Diagnostics, Span, did_you_mean
from ..registry import Param, home_of, move_hint
from .values import INVALID, default_choice, resolve


class Settings:
    """Resolved settings of one block: `settings["rounds"]`, plus where each was written."""

    def __init__(self, values: dict[str, Any], spans: dict[str, Span], block_span: Span,
                 settings: dict[str, ast.Setting] | None = None):
        self.values = values
        self.spans = spans
        self.block_span = block_span
        self.settings = settings or {}

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def given(self, key: str) -> bool:
        return key in self.spans

    def span(self, key: str) -> Span:
        return self.spans.get(key, self.block_span)

    def key_span(self, key: str) -> Span:
        """The setting's name, e.g. `mu` in `mu 0.01` (the block header if it was not given)."""
        return self.settings[key].key.span if key in self.settings else self.block_span

    def value_span(self, key: str) -> Span:
        """The setting's value, e.g. `0.01` in `mu 0.01` (the block header if it was not given)."""
        return self.settings[key].value.span if key in self.settings else self.block_span

    def valid(self, *keys: str) -> bool:
        return all(self.values.get(k) is not INVALID for k in keys)


def resolve_settings(block: str, settings: Iterable[ast.Setting], params: tuple[Param, ...],
                     block_span: Span, diags: Diagnostics) -> Settings:
    """Type every setting; report unknown, duplicate and missing ones."""
    table = {p.name: p for p in params}
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    given: dict[str, ast.Setting] = {}
    misspelled: set[str] = set()  # required settings already reported as a typo: no "needs" error
    for setting in settings:
        key = setting.key.name
        param = table.get(key)
        if param is None:
            where = home_of(key)
            if where is not None and where[0] != block:
                home, what = where
                diags.error("E208", f"'{key}' is {what}, not a {block} setting", setting.key.span,
                            move_hint(home))
            else:
                diags.error("E208", f"unknown setting '{key}' in the {block} block", setting.key.span,
                            did_you_mean(key, table) or f"{block} settings: {', '.join(table)}")
                misspelled.update(difflib.get_close_matches(key, list(table), n=1, cutoff=0.6))
            continue
        if key in spans:
            diags.error("E207", f"'{key}' is set twice in the {block} block", setting.key.span,
                        f"first set on line {spans[key].line}")
            continue
        spans[key] = setting.span
        given[key] = setting
        values[key] = resolve(param, setting.value, diags, block)
    header = Span(block_span.line, block_span.column, block_span.line, block_span.column + len(block))
    for param in params:
        if param.name in values:
            continue
        if param.required and param.name in misspelled:
            values[param.name] = INVALID
        elif param.required:
            diags.error("E209", f"the {block} block needs '{param.name}'", header,
                        f"add a line `{param.name} …` ({param.doc})")
            values[param.name] = INVALID
        elif param.type == "form":
            values[param.name] = default_choice(param, header)
        else:
            values[param.name] = param.default
    return Settings(values, spans, header, given)
