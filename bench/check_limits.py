#!/usr/bin/env python3
"""Worst cases of `fedlang check` (issue 8): CPU time, wall time and peak RSS of each, as a process.

Each case is a legal-looking but hostile spec (or data file) written to a temporary folder:
extreme privacy settings, a million rounds, thousands of synthetic devices, huge data files,
a spec of blank lines, tens of thousands of diagnostics. Every case must end with exit 0 or 1
(an answer, not an internal error), within the timeout, in bounded memory (each process is
capped at 6 GB of address space, so a runaway case fails instead of exhausting the machine).
Run: `python bench/check_limits.py [--timeout S] [--only NAME…]`; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MEMORY_CAP = 6 << 30  # address-space limit of each check process: a runaway case fails, not the machine


def spec(privacy: str = "", data: str = "source sklearn.digits\n  partition iid(clients = 50)",
         train: str = "rounds 5 clients_per_round 10", input_shape: str = "[64]", classes: int = 10,
         head: str = "seed 1") -> str:
    return textwrap.dedent("""\
        {head}
        model m {{
          input {input_shape}
          dense {classes} softmax
          loss sparse_categorical_crossentropy
        }}
        data d {{
          {data}
        }}
        train fedavg {{
          {train}
        }}
        {privacy}
        """).format(head=head, data=data, train=train, privacy=privacy, input_shape=input_shape,
                    classes=classes)


SMALL = "rounds 5 clients_per_round 2"
MARKOV = ("seed 1\nmodel m {{\n  input [8]\n  embedding 20 4\n  gru 8\n  dense 20 softmax\n"
          "  loss sparse_categorical_crossentropy\n}}\ndata t {{\n  source markov({})\n}}\n"
          "train fedavg {{\n  rounds 5\n}}\n")


def write_cases(folder: Path) -> dict[str, Path]:
    """name → spec path; data files next to them."""
    cases: dict[str, str] = {
        "noise 1e-5 (pld)": spec("privacy {\n noise 0.00001\n clip 1.0\n accountant pld\n}"),
        "noise 1e300": spec("privacy {\n noise 1e300\n clip 1.0\n}"),
        "noise 1e6": spec("privacy {\n noise 1000000\n clip 1.0\n}"),
        "population 1e9 (rdp)": spec("privacy {\n noise 1.0\n clip 1.0\n population 1000000000\n}"),
        "population 1e9 (pld)": spec("privacy {\n noise 1.0\n clip 1.0\n population 1000000000\n accountant pld\n}"),
        "noise auto, population 1e9": spec("privacy {\n noise auto\n epsilon 1\n clip 1.0\n"
                                           " population 1000000000\n}"),
        "integer of 400 digits": spec(train="rounds 1" + "0" * 400),
        "rounds 1e6 + privacy (rdp)": spec("privacy {\n noise 1.0\n clip 1.0\n epsilon 50\n on_exceed stop\n}",
                                           train="rounds 1000000 clients_per_round 10"),
        "rounds 3000 + privacy (pld)": spec("privacy {\n noise 1.0\n clip 1.0\n accountant pld\n epsilon 20\n"
                                            " on_exceed stop\n}", train="rounds 3000 clients_per_round 10"),
        "dirichlet alpha 1e-9": spec(data="source sklearn.digits\n  partition dirichlet(alpha = 0.000000001, "
                                          "clients = 50)"),
        "synthetic, 3000 devices": spec(data="source synthetic(alpha = 1, beta = 1, devices = 3000)",
                                        input_shape="[60]"),
        "900 KB of blank lines": spec().replace("seed 1\n", "seed 1\n" + "\n" * 900_000),
        "40,000 diagnostics (440 KB)": spec().replace(
            "  input [64]\n", "  input [64]\n" + "  dence 10\n" * 40_000),
        "csv, 20,000 columns": spec(data='source csv("wide.csv")\n  partition iid(clients = 2)',
                                    input_shape="[19999]", classes=2, train=SMALL),
        "csv, 50 MB": spec(data='source csv("big.csv")\n  partition iid(clients = 10)', input_shape="[20]",
                           classes=2),
        "csv cell 1e300": spec(data='source csv("cell1e300.csv")\n  partition iid(clients = 2)',
                               input_shape="[1]", classes=2, train=SMALL),
        "csv label 1e30": spec(data='source csv("label1e30.csv")\n  partition iid(clients = 2)',
                               input_shape="[1]", classes=2, train=SMALL),
        "npz bomb (2 GB of zeros)": spec(data='source npz("bomb.npz")\n  partition iid(clients = 2)',
                                         input_shape="[1000]", classes=2, train=SMALL),
        "data path is a FIFO": spec(data='source csv("fifo.csv")\n  partition iid(clients = 2)', train=SMALL),
        "data path is a directory": spec(data='source csv("folder")\n  partition iid(clients = 2)', train=SMALL),
        "1 MiB of short tokens (E003)": "seed 1\ndata d {\n" + "a 1\n" * ((1 << 18) - 10) + "}\n",
        "9,900 tokens of layers": spec().replace("  dense 10 softmax", "  dense 8 relu\n" * 3290 + "  dense 10 softmax"),
        "9,800 tokens of repeated settings": spec(train="rounds 5\n" + "  rounds 1\n" * 4900),
        "markov at its caps": MARKOV.format("vocab = 20, clients = 800, length = 1000"),
        "markov, 10^5 clients (E508)": MARKOV.format("vocab = 20, clients = 100000, length = 1000"),
        "markov, vocab 10^4 (E508)": MARKOV.format("vocab = 10000, clients = 10"),
    }
    paths = {}
    for i, (name, text) in enumerate(cases.items()):
        path = folder / f"case{i:02d}.fed"
        path.write_text(text)
        paths[name] = path
    header = ",".join(f"c{i}" for i in range(19_999)) + ",label\n"
    (folder / "wide.csv").write_text(header + ("1," * 19_999 + "0\n") + ("1," * 19_999 + "1\n"))
    (folder / "cell1e300.csv").write_text("a,label\n1,0\n1e300,1\n3,1\n4,0\n")
    (folder / "folder").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    with open(folder / "big.csv", "w") as f:
        f.write(",".join(f"f{i}" for i in range(20)) + ",label\n")
        block = rng.normal(size=(20_000, 20)).round(6)
        lines = "\n".join(",".join(map(str, row)) + f",{k % 2}" for k, row in enumerate(block)) + "\n"
        while f.tell() < 50_000_000:
            f.write(lines)
    (folder / "label1e30.csv").write_text("a,label\n1,0\n2,1e30\n3,1\n4,0\n")
    _npz_bomb(folder / "bomb.npz", rows=500_000, columns=1000)
    if not (folder / "fifo.csv").exists():
        os.mkfifo(folder / "fifo.csv")
    return paths


def _npz_bomb(path: Path, rows: int, columns: int) -> None:
    """An .npz whose x is rows × columns float32 zeros, stored deflated (1/1000 of the size)."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, columns)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            zeros = bytes(4 * columns * 1000)
            for _ in range(rows // 1000):
                f.write(zeros)
        with z.open("y.npy", "w") as f:
            np.lib.format.write_array(f, np.zeros(rows, dtype=np.int64))


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run(path: Path, timeout: float, repo: Path) -> tuple[str, float, float, float, str]:
    """(exit code, wall s, cpu s, peak RSS MB, first diagnostic line) of `fedlang check path`."""
    code = ("import resource, sys, time\n"
            "from fedlang.cli import main\n"
            "try:\n    main(['check', sys.argv[1]])\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "r = resource.getrusage(resource.RUSAGE_SELF)\n"
            "print(f'@@ {rc} {r.ru_utime + r.ru_stime:.2f} {r.ru_maxrss / 1024:.0f}', file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(repo))
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=path.parent, env=env,
                              capture_output=True, text=True, timeout=timeout, preexec_fn=_cap_memory)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, float("nan"), float("nan"), ""
    wall = time.perf_counter() - start
    stats = next((line.split() for line in done.stderr.splitlines() if line.startswith("@@ ")), None)
    first = next((line for line in (done.stderr + done.stdout).splitlines()
                  if "error[" in line or "internal" in line or ": ok" in line), "")
    if stats is None:
        return f"crash {done.returncode}", wall, float("nan"), float("nan"), done.stderr.strip()[-120:]
    return stats[1], wall, float(stats[2]), float(stats[3]), first.split(": ", 1)[-1][:90]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--only", nargs="*", help="substrings of the case names to run")
    parser.add_argument("--repo", type=Path, default=REPO, help="the fedlang checkout to measure (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = write_cases(Path(tmp))
        print(f"{'case':32} {'exit':>7} {'wall s':>7} {'cpu s':>7} {'RSS MB':>7}  answer")
        for name, path in cases.items():
            if args.only and not any(o in name for o in args.only):
                continue
            rc, wall, cpu, rss, first = run(path, args.timeout, args.repo)
            print(f"{name:32} {rc:>7} {wall:7.1f} {cpu:7.1f} {rss:7.0f}  {first}", flush=True)
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
