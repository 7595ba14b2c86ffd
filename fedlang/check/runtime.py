"""The runtime pass: where a spec's rounds run (local TFF workers, or running ones elsewhere).

`runtime { workers 4 }` starts four local worker_binary processes that share each round's clients;
`runtime { remote ["10.0.0.5:8000", "10.0.0.6:8000"] }` uses workers started on those machines with
`fedlang worker --port 8000`. `fedlang run --workers N / --worker HOST:PORT` replaces the block.
"""

from __future__ import annotations

from .. import ast
from ..checked import RuntimeConfig
from ..diagnostics import Diagnostics
from ..registry import RUNTIME_SETTINGS
from .settings import resolve_settings


FORM_HINT = 'e.g. "10.0.0.5:8000", the port given to `fedlang worker --port 8000` on that machine'


def address_problem(address: str) -> str | None:
    """Why `address` is not a worker's HOST:PORT (port 1–65535), or None."""
    host, colon, port = address.rpartition(":")
    if not colon:
        return "it has no :PORT"
    if not host.strip() or any(c.isspace() for c in address):
        return "it has no host" if not host.strip() else "it contains a space"
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        return "its port is not a number from 1 to 65535"
    return None


def check_runtime(block: ast.RuntimeBlock, diags: Diagnostics) -> RuntimeConfig | None:
    """Type the block's settings; remote addresses must be distinct HOST:PORT, without `workers`."""
    before = len(diags.errors)
    s = resolve_settings("runtime", block.settings, RUNTIME_SETTINGS, block.span, diags)
    if s.given("remote") and isinstance(s["remote"], tuple) and s["remote"]:
        value = s.settings["remote"].value
        items = value.items if isinstance(value, ast.ListValue) else (value,)
        seen: dict[str, int] = {}
        for item in items:
            problem, hint = address_problem(item.value), FORM_HINT
            if problem is None and item.value in seen:
                problem, hint = f"it is listed twice (first as item {seen[item.value]})", "list each worker once"
            seen.setdefault(item.value, len(seen) + 1)
            if problem is not None:
                diags.error("E982", f"a remote worker is \"HOST:PORT\"; {item.value!r}: {problem}", item.span, hint)
        if s.given("workers"):
            diags.error("E981", "`workers` starts local workers and `remote` uses running ones: not both",
                        s.key_span("workers"),
                        "remote workers share the round among themselves: remove `workers`")
    if s.given("timeout") and not (s.given("remote") or (s.given("workers") and s["workers"] > 1)):
        diags.warning("W981", "`timeout` applies to a pool of workers; with one local worker it is not used",
                      s.key_span("timeout"), "add `workers N` (N > 1) or `remote [...]`, or remove `timeout`")
    if len(diags.errors) > before:
        return None
    return RuntimeConfig(workers=s["workers"], remote=tuple(s["remote"]), timeout=s["timeout"],
                         lines=(block.span.line, block.span.end_line))
