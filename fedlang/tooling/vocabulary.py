"""Every word a spec may use, read from the registry — the one place the editor tools look.

The highlighter, the TextMate grammar generator and the language server take their names and
documentation from here, so a new layer, source or block in fedlang/registry.py (or
fedlang/constructs/) reaches the editor with no other change.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .. import registry
from ..forms import Form, Param


@dataclass(frozen=True)
class Word:
    """A name with where it belongs and what it means (for completion and hover)."""

    name: str
    kind: str  # block, setting, model line, layer, source, partition, test, optimizer, aggregator, …
    doc: str = ""
    form: Form | None = None
    param: Param | None = None


MODEL_LINES = tuple(registry.MODEL_LINES)
LITERALS = ("true", "false")
STEP_KEYWORDS = ("return",)
PLACEMENTS = ("CLIENTS", "SERVER")
DTYPES = ("float32",)


def block_keywords() -> tuple[str, ...]:
    """Top-level keywords: `experiment`, `seed` and every block."""
    return tuple(registry.BLOCK_KEYWORDS)


def settings_by_block() -> dict[str, tuple[Param, ...]]:
    """The `key value` settings of each block written with settings (data, train, privacy, …)."""
    return {b.keyword: tuple(b.settings) for b in registry.BLOCK_DEFS if b.settings}


def block_docs() -> dict[str, str]:
    return {b.keyword: b.docs for b in registry.BLOCK_DEFS}


def layers() -> dict[str, Form]:
    return dict(registry.LAYERS)


def sources() -> dict[str, Form]:
    return dict(registry.SOURCES)


def partitions() -> dict[str, Form]:
    return dict(registry.PARTITIONS)


def tests() -> dict[str, Form]:
    return dict(registry.TESTS)


def optimizers() -> dict[str, dict[str, Form]]:
    return {"client_optimizer": dict(registry.CLIENT_OPTIMIZERS), "server_optimizer": dict(registry.SERVER_OPTIMIZERS)}


def aggregators() -> dict[str, Form]:
    """Library aggregators for `aggregation { aggregator … }` (an aggregate block's name works too)."""
    return dict(registry.ROBUST_AGGREGATORS)


def algorithms() -> dict[str, str]:
    return dict(registry.ALGORITHMS)


def step_operators() -> dict[str, str]:
    """Operators of `aggregate`/`round` steps, with their docs (fedlang/constructs/operators.py)."""
    from ..constructs.operators import OPERATORS

    return {name: op.doc for name, op in OPERATORS.items()}


def choices_of(param: Param) -> dict[str, str]:
    """The names a setting accepts: its forms (with docs) or its plain choices."""
    if param.forms:
        return {name: form.doc for name, form in param.forms.items()}
    return {name: "" for name in param.choices}


@functools.lru_cache(maxsize=1)
def words() -> tuple[Word, ...]:
    """Every name of the language once per meaning, for highlighting, completion and hover."""
    out: list[Word] = []
    docs = block_docs()
    out += [Word(k, "block", docs.get(k, "")) for k in block_keywords()]
    out += [Word(k, "model line") for k in MODEL_LINES]
    out += [Word(n, "layer", f.doc, form=f) for n, f in layers().items()]
    for block, params in settings_by_block().items():
        for p in params:
            out.append(Word(p.name, f"{block} setting", p.doc, param=p))
            for name, form in (p.forms or {}).items():
                out.append(Word(name, f"{p.name} form", form.doc, form=form))
            out += [Word(c, f"{p.name} value") for c in p.choices]
    out += [Word(n, "algorithm", d) for n, d in algorithms().items()]
    out += [Word(n, "activation") for n in registry.ACTIVATIONS]
    out += [Word(n, "padding") for n in registry.PADDINGS]
    out += [Word(n, "loss", f.doc, form=f) for n, f in registry.LOSSES.items()]
    out += [Word(n, "metric") for n in registry.METRICS]
    out += [Word(n, "step operator", d) for n, d in step_operators().items()]
    return tuple(out)


def keyword_lists() -> dict[str, list[str]]:
    """The highlighter's word classes, sorted: keywords, layers, settings, builtins (named values)."""
    settings = {p.name for params in settings_by_block().values() for p in params} | {"seed"}
    builtins = set()
    for w in words():
        if w.kind.endswith(" form") or w.kind.endswith(" value") or w.kind in (
                "algorithm", "activation", "padding", "loss", "metric", "step operator"):
            builtins.add(w.name)
    keywords = set(block_keywords()) | set(MODEL_LINES) | set(STEP_KEYWORDS)
    layer_names = set(layers())
    return {
        "keywords": sorted(keywords),
        "layers": sorted(layer_names - keywords),
        "settings": sorted(settings - keywords - layer_names),
        "builtins": sorted(builtins - keywords - layer_names - settings),
        "constants": sorted(LITERALS),
        "placements": sorted(PLACEMENTS),
        "types": sorted(DTYPES),
    }
