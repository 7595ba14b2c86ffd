"""The file handling of `fedlang fmt`: folders, stdin, `--check` diffs and exit codes."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from ..diagnostics import Source, SpecError, render_all
from ..parse import read_source
from .explain import pointer
from .fmt import FormatError, format_source

EXIT_OK, EXIT_CHANGED_OR_BAD, EXIT_INTERNAL = 0, 1, 3


def _spec_files(paths: tuple[str, ...]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if path != "-" and Path(path).is_dir():
            files += sorted(str(p) for p in Path(path).rglob("*.fed"))
        else:
            files.append(path)
    return files


def format_paths(paths: tuple[str, ...], check: bool, color: bool = False) -> int:
    """Format every file; with `check`, print diffs instead. Returns the exit code."""
    status = EXIT_OK
    for path in _spec_files(paths):
        try:
            source = Source("<stdin>", sys.stdin.read()) if path == "-" else read_source(path)
            formatted = format_source(source)
        except SpecError as exc:
            click.echo(render_all(exc.source, exc.diagnostics, color=color), err=True)
            click.echo(pointer(d.code for d in exc.diagnostics if d.severity == "error"), err=True)
            status = max(status, EXIT_CHANGED_OR_BAD)
            continue
        except FormatError as exc:  # pragma: no cover - a bug in fmt; the file is left as it is
            click.echo(f"{path}: internal formatter error: {exc}; the file is left unchanged\n"
                       "  this is a bug in fedlang; please report it with the file", err=True)
            status = EXIT_INTERNAL
            continue
        if path == "-" and not check:
            click.echo(formatted, nl=False)
            continue
        if formatted == source.text:
            continue
        if check:
            diff = difflib.unified_diff(source.text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                                        fromfile=f"{source.name} (as written)", tofile=f"{source.name} (fedlang fmt)")
            click.echo("".join(line if line.endswith("\n") else line + "\n" for line in diff), nl=False)
            status = max(status, EXIT_CHANGED_OR_BAD)
        else:
            Path(path).write_text(formatted, encoding="utf-8", newline="\n")
            click.echo(f"formatted {path}")
    return status
