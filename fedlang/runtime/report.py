"""report.html for a run directory, and `fedlang compare` over several (no TensorFlow needed).

The report is one self-contained file: plots are inline PNG (base64 data URLs), styles are
inline, nothing is fetched, so it opens from disk in any browser. It is rebuilt from the run
directory's own files (metrics.jsonl, alerts.jsonl, summary.json, spec.fed, run.json).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

# Plot panels: (title, [metric names]); metrics absent from a run are skipped.
_FIXED_PANELS = (
    ("round duration (s)", ["seconds"]),
    ("clients", ["clients", "participation"]),
    ("bytes per round", ["bytes_down", "bytes_up"]),
    ("client-update L2 norm", ["update_norm_mean", "update_norm_max"]),
    ("privacy ε", ["epsilon", "epsilon_remaining"]),
)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut short by a kill
            break
    return rows


def load_run(run_dir: Path) -> dict[str, Any]:
    """Everything a report or a comparison needs from one run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        raise FileNotFoundError(f"{run_dir} is not a fedlang run directory (no metrics.jsonl)")
    summary_path = run_dir / "summary.json"
    return {
        "dir": run_dir,
        "rows": _read_jsonl(run_dir / "metrics.jsonl"),
        "alerts": _read_jsonl(run_dir / "alerts.jsonl"),
        "summary": json.loads(summary_path.read_text()) if summary_path.is_file() else {},
        "spec": (run_dir / "spec.fed").read_text() if (run_dir / "spec.fed").is_file() else "",
        "settings": json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {},
    }


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names.extend(k for k, v in row.items() if k != "round" and k not in names
                     and isinstance(v, (int, float)) and not isinstance(v, bool))
    return names


def attribute_groups(names: list[str]) -> dict[str, list[str]]:
    """{attribute: its count columns} for the client attributes of a simulation block, found by
    their `<attribute>_coverage` and `<attribute>_entropy` columns (fedlang/lib/simulation.py)."""
    groups = {}
    for name in names:
        if name.endswith("_coverage") and name[:-len("_coverage")] + "_entropy" in names:
            attribute = name[:-len("_coverage")]
            groups[attribute] = [n for n in names if n.startswith(attribute + "_")
                                 and n not in (name, attribute + "_entropy")]
    return groups


def panels(names: list[str]) -> list[tuple[str, list[str]]]:
    """Model metrics (train and eval together) first, then the health metrics present, then
    the participants' spread over each client attribute (counts; coverage and entropy)."""
    out = []
    model = [n[len("train_"):] for n in names if n.startswith("train_")]
    for m in model:
        out.append((m, [f"train_{m}"] + ([f"eval_{m}"] if f"eval_{m}" in names else [])))
    for attribute, counts in attribute_groups(names).items():
        out.append((f"participants by {attribute}", counts))
        out.append((f"{attribute} diversity", [f"{attribute}_coverage", f"{attribute}_entropy"]))
    used = {n for _, group in out for n in group}
    for title, group in _FIXED_PANELS:
        present = [n for n in group if n in names]
        if present:
            out.append((title, present))
            used.update(present)
    rest = [n for n in names if n not in used]
    out.extend((n, [n]) for n in rest)
    return out


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()


def plot_panels(runs: list[dict[str, Any]], labels: list[str] | None = None) -> list[tuple[str, str]]:
    """[(panel title, base64 PNG)]: each run's series overlaid (one run: train vs eval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    for run in runs:
        names.extend(n for n in metric_names(run["rows"]) if n not in names)
    images = []
    for title, group in panels(names):
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        for i, run in enumerate(runs):
            for name in group:
                points = [(r["round"], r[name]) for r in run["rows"]
                          if isinstance(r.get(name), (int, float)) and math.isfinite(r[name])]
                if not points:
                    continue
                label = name if len(runs) == 1 else f"{labels[i]}: {name}"
                ax.plot(*zip(*points), "o-" if name.startswith("eval_") else "-", markersize=3, label=label)
            for alert in run["alerts"] if len(runs) == 1 else ():
                if alert.get("metric") in group or any(alert["alert"].startswith(n + " ") for n in group):
                    ax.axvline(alert["round"], color="red", alpha=0.4, linestyle="--")
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
        fig.tight_layout()
        images.append((title, _png(fig)))
        plt.close(fig)
    return images


def _plan_rows(run: dict[str, Any]) -> list[tuple[str, str]]:
    """`fedlang plan` of the run's spec (compiled again from spec.fed; front end only)."""
    from ..diagnostics import Source, SpecError
    from ..pipeline import compile_source
    from ..report import plan_rows

    try:
        spec_dir = run["settings"].get("spec_dir")
        compiled = compile_source(Source("spec.fed", run["spec"]), Path(spec_dir) if spec_dir else run["dir"])
        return plan_rows(compiled.checked, compiled.plan)
    except (SpecError, OSError, ValueError) as exc:
        return [("plan", f"not available: {type(exc).__name__}")]


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}" if math.isfinite(v) else str(v)
        return html.escape(str(v)) if v is not None else ""

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
h1{margin-bottom:0}.status{font-size:1.1em;margin:.3em 0 1em}
.stopped{color:#b00}.completed{color:#070}.interrupted,.failed{color:#a60}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:8px}.plots figure{margin:0}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}
"""


def build_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report.html from the run's files; returns its path."""
    run = load_run(run_dir)
    summary, rows, alerts = run["summary"], run["rows"], run["alerts"]
    names = metric_names(rows)
    status = summary.get("status", "unknown (no summary.json: the run was killed?)")
    title = html.escape(str(summary.get("experiment", Path(run_dir).name)))
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title} — fedlang run</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{title}</h1>",
             f"<div class='status {html.escape(str(status))}'>status: <b>{html.escape(str(status))}</b>"
             + (f" — {html.escape(summary['stop_reason'])}" if summary.get("stop_reason") else "")
             + f"; {len(rows)} of {summary.get('rounds_planned', '?')} rounds; seed {summary.get('seed', '?')}; "
             f"{summary.get('seconds', '?')} s</div>"]
    parts.append("<h2>Plots</h2><div class='plots'>")
    for panel, image in plot_panels([run]):
        parts.append(f"<figure><img alt='{html.escape(panel)}' src='data:image/png;base64,{image}'></figure>")
    parts.append("</div>")
    parts.append(f"<h2>Alerts ({len(alerts)})</h2>")
    if alerts:
        parts.append(_table(["round", "alert", "action", "value", "detail"],
                            [[a["round"], a["alert"], a["action"], a.get("value"),
                              (f"best {a['best']:.4g} at round {a['best_round']}" if "best_round" in a
                               else ", ".join(a.get("metrics", [])))] for a in alerts]))
    else:
        parts.append("<p>none fired</p>")
    parts.append("<h2>Metrics</h2>")
    parts.append(_table(["round"] + names, [[r["round"]] + [r.get(n) for n in names] for r in rows]))
    parts.append("<h2>Plan</h2>")
    parts.append(_table(["", ""], [list(r) for r in _plan_rows(run)]))
    parts.append("<h2>Spec</h2><pre>" + html.escape(run["spec"]) + "</pre>")
    parts.append("<h2>Summary</h2><pre>" + html.escape(json.dumps(summary, indent=2)) + "</pre>")
    parts.append("</body></html>\n")
    path = Path(run_dir) / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    return path


def compare_runs(run_dirs: list[Path], plot_path: Path) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) of a one-line-per-run table; writes the overlaid plots to `plot_path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(Path(d)) for d in run_dirs]
    labels = [Path(d).name for d in run_dirs]
    finals = []
    for run in runs:  # last measured value of each metric
        final: dict[str, Any] = {}
        for row in run["rows"]:
            final.update({k: v for k, v in row.items() if k != "round"})
        finals.append(final)
    shown = ["train_loss"] + sorted({k for f in finals for k in f if k.startswith("eval_")}) + \
        [k for k in ("epsilon", "update_norm_mean", "seconds") if any(k in f for f in finals)]
    headers = ["run", "status", "rounds"] + [("final " + k) for k in shown] + ["alerts"]
    table = []
    for label, run, final in zip(labels, runs, finals):
        table.append([label, run["summary"].get("status", "?"), len(run["rows"])]
                     + [final.get(k) for k in shown] + [len(run["alerts"])])
    names: list[str] = []
    for run in runs:
        names.extend(n for n in metric_names(run["rows"]) if n not in names)
    groups = panels(names)
    cols = 2
    nrows = max(1, math.ceil(len(groups) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 3.4 * nrows), squeeze=False)
    for ax, (title, group) in zip(axes.flat, groups):
        for label, run in zip(labels, runs):
            for name in group:
                points = [(r["round"], r[name]) for r in run["rows"]
                          if isinstance(r.get(name), (int, float)) and math.isfinite(r[name])]
                if points:
                    ax.plot(*zip(*points), "o-" if name.startswith("eval_") else "-", markersize=3,
                            label=f"{label}: {name}")
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(plot_path, dpi=90)
    plt.close(fig)
    return headers, table
