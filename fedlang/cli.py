"""The `fedlang` command: check, emit and run .fed specs.

Exit codes: 0 success, 1 a bad spec or a failed run, 2 bad usage, 3 a compiler bug, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import __version__
from .diagnostics import SpecError, render, render_all
from .emit.encode import EmitError
from .terminal import terminal_safe

EXIT_BAD_SPEC = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


def _compile_or_exit(spec_path: str, base_dir: Path | None = None):
    from .parse import read_source
    from .pipeline import compile_source

    try:
        compiled = compile_source(read_source(spec_path), base_dir)
    except SpecError as exc:
        click.echo(render_all(exc.source, exc.diagnostics, color=_color(sys.stderr)), err=True)
        _explain_pointer(exc.diagnostics)
        sys.exit(EXIT_BAD_SPEC)
    except OSError as exc:
        click.echo(f"error: cannot read {terminal_safe(spec_path)}: {terminal_safe(exc.strerror or exc)}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # a compiler bug: one line for the user, details on request
        if os.environ.get("FEDLANG_DEBUG"):
            raise
        click.echo(f"{terminal_safe(spec_path)}: internal compiler error: {type(exc).__name__}: "
                   f"{terminal_safe(exc)}\n"
                   "  this is a bug in fedlang; rerun with FEDLANG_DEBUG=1 for the traceback and report it",
                   err=True)
        sys.exit(EXIT_INTERNAL)
    for warning in compiled.checked.warnings:
        click.echo(render(compiled.source, warning, color=_color(sys.stderr)), err=True)
    return compiled


def _explain_pointer(diagnostics) -> None:
    """The report's last line: which `fedlang explain` to run for the errors above."""
    from .tooling.explain import pointer

    line = pointer(d.code for d in diagnostics if d.severity == "error")
    if line:
        click.echo(line, err=True)


def _color(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


_spec_argument = click.argument("spec", type=click.Path(exists=True, dir_okay=False, readable=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fedlang")
def main() -> None:
    """Declare federated-learning experiments in .fed files; check, run and emit them as TFF."""


@main.command()
@_spec_argument
@click.option("--types", is_flag=True, help="Also print the TFF type of every value and each layer's shape.")
def check(spec: str, types: bool) -> None:
    """Parse and check SPEC, then summarise the experiment it declares."""
    from .summary import summary_lines

    compiled = _compile_or_exit(spec)
    c = compiled.checked
    click.echo(f"{terminal_safe(spec)}: ok — experiment {terminal_safe(repr(c.experiment))}, seed {c.seed}")
    rows = summary_lines(compiled.checked, compiled.plan, show_types=types)
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        click.echo(f"  {label:<{width}}  {terminal_safe(text)}")


@main.command()
@_spec_argument
def plan(spec: str) -> None:
    """Before running SPEC: bytes per client and in total, ε(δ), the budget, incompatibilities."""
    from .report import plan_rows

    compiled = _compile_or_exit(spec)
    c = compiled.checked
    click.echo(f"plan for {terminal_safe(spec)} — experiment {terminal_safe(repr(c.experiment))}, {c.train.algorithm}")
    rows = plan_rows(compiled.checked, compiled.plan)
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        click.echo(f"  {label:<{width}}  {terminal_safe(text)}")
    warnings = [w for w in c.warnings if w.code != "W001"]
    click.echo(f"  {'warnings':<{width}}  " + ("none" if not warnings else f"{len(warnings)} (shown above)"))


def _worker_options(command):
    """--workers / --worker / --worker-timeout: where the rounds run, instead of the runtime block."""
    for option in reversed([
        click.option("--workers", type=click.IntRange(min=1, max=64),
                     help="Local TFF worker processes that share each round's clients (replaces the runtime block's)."),
        click.option("--worker", "worker_addresses", multiple=True, metavar="HOST:PORT",
                     help="Run on the TFF worker at HOST:PORT (started there with `fedlang worker --port PORT`); "
                          "repeat. Replaces the runtime block's workers."),
        click.option("--worker-timeout", type=click.FloatRange(min=1, max=86_400),
                     help="Seconds a worker may take to answer one call before the run fails naming it (default: "
                          "the runtime block's timeout, else 600)."),
    ]):
        command = option(command)
    return command


def with_worker_options(compiled, workers: int | None, addresses: tuple[str, ...], timeout: float | None):
    """The compiled spec `fedlang run` executes: --workers N / --worker HOST:PORT… replace the runtime block's
    workers (and --worker-timeout its timeout), and the program is lowered again for them."""
    if not (workers or addresses or timeout):
        return compiled
    from .checked import RuntimeConfig

    given = compiled.checked.runtime or RuntimeConfig()
    replaced = bool(workers or addresses)
    runtime = RuntimeConfig(workers=(workers or 1) if replaced else given.workers,
                            remote=tuple(addresses) if replaced else given.remote, timeout=timeout or given.timeout)
    if timeout and not runtime.pooled:
        raise click.UsageError("--worker-timeout applies to a pool of workers (--workers N with N > 1, --worker "
                               "HOST:PORT, or the spec's runtime block); one local worker does not use it")
    return compiled.with_runtime(runtime)


def check_worker_options(workers: int | None, addresses: tuple[str, ...], sweep: bool,
                         timeout: float | None = None) -> None:
    """`fedlang run`'s --workers/--worker(-timeout): one or the other, addresses HOST:PORT, not in sweeps."""
    from .check.runtime import address_problem

    if addresses and workers is not None:
        raise click.UsageError("--workers N starts local workers, --worker HOST:PORT uses running ones: not both")
    if sweep and (addresses or workers is not None or timeout):
        raise click.UsageError("--workers, --worker and --worker-timeout apply to one run, not to a sweep (--set/--seeds); "
                               "a runtime block in the spec applies to every run of a sweep")
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            raise click.UsageError(f"--worker takes HOST:PORT (e.g. 10.0.0.5:8000), not {address!r}: {problem}")


@main.command()
@_spec_argument
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write the program to this file instead of standard output.")
@_worker_options
def emit(spec: str, output: str | None, workers: int | None, worker_addresses: tuple[str, ...],
         worker_timeout: float | None) -> None:
    """Print SPEC as a standalone TFF Python program (no fedlang needed to run it).

    With --workers N or --worker HOST:PORT…, the program `fedlang run` would execute with them."""
    check_worker_options(workers, worker_addresses, sweep=False)
    compiled = with_worker_options(_compile_or_exit(spec), workers, worker_addresses, worker_timeout)
    try:
        program = compiled.program_bytes()  # UTF-8, checked to compile from these bytes as rendered
    except EmitError as exc:  # the emitter refused its own output: a fedlang bug, never run it
        click.echo(f"{terminal_safe(spec)}: internal compiler error: {terminal_safe(exc)}\n"
                   "  this is a bug in fedlang; please report it with the spec", err=True)
        sys.exit(EXIT_INTERNAL)
    if output:
        try:
            target = Path(output).expanduser()
        except RuntimeError:  # `~name/…` for a user this machine does not have
            target = Path(output)
        if not target.parent.is_dir():
            click.echo(f"error: cannot write {terminal_safe(output)}: the folder "
                       f"{terminal_safe(str(target.parent))} does not exist (create it first)", err=True)
            sys.exit(EXIT_USAGE)
        try:
            target.write_bytes(program)
        except OSError as exc:
            click.echo(f"error: cannot write {terminal_safe(output)}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_USAGE)
        lines = program.count(b"\n")
        click.echo(f"wrote {terminal_safe(output)} ({lines} lines); "
                   f"run it with: python {terminal_safe(output)}", err=True)
    else:
        stdout = click.get_binary_stream("stdout")
        stdout.write(program)
        stdout.flush()


@main.command()
@click.argument("spec", required=False, type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--rounds", type=click.IntRange(min=1), help="Override the number of rounds in the spec.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Run directory for metrics, model and plots (default: runs/<experiment>-<time>).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; only the per-round table.")
@click.option("--set", "sets", multiple=True, metavar="BLOCK.KEY=V1,V2,…",
              help="Sweep: run once per value (repeat --set for a grid), e.g. --set train.mu=0,0.01,1.")
@click.option("--seeds", type=click.IntRange(min=1), help="Sweep: run each setting with N seeds (seed, seed+1, …).")
@click.option("--checkpoint-every", type=click.IntRange(min=1),
              help="Rounds between checkpoints (default: the monitor block's, else 10).")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False),
              help="Continue the run in this directory from its newest intact checkpoint (no SPEC).")
@_worker_options
def run(spec: str | None, rounds: int | None, out_dir: str | None, quiet: bool, sets: tuple[str, ...],
        seeds: int | None, checkpoint_every: int | None, resume_dir: str | None, workers: int | None,
        worker_addresses: tuple[str, ...], worker_timeout: float | None) -> None:
    """Run SPEC on TFF's runtime: per-round table, metrics files, checkpoints, final model.

    With --set or --seeds, run a sweep: every cell checked first, then run one by one.
    With --resume RUN_DIR, continue a run from its newest intact checkpoint.
    With --workers N or --worker HOST:PORT…, spread each round's clients over several TFF workers
    (instead of where the spec's runtime block says)."""
    check_worker_options(workers, worker_addresses, sweep=bool(sets or seeds), timeout=worker_timeout)
    if resume_dir:
        if spec or rounds or out_dir or checkpoint_every or sets or seeds:
            raise click.UsageError("--resume RUN_DIR takes no SPEC, --rounds, --out, --checkpoint-every, --set or "
                                   "--seeds: it continues with the run's own")
        from .runtime.monitoring import read_run_settings

        try:
            settings = read_run_settings(Path(resume_dir))
        except FileNotFoundError as exc:
            raise click.UsageError(str(exc)) from None
        compiled = _compile_or_exit(str(Path(resume_dir) / "spec.fed"), base_dir=Path(settings["spec_dir"]))
    elif spec is None:
        raise click.UsageError("give a SPEC to run, or --resume RUN_DIR")
    elif sets or seeds:
        from .tooling.sweep import run_sweep

        sys.exit(run_sweep(spec, sets, seeds or 1, rounds=rounds, out_dir=out_dir))
    else:
        compiled = _compile_or_exit(spec)
        # The program that runs is the one emitted for these workers; only a resumed run passes them on.
        compiled = with_worker_options(compiled, workers, worker_addresses, worker_timeout)
        workers, worker_addresses, worker_timeout = None, (), None
    from .runtime.runner import run_compiled  # imports TensorFlow lazily, after the spec is known good

    sys.exit(run_compiled(compiled, rounds=rounds, out_dir=resume_dir or out_dir, quiet=quiet,
                          resume=bool(resume_dir), checkpoint_every=checkpoint_every, workers=workers,
                          worker_addresses=worker_addresses, worker_timeout=worker_timeout))


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="The port to listen on (all interfaces).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, writable=True),
              help="The worker's log file (default: fedlang-worker-PORT.log).")
def worker(port: int, log_path: str | None) -> None:
    """Serve a TFF worker here for runs on other machines (`fedlang run SPEC --worker HOST:PORT`)."""
    from .runtime.worker_service import serve

    sys.exit(serve(port, Path(log_path or f"fedlang-worker-{port}.log")))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir: str) -> None:
    """Rebuild RUN_DIR/report.html: plots, alerts, metrics, plan and spec in one self-contained file."""
    from .runtime.report import build_report

    try:
        path = build_report(Path(run_dir))
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), default="compare.png",
              show_default=True, help="Where to write the overlaid plots (PNG).")
def compare(run_dirs: tuple[str, ...], plot_path: str) -> None:
    """Put several runs in one table (final metrics, status, alerts) and overlay their plots."""
    from .runtime.report import compare_runs

    try:
        headers, rows = compare_runs([Path(d) for d in run_dirs], Path(plot_path))
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    text = [[f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    for row in text:
        click.echo("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    click.echo(f"wrote {plot_path}", err=True)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, readable=True, allow_dash=True))
@click.option("--check", is_flag=True, help="Change nothing; print a diff and exit 1 if a file is not formatted.")
def fmt(files: tuple[str, ...], check: bool) -> None:
    """Rewrite FILES (.fed files, folders of them, or - for stdin) in the one canonical layout."""
    from .tooling.fmt_cli import format_paths

    sys.exit(format_paths(files, check=check, color=_color(sys.stderr)))


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Explain an error code (e.g. E201): what it means, a spec that makes it, and the fix."""
    from .tooling.explain import explain_text, load

    text = explain_text(code)
    if text is None:
        known = ", ".join(sorted(load()))
        click.echo(f"error: no error code {code!r}; the documented codes are: {known}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(text, nl=False)


@main.command()
def lsp() -> None:
    """Start the language server on stdin/stdout (for editors: diagnostics, hover, completion)."""
    from .tooling.lsp import main as serve

    serve()


if __name__ == "__main__":  # pragma: no cover
    main()
