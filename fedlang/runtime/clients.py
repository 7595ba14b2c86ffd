"""The run directory's per-client results and the spread of client metrics in the plot and the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ClientLog:
    """clients.jsonl: one JSON object per evaluated client and federated evaluation (round, client,
    test_examples, each metric of the global model, and `ft_…` of the fine-tuned model)."""

    def __init__(self, out_dir: Path, append: bool = False):
        self.path = out_dir / "clients.jsonl"
        self.file = open(self.path, "a" if append else "w")  # a resumed run keeps (then trims) the records

    def add(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def restart_from(self, done: int) -> None:
        """A resumed run: keep the evaluations of the checkpoint's rounds only."""
        self.file.close()
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["round"] <= done]
        self.file = open(self.path, "w")
        self.file.write("".join(line + "\n" for line in kept))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def client_table_columns(checked) -> tuple[str, ...]:
    """The federated evaluation's columns in the console table: the first declared metric (else the
    loss) of the global model — weighted mean, p10 and worst decile — and of the fine-tuned models."""
    if checked.evaluate is None or checked.data.per_client_test is None:
        return ()
    metric = checked.model.metrics[0] if checked.model.metrics else "loss"
    columns = [f"fed_{metric}", f"fed_{metric}_p10", f"fed_{metric}_worst10"]
    if checked.personalize is not None:
        columns += [f"ft_{metric}", f"ft_{metric}_p10", "ft_worse"]
    return tuple(columns)


def plot_client_spread(ax, rows: list[dict], name: str) -> None:
    """The global model's per-client metric: weighted mean, p10–p90 band, worst decile; fine-tuned where measured."""
    for prefix, label, color in (("fed", "clients", "tab:green"), ("ft", "fine-tuned", "tab:purple")):
        measured = [r for r in rows if f"{prefix}_{name}" in r]
        if not measured:
            continue
        rounds = [r["round"] for r in measured]
        ax.plot(rounds, [r[f"{prefix}_{name}"] for r in measured], "s-", color=color, markersize=3,
                label=f"{label} (weighted mean)")
        ax.fill_between(rounds, [r[f"{prefix}_{name}_p10"] for r in measured],
                        [r[f"{prefix}_{name}_p90"] for r in measured], color=color, alpha=0.15,
                        label=f"{label} p10–p90")
        ax.plot(rounds, [r[f"{prefix}_{name}_worst10"] for r in measured], "v:", color=color, markersize=3,
                label=f"{label} worst decile")
