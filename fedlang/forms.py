"""Param and Form: the vocabulary every definition in the registry is written in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Param:
    """One option of a form or one setting of a block, with its type and valid range.

    type: int | float | bool | str | name | shape | names | addresses ("HOST:PORT" strings) |
          size (int or [int, int]) |
          scale (minmax, standard or a positive number) | form (one of `forms`)
    """

    name: str
    type: str
    default: object = REQUIRED
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    forms: Mapping[str, "Form"] | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_text(self) -> str | None:
        lo = None if self.low is None else f"{'>' if self.low_open else '>='} {_fmt(self.low)}"
        hi = None if self.high is None else f"{'<' if self.high_open else '<='} {_fmt(self.high)}"
        if lo and hi:
            return f"in {'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}{')' if self.high_open else ']'}"
        return lo or hi


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Form:
    """A named choice with options, written `name` or `name(arg, key = value)`."""

    name: str
    params: tuple[Param, ...] = ()
    doc: str = ""
    example: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def forms(*forms: Form) -> dict[str, Form]:
    return {f.name: f for f in forms}
