"""Text from specs and data files, made safe to print on a terminal.

A spec string, a file name or a data cell can hold control characters: ESC starts ANSI/OSC
sequences (clear the screen, move the cursor, set the window title, write a fake "ok"), CR
overwrites a line, and Unicode format characters (U+202E …) reorder what is shown. Everything
fedlang prints that came from a spec or a data file goes through `terminal_safe`, which shows
each such character as a visible escape (`\\x1b`, `\\u202e`) instead of sending it.
"""

from __future__ import annotations

MAX_QUOTED = 60  # characters of a data file's content quoted in a message, at most


def terminal_safe(text: object) -> str:
    """`text` with every non-printable character (controls, ESC, format characters, line
    breaks, lone surrogates) written as a Python-style escape, so printing it sends no control."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


def quoted(text: object, limit: int = MAX_QUOTED) -> str:
    """A short, printable excerpt of content read from a data file, in quotes: at most `limit`
    characters (then '…'), so an error about a file never reproduces the file."""
    text = str(text)
    cut = len(text) > limit
    return "'" + terminal_safe(text[:limit]) + ("…'" if cut else "'")
