"""`fedlang run spec.fed --set train.mu=0,0.01,1 --seeds 3`: a grid of runs with mean ± sd.

Each cell of the grid (every combination of the `--set` values, times the seeds: the spec's seed,
seed+1, …) is the spec with those settings written in (`block.key`; `seed` for the seed). Every
cell is checked before the first one runs. Cells run one after another, each in its own process
(`python -m fedlang.tooling.sweep CELL.fed BASE_DIR OUT_DIR [ROUNDS]`, which is `fedlang run`
with the original spec's folder for relative data paths), each writing a run directory as
`fedlang run` does. A failed cell is recorded and the others go on; rerunning with the same
`--out` skips the cells whose summary.json says completed. The sweep folder gets cells.csv (one
row per cell), summary.csv (per setting: n and mean ± sd of every final metric) and summary.png.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from .. import ast
from ..diagnostics import Source, SpecError, render_all
from ..parse import parse_source, read_source
from ..registry import BLOCK_BY_KEYWORD


@dataclass(frozen=True)
class Cell:
    overrides: tuple[tuple[str, str], ...]  # (block.key, value text), in --set order
    seed: int

    @property
    def setting(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.overrides) or "spec"

    @property
    def name(self) -> str:
        parts = [f"{k.split('.')[-1]}={v}" for k, v in self.overrides] + [f"seed={self.seed}"]
        return "-".join("".join(c if c.isalnum() or c in "=.-_" else "_" for c in p) for p in parts)


def split_values(text: str) -> list[str]:
    """`0,0.01,1` → ['0', '0.01', '1']; commas inside ( ) or [ ] stay: `sgd(learning_rate = 0.1),adam`."""
    out, depth, current = [], 0, ""
    for c in text:
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        if c == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += c
    out.append(current.strip())
    if any(not v for v in out):
        raise click.UsageError(f"empty value in --set …={text}")
    return out


def parse_sets(sets: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    axes = []
    for item in sets:
        key, eq, values = item.partition("=")
        if not eq or key.count(".") != 1 or not all(key.split(".")):
            raise click.UsageError(f"--set takes BLOCK.KEY=V1,V2,… (e.g. train.mu=0,0.01,1); got {item!r}")
        if key.split(".")[0] not in BLOCK_BY_KEYWORD:
            raise click.UsageError(f"--set {key}: no block '{key.split('.')[0]}'")
        axes.append((key, split_values(values)))
    return axes


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(l) + 1 for l in lines[:line - 1]) + column - 1


def with_setting(text: str, spec: ast.Spec, block: str, key: str, value: str) -> str:
    """The spec text with `key value` set in the block (replaced, or added before its '}')."""
    node_type = BLOCK_BY_KEYWORD[block].node
    node = next((item for item in spec.items if isinstance(item, node_type)), None)
    if node is None or not hasattr(node, "settings"):
        raise click.UsageError(f"--set {block}.{key}: the spec has no {block} block with settings")
    setting = next((s for s in node.settings if s.key.name == key), None)
    if setting is not None:
        span = setting.value.span
        start, end = _offset(text, span.line, span.column), _offset(text, span.end_line, span.end_column)
        return text[:start] + value + text[end:]
    close = _offset(text, node.span.end_line, node.span.end_column) - 1  # the block's '}'
    line_start = text.rfind("\n", 0, close) + 1
    insert = f"  {key} {value}\n" if not text[line_start:close].strip() else f" {key} {value} "
    at = line_start if not text[line_start:close].strip() else close
    return text[:at] + insert + text[at:]


def with_seed(text: str, spec: ast.Spec, seed: int) -> str:
    node = next((item for item in spec.items if isinstance(item, ast.Seed)), None)
    if node is None:
        return f"seed {seed}\n" + text
    span = node.value.span
    return text[:_offset(text, span.line, span.column)] + str(seed) + text[_offset(text, span.end_line, span.end_column):]


def cell_text(text: str, cell: Cell) -> str:
    for key, value in cell.overrides:
        block, name = key.split(".")
        text = with_setting(text, parse_source(Source("x.fed", text)), block, name, value)
    return with_seed(text, parse_source(Source("x.fed", text)), cell.seed)


def plan_cells(axes: list[tuple[str, list[str]]], first_seed: int, seeds: int) -> list[Cell]:
    keys = [k for k, _ in axes]
    return [Cell(tuple(zip(keys, combo)), first_seed + s)
            for combo in itertools.product(*(values for _, values in axes)) for s in range(seeds)]


def _status(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def run_sweep(spec_path: str, sets: tuple[str, ...], seeds: int, rounds: int | None = None,
              out_dir: str | None = None, runner=None) -> int:
    """Check every cell, run the unfinished ones, write cells.csv, summary.csv and summary.png."""
    from ..pipeline import compile_source

    source = read_source(spec_path)
    base_dir = Path(spec_path).resolve().parent
    try:
        compiled = compile_source(source, base_dir)
    except SpecError as exc:
        click.echo(render_all(exc.source, exc.diagnostics), err=True)
        return 1
    cells = plan_cells(parse_sets(sets), compiled.checked.seed, seeds)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(out_dir) if out_dir else Path("runs") / f"{compiled.checked.experiment}-sweep-{stamp}"
    (out / "specs").mkdir(parents=True, exist_ok=True)

    failed_checks = 0
    for cell in cells:  # the checker sees every cell before anything runs
        text = cell_text(source.text, cell)
        path = out / "specs" / f"{cell.name}.fed"
        path.write_text(text)
        try:
            compile_source(Source(str(path), text), base_dir)
        except SpecError as exc:
            failed_checks += 1
            click.echo(f"cell {cell.name}:\n" + render_all(exc.source, exc.diagnostics), err=True)
    if failed_checks:
        click.echo(f"{failed_checks} of {len(cells)} cells do not check; nothing was run", err=True)
        return 1
    click.echo(f"sweep of {len(cells)} runs → {out}")

    run = runner or _run_cell_process
    for i, cell in enumerate(cells, 1):
        run_dir = out / cell.name
        previous = _status(run_dir)
        if previous and previous.get("status") == "completed":
            click.echo(f"[{i}/{len(cells)}] {cell.name}: done before, skipped")
            continue
        started = time.time()
        code = run(out / "specs" / f"{cell.name}.fed", base_dir, run_dir, rounds)
        state = (_status(run_dir) or {}).get("status", "failed")
        click.echo(f"[{i}/{len(cells)}] {cell.name}: {state} (exit {code}, {time.time() - started:.0f} s; "
                   f"log {run_dir}.log)")
    rows = write_summary(out, cells)
    for line in table_lines(rows):
        click.echo(line)
    failed = [c.name for c in cells if ((_status(out / c.name) or {}).get("status")) != "completed"]
    if failed:
        click.echo(f"{len(failed)} cells did not complete: {', '.join(failed)} (rerun to retry them)", err=True)
        return 1
    return 0


def _run_cell_process(spec: Path, base_dir: Path, run_dir: Path, rounds: int | None) -> int:
    command = [sys.executable, "-m", "fedlang.tooling.sweep", str(spec), str(base_dir), str(run_dir)]
    command += [str(rounds)] if rounds else []
    with open(f"{run_dir}.log", "w") as log:
        return subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


_SKIP = ("round", "seconds", "time", "epsilon", "clients")  # bookkeeping, not results


def final_metrics(summary: dict) -> dict[str, float]:
    final = summary.get("final") or {}
    return {k: float(v) for k, v in final.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            and not k.startswith(("bytes", "round")) and k not in _SKIP}


def write_summary(out: Path, cells: list[Cell]) -> list[dict]:
    """cells.csv, summary.csv (n, mean, sd per setting and metric) and summary.png; returns the rows."""
    per_cell, metrics = [], []
    for cell in cells:
        summary = _status(out / cell.name) or {}
        values = final_metrics(summary) if summary.get("status") == "completed" else {}
        metrics += [m for m in values if m not in metrics]
        per_cell.append((cell, summary.get("status", "not run"), values))
    keys = [k for k, _ in cells[0].overrides] if cells else []
    with open(out / "cells.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cell", *keys, "seed", "status", *metrics])
        for cell, status, values in per_cell:
            writer.writerow([cell.name, *(v for _, v in cell.overrides), cell.seed, status,
                             *(values.get(m, "") for m in metrics)])
    rows = []
    for setting in dict.fromkeys(c.setting for c in cells):
        done = [values for cell, status, values in per_cell if cell.setting == setting and values]
        row = {"setting": setting, "n": len(done), "runs": sum(c.setting == setting for c in cells)}
        for m in metrics:
            xs = [v[m] for v in done if m in v]
            row[f"{m}_mean"] = sum(xs) / len(xs) if xs else None
            row[f"{m}_sd"] = (math.sqrt(sum((x - row[f"{m}_mean"]) ** 2 for x in xs) / (len(xs) - 1))
                              if len(xs) > 1 else None)
        rows.append(row)
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["setting", "n", "runs", *(f"{m}_{s}" for m in metrics
                                                                          for s in ("mean", "sd"))])
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    if metrics and any(r["n"] for r in rows):
        _plot(out / "summary.png", rows, metrics)
    return rows


def table_lines(rows: list[dict]) -> list[str]:
    metrics = [k[:-5] for k in (rows[0] if rows else {}) if k.endswith("_mean")]
    head = ["setting", "n", *metrics]
    body = [[r["setting"], f"{r['n']}/{r['runs']}",
             *(_pm(r[f"{m}_mean"], r[f"{m}_sd"]) for m in metrics)] for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(head, *body)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]


def _pm(mean, sd) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4g}" + (f" ± {sd:.2g}" if sd is not None else "")


def _plot(path: Path, rows: list[dict], metrics: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in metrics if any(r[f"{m}_mean"] is not None for r in rows)]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 3.8), squeeze=False)
    labels = [f"{r['setting']}\n(n={r['n']})" for r in rows]
    for ax, m in zip(axes[0], shown):
        means = [r[f"{m}_mean"] if r[f"{m}_mean"] is not None else float("nan") for r in rows]
        sds = [r[f"{m}_sd"] or 0.0 for r in rows]
        ax.errorbar(range(len(rows)), means, yerr=sds, fmt="o", capsize=4)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_title(f"final {m} (mean ± sd)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _main(argv: list[str]) -> int:
    """One cell: `fedlang run` of a spec whose relative paths resolve against BASE_DIR."""
    from ..pipeline import compile_source
    from ..runtime.runner import run_compiled

    spec, base_dir, run_dir, *rest = argv
    source = read_source(spec)
    try:
        compiled = compile_source(source, Path(base_dir))
    except SpecError as exc:
        print(render_all(exc.source, exc.diagnostics), file=sys.stderr)
        return 1
    return run_compiled(compiled, rounds=int(rest[0]) if rest else None, out_dir=run_dir, quiet=True)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
