"""`fedlang lsp`: a language server (pygls) for .fed specs.

- diagnostics on open/change/save: the checker's own codes, spans, hints and warnings;
- hover: a layer line's output shape and parameter count, a step's TFF type, a setting's
  documentation and range, a name's documentation, ε after the declared rounds on the privacy block;
- completion from the registry (through fedlang/tooling/vocabulary.py): block keywords at the top
  level, settings / layers / model lines inside a block, a setting's forms or choices after it
  (sources, partitions, optimizers, aggregators and the spec's own `aggregate` names);
- go to definition of an `aggregate` name (in `aggregator …` or a step that calls it).

The analysis functions take the text and a position and return plain values; `build_server`
wires them to LSP messages. tests/frontend/test_lsp.py drives both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..diagnostics import Diagnostic, Source, SpecError
from . import vocabulary

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_AGGREGATE = re.compile(r"^[ \t]*aggregate[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)


@dataclass
class Analysis:
    """The last result of compiling one document."""

    diagnostics: tuple[Diagnostic, ...]
    compiled: object | None  # pipeline.Compiled when the spec checks


def analyse(text: str, path: Path | None) -> Analysis:
    """Compile the text as the CLI would (relative paths against the file's folder)."""
    from ..pipeline import compile_source

    name = str(path) if path else "untitled.fed"
    try:
        compiled = compile_source(Source(name, text), base_dir=path.parent if path else None)
    except SpecError as exc:
        return Analysis(exc.diagnostics, None)
    except Exception as exc:  # noqa: BLE001 - a compiler bug must not kill the editor's server
        from ..diagnostics import Span

        return Analysis((Diagnostic("internal", f"internal compiler error (a bug in fedlang): "
                                                f"{type(exc).__name__}: {exc}", Span(1, 1, 1, 2)),), None)
    return Analysis(tuple(compiled.checked.warnings), compiled)


# ---------------------------------------------------------------- where the cursor is


def word_at(text: str, line: int, character: int) -> tuple[str, int, int] | None:
    """(word, start, end) under a 0-based position; dotted names are one word."""
    lines = text.split("\n")
    if line >= len(lines):
        return None
    for m in _WORD.finditer(lines[line]):
        if m.start() <= character <= m.end():
            return m.group(0), m.start(), m.end()
    return None


def enclosing_block(text: str, line: int, character: int) -> tuple[str | None, int | None]:
    """(keyword, line) of the block the position is in, or (None, None) at the top level."""
    offset = sum(len(l) + 1 for l in text.split("\n")[:line]) + character
    stack: list[int] = []
    i = 0
    while i < min(offset, len(text)):
        c = text[i]
        if c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if c in "\"'":
            end = i + 1
            while end < len(text) and text[end] not in (c, "\n"):
                end += 2 if text[end] == "\\" else 1
            i = end + 1
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            stack.pop()
        i += 1
    if not stack:
        return None, None
    start = text.rfind("\n", 0, stack[-1]) + 1
    header = text[start:stack[-1]].split()
    return (header[0] if header else None), text.count("\n", 0, stack[-1])


def aggregate_names(text: str) -> dict[str, int]:
    """name → 0-based line of every `aggregate NAME(…)` block in the text."""
    return {m.group(1): text.count("\n", 0, m.start(1)) for m in _AGGREGATE.finditer(text)}


# ---------------------------------------------------------------- completion


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # keyword, setting, layer, value, aggregate
    detail: str = ""


def completions(text: str, line: int, character: int) -> list[Completion]:
    """What may be written at a position, from the registry (and the spec's aggregate names)."""
    block, _ = enclosing_block(text, line, character)
    before = text.split("\n")[line][:character] if line < len(text.split("\n")) else ""
    before = before.split("#")[0]
    words = before.split()
    typing_word = bool(before) and not before[-1].isspace()
    previous = words[:-1] if typing_word else words
    docs = vocabulary.block_docs()
    if block is None:
        if previous:
            return []
        return [Completion(k, "keyword", docs.get(k, "")) for k in vocabulary.block_keywords()]
    if block == "model":
        if previous:
            return []
        return ([Completion(k, "keyword", "model line") for k in vocabulary.MODEL_LINES]
                + [Completion(n, "layer", f.doc) for n, f in vocabulary.layers().items()])
    settings = {p.name: p for p in vocabulary.settings_by_block().get(block, ())}
    if not settings:  # aggregate / round steps
        return [Completion(n, "function", d) for n, d in vocabulary.step_operators().items()] + \
               [Completion(n, "aggregate", "aggregate block") for n in aggregate_names(text)]
    # settings may share a line: the word before the cursor decides
    if previous and previous[-1] in settings:
        param = settings[previous[-1]]
        out = [Completion(n, "value", d) for n, d in vocabulary.choices_of(param).items()]
        if block == "aggregation" and param.name == "aggregator":
            out += [Completion(n, "aggregate", "aggregate block in this spec") for n in aggregate_names(text)]
        return out
    return [Completion(p.name, "setting", _param_text(p)) for p in settings.values()]


def _param_text(p) -> str:
    parts = [p.doc] if p.doc else []
    if p.range_text():
        parts.append(p.range_text())
    if not p.required and p.default is not None:
        parts.append(f"default {_default(p.default)}")
    elif p.required:
        parts.append("required")
    return "; ".join(parts)


def _default(value) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        name, options = value
        inner = ", ".join(f"{k} = {v}" for k, v in options.items())
        return f"{name}({inner})" if inner else name
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------- hover


def hover_text(text: str, line: int, character: int, analysis: Analysis | None) -> str | None:
    """Markdown shown on hover at a 0-based position, or None."""
    found = word_at(text, line, character)
    if found is None:
        return None
    word = found[0]
    block, _ = enclosing_block(text, line, character)
    checked = analysis.compiled.checked if analysis and analysis.compiled else None
    line_no = line + 1

    if checked is not None:
        if block == "model":
            layer = next((l for l in checked.model.layers if l.line == line_no), None)
            if layer is not None:
                return (f"**{layer.kind}**: {list(layer.input_shape)} → {list(layer.output_shape)}, "
                        f"{layer.params:,} parameters")
        for agg in checked.all_aggregates:
            for step in agg.steps:
                if step.line == line_no:
                    size = checked.model.param_count
                    name = step.target or "return"
                    return f"`{name}`: `{step.type.notation(size)}` — {step.operator}({', '.join(step.operands)})"
        if block == "privacy" and checked.privacy is not None:
            p = checked.privacy
            target = f" (target {p.epsilon_target:g})" if p.epsilon_target is not None else ""
            solved = " (solved by noise auto)" if p.noise_solved else ""
            return (f"**ε = {p.epsilon:.3g}**{target} at δ = {p.delta:g} after {checked.train.rounds} rounds "
                    f"({p.accountant}); noise multiplier {p.noise_multiplier:.4g}{solved}, "
                    f"sampling rate {p.sampling_rate:.3g}")

    if block is None and word in vocabulary.block_keywords():
        return f"**{word}** block — docs/language.md, “{vocabulary.block_docs().get(word, '')}”"
    settings = {p.name: p for p in vocabulary.settings_by_block().get(block or "", ())}
    if word in settings:
        return f"**{word}** ({block} setting): {_param_text(settings[word])}"
    if block == "model" and word in vocabulary.layers():
        form = vocabulary.layers()[word]
        return f"**{word}** layer: {form.doc}" + _options_text(form)
    for w in vocabulary.words():
        if w.name == word and w.kind not in ("block",) and not w.kind.endswith(" setting"):
            extra = _options_text(w.form) if w.form is not None else ""
            return f"**{word}** ({w.kind}){': ' + w.doc if w.doc else ''}{extra}"
    if word in aggregate_names(text):
        return f"**{word}**: aggregate block on line {aggregate_names(text)[word] + 1}"
    return None


def _options_text(form) -> str:
    if not form.params:
        return ""
    return "\n\n" + "\n".join(f"- `{p.name}`: {_param_text(p)}" for p in form.params)


# ---------------------------------------------------------------- definition


def definition(text: str, line: int, character: int) -> tuple[int, int, int] | None:
    """(line, start, end) of the `aggregate` block named under the cursor, 0-based."""
    found = word_at(text, line, character)
    if found is None:
        return None
    names = aggregate_names(text)
    if found[0] not in names:
        return None
    target = names[found[0]]
    column = text.split("\n")[target].index(found[0], text.split("\n")[target].index("aggregate") + 9)
    return target, column, column + len(found[0])


# ---------------------------------------------------------------- the server


def path_of(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def to_lsp_diagnostic(d: Diagnostic):
    from lsprotocol import types as lsp

    span = d.span
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "") + "".join(f"\nnote: {n}" for n in d.notes)
    return lsp.Diagnostic(
        range=lsp.Range(lsp.Position(span.line - 1, span.column - 1),
                        lsp.Position(span.end_line - 1, max(span.end_column - 1, span.column))),
        message=message,
        severity=lsp.DiagnosticSeverity.Error if d.severity == "error" else lsp.DiagnosticSeverity.Warning,
        code=d.code,
        source="fedlang",
    )


_KINDS = {"keyword": 14, "setting": 10, "layer": 7, "value": 12, "aggregate": 3, "function": 3}


def build_server():
    """The pygls server with every feature registered."""
    from lsprotocol import types as lsp
    from pygls.server import LanguageServer

    from .. import __version__

    server = LanguageServer("fedlang", __version__)
    server.analyses: dict[str, Analysis] = {}

    def refresh(ls, uri: str) -> None:
        document = ls.workspace.get_text_document(uri)
        analysis = analyse(document.source, path_of(uri))
        if analysis.compiled is not None or uri not in ls.analyses:
            ls.analyses[uri] = analysis
        else:  # keep the last good compile for hover, with the new diagnostics
            ls.analyses[uri] = Analysis(analysis.diagnostics, ls.analyses[uri].compiled)
        ls.publish_diagnostics(uri, [to_lsp_diagnostic(d) for d in analysis.diagnostics])

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls, params: lsp.DidOpenTextDocumentParams):
        refresh(ls, params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls, params: lsp.DidChangeTextDocumentParams):
        refresh(ls, params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls, params: lsp.DidSaveTextDocumentParams):
        refresh(ls, params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: lsp.HoverParams):
        document = ls.workspace.get_text_document(params.text_document.uri)
        text = hover_text(document.source, params.position.line, params.position.character,
                          ls.analyses.get(params.text_document.uri))
        if text is None:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[" ", "\t"]))
    def completion(ls, params: lsp.CompletionParams):
        document = ls.workspace.get_text_document(params.text_document.uri)
        items = completions(document.source, params.position.line, params.position.character)
        return lsp.CompletionList(is_incomplete=False, items=[
            lsp.CompletionItem(label=c.label, kind=lsp.CompletionItemKind(_KINDS.get(c.kind, 1)), detail=c.detail)
            for c in items])

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def goto_definition(ls, params: lsp.DefinitionParams):
        document = ls.workspace.get_text_document(params.text_document.uri)
        found = definition(document.source, params.position.line, params.position.character)
        if found is None:
            return None
        line, start, end = found
        return lsp.Location(uri=params.text_document.uri,
                            range=lsp.Range(lsp.Position(line, start), lsp.Position(line, end)))

    return server


def main() -> None:  # pragma: no cover - run by `fedlang lsp`
    build_server().start_io()
