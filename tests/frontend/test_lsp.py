"""`fedlang lsp`: the analysis behind each feature, and a real LSP session over stdio.

The session test starts `python -m fedlang lsp` and talks to it with pygls' client in lsprotocol
messages: initialize, didOpen (diagnostics), hover, completion, definition, didChange
(diagnostics again), shutdown.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from fedlang.tooling import lsp as server

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.fed"
ROBUST = ROOT / "examples" / "robust_trimmed_mean.fed"


def _position(text: str, needle: str, offset: int = 0) -> tuple[int, int]:
    index = text.index(needle) + offset
    return text.count("\n", 0, index), index - (text.rfind("\n", 0, index) + 1)


def test_diagnostics_are_the_checkers():
    text = QUICKSTART.read_text().replace("dense   128 relu", "dence   128 relu")
    analysis = server.analyse(text, QUICKSTART)
    (diag,) = [d for d in analysis.diagnostics if d.severity == "error"]
    assert diag.code == "E201" and diag.hint == "did you mean 'dense'?"
    lsp_diag = server.to_lsp_diagnostic(diag)
    line, column = _position(text, "dence")
    assert (lsp_diag.range.start.line, lsp_diag.range.start.character) == (line, column)
    assert lsp_diag.range.end.character == column + len("dence") and lsp_diag.code == "E201"
    assert "hint: did you mean 'dense'?" in lsp_diag.message


def test_hover_layer_step_setting_and_privacy():
    text = ROBUST.read_text()
    analysis = server.analyse(text, ROBUST)
    assert analysis.compiled is not None
    hover = server.hover_text(text, *_position(text, "dense   128"), analysis)
    assert hover == "**dense**: [64] → [128], 8,320 parameters"
    hover = server.hover_text(text, *_position(text, "clipped @CLIENTS"), analysis)
    assert "`{float32[9610]}@CLIENTS`" in hover
    hover = server.hover_text(text, *_position(text, "all @SERVER"), analysis)
    assert "`float32[?,9610]@SERVER`" in hover
    hover = server.hover_text(text, *_position(text, "local_epochs"), analysis)
    assert hover.startswith("**local_epochs** (train setting): passes over local data per round") and "in [1, 10000]" in hover  # its range
    dp = (ROOT / "examples" / "dp_digits.fed").read_text()
    hover = server.hover_text(dp, *_position(dp, "privacy {"), server.analyse(dp, ROOT / "examples" / "dp_digits.fed"))
    assert hover is None or "ε" not in hover  # the keyword line is outside the block
    line, _ = _position(dp, "privacy {")
    hover = server.hover_text(dp, line + 1, 4, server.analyse(dp, ROOT / "examples" / "dp_digits.fed"))
    assert hover.startswith("**ε = ") and "after" in hover and "rounds" in hover


def test_completion_from_the_registry():
    text = QUICKSTART.read_text()
    top = {c.label for c in server.completions(text + "\n", text.count("\n"), 0)}
    assert {"model", "data", "train", "privacy", "aggregate"} <= top
    line, _ = _position(text, "  source")
    in_data = {c.label for c in server.completions(text, line, 2)}
    assert {"source", "partition", "batch", "shuffle"} <= in_data and "rounds" not in in_data
    after_source = {c.label for c in server.completions(text.replace("source    sklearn.digits", "source "),
                                                        line, len("  source "))}
    assert {"sklearn.digits", "synthetic", "npz", "csv"} <= after_source
    line, _ = _position(text, "  dense   128")
    in_model = {c.label for c in server.completions(text, line, 2)}
    assert {"dense", "conv2d", "dropout", "input", "loss"} <= in_model
    robust = ROBUST.read_text()
    line, column = _position(robust, "aggregator trimmed", len("aggregator "))
    names = {c.label for c in server.completions(robust, line, column)}
    assert {"trimmed", "median", "krum", "trimmed_mean"} <= names
    line, _ = _position(text, "client_optimizer sgd")
    optimizers = {c.label for c in server.completions(text, line, len("  client_optimizer "))}
    assert optimizers == {"sgd", "adam"}


def test_definition_of_an_aggregate_name():
    text = ROBUST.read_text()
    target = server.definition(text, *_position(text, "aggregator trimmed", len("aggregator ")))
    line, column = _position(text, "trimmed(update")
    assert target == (line, column, column + len("trimmed"))
    assert server.definition(text, *_position(text, "sklearn.digits")) is None


def test_a_session_over_stdio(tmp_path):
    from lsprotocol import types as lsp
    from pygls.lsp.client import BaseLanguageClient

    spec = tmp_path / "quick.fed"
    text = QUICKSTART.read_text()
    spec.write_text(text)
    uri = spec.as_uri()

    async def session():
        client = BaseLanguageClient("fedlang-test", "0")
        published: asyncio.Queue = asyncio.Queue()

        @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params):
            published.put_nowait(params)

        env = dict(os.environ, PYTHONPATH=str(ROOT))
        await client.start_io(sys.executable, "-m", "fedlang", "lsp", env=env, cwd=str(ROOT))
        await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(),
                                                           root_uri=tmp_path.as_uri()))
        client.initialized(lsp.InitializedParams())
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="fedlang", version=1, text=text)))
        opened = await asyncio.wait_for(published.get(), 120)

        hover = await client.text_document_hover_async(lsp.HoverParams(
            lsp.TextDocumentIdentifier(uri), lsp.Position(*_position(text, "dense   128"))))
        completion = await client.text_document_completion_async(lsp.CompletionParams(
            lsp.TextDocumentIdentifier(uri), lsp.Position(*_position(text, "  source"))))

        broken = text.replace("rounds 30", "rounds 0")
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            [lsp.TextDocumentContentChangeEvent_Type2(text=broken)]))
        changed = await asyncio.wait_for(published.get(), 120)
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
        return opened, hover, completion, changed

    opened, hover, completion, changed = asyncio.run(session())
    assert opened.uri == uri and [d.code for d in opened.diagnostics] == []
    assert "8,320 parameters" in hover.contents.value
    assert "partition" in {item.label for item in completion.items}
    (error,) = changed.diagnostics
    assert error.code == "E206" and error.severity == lsp.DiagnosticSeverity.Error
    assert error.range.start.line == _position(text, "rounds 30")[0]
