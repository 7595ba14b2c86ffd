#!/usr/bin/env python3
"""Worst cases of `fedlang check` (issue 8): CPU time and peak RSS of each, as a process.

Part 1, specs: each case is a legal-looking but hostile spec under 1 MB (with small data, or
none) written to a temporary folder: extreme privacy settings, `noise auto` and budget actions
over thousands of rounds, a million rounds, thousands of synthetic devices, 10^5 clients, a spec
of blank lines, thousands of diagnostics, deep nesting. Each must answer (exit 0 or 1, never an
internal error) within 2 s of CPU and 1 GB of peak RSS (Python's start-up, ~0.6 s, included).
Part 2, data files: `check` of a CSV (with a Dirichlet split replayed), an .npz and a folder of
TFRecord files, each at three sizes (the smaller CPU time and RSS of two runs); the cost per MB
between sizes must not grow (linear: the marginal CPU and RSS per MB of the largest step at most
1.5 times the first step's, plus slack for noise).

CPU time (user + system, from getrusage in the child) is measured, not wall time: the machine
is shared. Each process is capped at 6 GB of address space, so a runaway case fails instead of
exhausting the machine. Exit status 1 when a case is over a bound, answers with an internal
error or times out, or a data format is not linear.
Run: `python bench/check_limits.py [--timeout S] [--only NAME…] [--no-data]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import struct
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
CPU_BOUND, RSS_BOUND_MB = 2.0, 1024  # issue 8: any spec under 1 MB answers in under 2 s and 1 GB


def privacy(noise: str, epsilon: str | None = None, accountant: str = "rdp", action: str | None = None) -> str:
    """A privacy block (on_exceed stop: a run over budget stops), and a monitor block with a budget action."""
    target = f" epsilon {epsilon}\n on_exceed stop\n" if epsilon else ""
    block = f"privacy {{\n noise {noise}\n clip 1.0\n{target} accountant {accountant}\n}}\n"
    return block + (f"monitor {{\n alert epsilon > 0.5 of target -> {action}\n}}\n" if action else "")


def spec_cases() -> dict[str, str]:
    """name → spec text: every one under 1 MB, with no data file or a small one (written by write_cases)."""
    r3000 = "rounds 3000 clients_per_round 10"  # q = 10/50 = 0.2
    return {
        "noise 1e-5 (pld)": spec("privacy {\n noise 0.00001\n clip 1.0\n accountant pld\n}"),
        "noise 1e300": spec("privacy {\n noise 1e300\n clip 1.0\n}"),
        "noise 1e6": spec("privacy {\n noise 1000000\n clip 1.0\n}"),
        "population 1e9 (rdp)": spec("privacy {\n noise 1.0\n clip 1.0\n population 1000000000\n}"),
        "population 1e9 (pld)": spec("privacy {\n noise 1.0\n clip 1.0\n population 1000000000\n accountant pld\n}"),
        "noise auto, population 1e9": spec("privacy {\n noise auto\n epsilon 1\n clip 1.0\n"
                                           " population 1000000000\n}"),
        "integer of 400 digits": spec(train="rounds 1" + "0" * 400),
        "rounds 1e6 + privacy (rdp)": spec(privacy("1.0", "50"), train="rounds 1000000 clients_per_round 10"),
        "rounds 3000 + privacy (pld)": spec(privacy("1.0", "20", "pld"), train=r3000),
        "noise auto ε 8, 3000 rounds (pld)": spec(privacy("auto", "8", "pld"), train=r3000),
        "noise auto ε 50, 3000 rounds (pld)": spec(privacy("auto", "50", "pld"), train=r3000),
        "noise auto ε 500, 3000 rounds (pld)": spec(privacy("auto", "500", "pld"), train=r3000),
        "noise auto ε 50, 3000 rounds (rdp)": spec(privacy("auto", "50"), train=r3000),
        "noise auto ε 500, 3000 rounds (rdp)": spec(privacy("auto", "500"), train=r3000),
        "noise auto ε 50, 1e6 rounds (rdp)": spec(privacy("auto", "50"), train="rounds 1000000 clients_per_round 10"),
        "raise_noise, 600 rounds (pld)": spec(privacy("1.0", "50", "pld", "raise_noise"),
                                              train="rounds 600 clients_per_round 10"),
        "lower_rate, 600 rounds (pld)": spec(privacy("1.0", "50", "pld", "lower_rate"),
                                             train="rounds 600 clients_per_round 10"),
        "raise_noise, 3000 rounds (pld)": spec(privacy("1.0", "50", "pld", "raise_noise"), train=r3000),
        "raise_noise, 3000 rounds (rdp)": spec(privacy("1.0", "50", action="raise_noise"),
                                               train="rounds 3000 clients_per_round 40"),
        "lower_rate, 3000 rounds (rdp)": spec(privacy("1.0", "50", action="lower_rate"),
                                              train="rounds 3000 clients_per_round 40"),
        "raise_noise auto, 1e6 rounds (rdp)": spec(privacy("auto", "50", action="raise_noise"),
                                                   train="rounds 1000000 clients_per_round 40"),
        "lower_rate, 1000 of 1500 clients (rdp)": spec(privacy("0.8", "20", action="lower_rate"),
                                                       data="source sklearn.digits\n  partition iid(clients = 1500)",
                                                       train="rounds 500 clients_per_round 1000"),
        "dirichlet alpha 1e-9": spec(data="source sklearn.digits\n  partition dirichlet(alpha = 0.000000001, "
                                          "clients = 50)"),
        "synthetic, 3000 devices": spec(data="source synthetic(alpha = 1, beta = 1, devices = 3000)",
                                        input_shape="[60]"),
        "synthetic at its cap (600 devices)": spec(data="source synthetic(alpha = 1, beta = 1, devices = 600)",
                                                   input_shape="[60]"),
        "10^5 clients, natural (npz)": spec(data='source npz("clients.npz", client = "client")\n  partition natural',
                                            input_shape="[4]", classes=3, train="rounds 1000 clients_per_round 100"),
        "10^5 clients, dirichlet (npz)": spec(data='source npz("clients.npz")\n  partition dirichlet(alpha = 0.5, '
                                                   'clients = 100000, min_examples = 1)',
                                              input_shape="[4]", classes=3, train="rounds 1000 clients_per_round 100"),
        "900 KB of blank lines": spec().replace("seed 1\n", "seed 1\n" + "\n" * 900_000),
        "900 KB of comments": spec() + ("# " + "x" * 98 + "\n") * 9_000,
        "a 900 KB string (experiment name)": spec(head='seed 1\nexperiment "' + "x " * 450_000 + '"'),
        "a 900 KB line of spaces": spec().replace("seed 1\n", "seed 1" + " " * 900_000 + "\n"),
        "40,000 diagnostics (440 KB)": spec().replace(
            "  input [64]\n", "  input [64]\n" + "  dence 10\n" * 40_000),
        "3,300 diagnostics under the token cap": spec().replace(
            "  input [64]\n", "  input [64]\n" + "  dence 10\n" * 3_300),
        "nesting 32 levels": spec(data="source sklearn.digits\n  partition iid(clients = "
                                       + "f(" * 31 + "1" + ")" * 31 + ")"),
        "nesting 2,000 levels (E115)": spec(data="source sklearn.digits\n  partition iid(clients = "
                                                 + "f(" * 2000 + "1" + ")" * 2000 + ")"),
        "csv, 20,000 columns": spec(data='source csv("wide.csv")\n  partition iid(clients = 2)',
                                    input_shape="[19999]", classes=2, train=SMALL),
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


def write_cases(folder: Path) -> dict[str, Path]:
    """name → spec path; data files next to them."""
    paths = {}
    for i, (name, text) in enumerate(spec_cases().items()):
        path = folder / f"case{i:02d}.fed"
        path.write_text(text)
        assert len(text.encode()) < 1 << 20, name
        paths[name] = path
    header = ",".join(f"c{i}" for i in range(19_999)) + ",label\n"
    (folder / "wide.csv").write_text(header + ("1," * 19_999 + "0\n") + ("1," * 19_999 + "1\n"))
    (folder / "cell1e300.csv").write_text("a,label\n1,0\n1e300,1\n3,1\n4,0\n")
    (folder / "folder").mkdir(exist_ok=True)
    (folder / "label1e30.csv").write_text("a,label\n1,0\n2,1e30\n3,1\n4,0\n")
    _npz_bomb(folder / "bomb.npz", rows=500_000, columns=1000)
    rng = np.random.default_rng(0)
    client = np.repeat(np.arange(100_000), rng.integers(1, 4, size=100_000))  # 10^5 clients, 1-3 examples each
    np.savez(folder / "clients.npz", x=rng.normal(size=(len(client), 4)).astype(np.float32),
             y=rng.integers(0, 3, size=len(client)), client=client)
    if not (folder / "fifo.csv").exists():
        os.mkfifo(folder / "fifo.csv")
    return paths


# ------------------------------------------------------------------ data files at three sizes

DATA_SIZES_MB = {"csv": (10, 20, 40), "npz": (20, 40, 80), "tfrecord": (4, 8, 16)}


def write_data(folder: Path, kind: str, megabytes: int) -> Path:
    """A spec reading `megabytes` MB of `kind` data (20 float features, 2 classes); its path."""
    rng = np.random.default_rng(0)
    name = f"{kind}{megabytes}"
    if kind == "csv":  # a Dirichlet split is replayed on its labels
        block = rng.normal(size=(10_000, 20)).round(6)
        lines = "\n".join(",".join(map(str, row)) + f",{k % 2}" for k, row in enumerate(block)) + "\n"
        with open(folder / f"{name}.csv", "w") as f:
            f.write(",".join(f"f{i}" for i in range(20)) + ",label\n")
            while f.tell() < megabytes * 1_000_000:
                f.write(lines)
        data = f'source csv("{name}.csv")\n  partition dirichlet(alpha = 0.5, clients = 100)'
    elif kind == "npz":  # float32 rows of 20 features, uncompressed
        rows = megabytes * 1_000_000 // 88
        np.savez(folder / f"{name}.npz", x=rng.normal(size=(rows, 20)).astype(np.float32),
                 y=rng.integers(0, 2, size=rows))
        data = f'source npz("{name}.npz")\n  partition dirichlet(alpha = 0.5, clients = 100)'
    else:  # 50 clients, one .tfrecord file each
        (folder / name).mkdir()
        per_file = megabytes * 1_000_000 // 50
        record = _tf_example(rng.normal(size=20).astype(np.float32), 1)
        framed = struct.pack("<Q", len(record)) + bytes(4) + record + bytes(4)
        for k in range(50):
            (folder / name / f"client{k:02d}.tfrecord").write_bytes(framed * (per_file // len(framed)))
        data = f'source files("{name}/*.tfrecord")\n  partition natural'
    path = folder / f"{name}.fed"
    path.write_text(spec(data=data, input_shape="[20]", classes=2, train="rounds 5 clients_per_round 10"))
    return path


def _tf_example(x: np.ndarray, y: int) -> bytes:
    """A serialized tf.train.Example {x: FloatList, y: Int64List} (protobuf written by hand)."""
    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    def feature(name: str, value: bytes) -> bytes:
        return field(1, field(1, name.encode()) + field(2, value))

    floats = field(2, field(1, x.astype("<f4").tobytes()))
    ints = field(3, field(1, _varint(y)))
    return field(1, feature("x", floats) + feature("y", ints))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--only", nargs="*", help="substrings of the case names to run")
    parser.add_argument("--no-data", action="store_true", help="skip part 2 (data files at three sizes)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the fedlang checkout to measure (default: this one)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = write_cases(Path(tmp))
        print(f"{'case':40} {'exit':>5} {'cpu s':>6} {'RSS MB':>7} {'verdict':>7}  answer")
        for name, path in cases.items():
            if args.only and not any(o in name for o in args.only):
                continue
            rc, wall, cpu, rss, first = run(path, args.timeout, args.repo)
            ok = rc in ("0", "1") and cpu < CPU_BOUND and rss < RSS_BOUND_MB
            failed += [] if ok else [name]
            print(f"{name:40} {rc:>5} {cpu:6.2f} {rss:7.0f} {'ok' if ok else 'OVER':>7}  {first[:70]}", flush=True)
        if not args.no_data and not args.only:
            print(f"\n{'data (check of the spec reading it)':40} {'MB':>5} {'cpu s':>6} {'RSS MB':>7} "
                  f"{'s/MB':>6} {'RSS/MB':>6}  (per MB: the step from the previous size)")
            for kind, sizes in DATA_SIZES_MB.items():
                points = []
                for megabytes in sizes:
                    path = write_data(Path(tmp), kind, megabytes)
                    rc, wall, cpu, rss, first = run(path, args.timeout, args.repo)
                    again = run(path, args.timeout, args.repo)  # the less disturbed of two runs
                    cpu, rss = min(cpu, again[2]), min(rss, again[3])
                    step = (f"{(cpu - points[-1][1]) / (megabytes - points[-1][0]):6.3f} "
                            f"{(rss - points[-1][2]) / (megabytes - points[-1][0]):6.1f}") if points else " " * 13
                    points.append((megabytes, cpu, rss))
                    print(f"{kind:40} {megabytes:5} {cpu:6.2f} {rss:7.0f} {step}  exit {rc}", flush=True)
                    if rc not in ("0", "1"):
                        failed.append(f"{kind} {megabytes} MB: {first}")
                verdict = _linear(points)
                print(f"{'':40} {verdict}")
                if not verdict.startswith("linear"):
                    failed.append(f"{kind}: {verdict}")
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cores, load {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end; bounds {CPU_BOUND:g} s of CPU, {RSS_BOUND_MB} MB)")
    if failed:
        print(f"over a bound: {', '.join(failed)}")
        sys.exit(1)


def _linear(points: list[tuple[int, float, float]]) -> str:
    """Whether CPU and RSS grow linearly over three sizes: the per-MB cost of the second step at
    most 1.5 × the first step's (a quadratic cost doubles it), with slack for measurement noise
    (0.01 s and 2 MB per MB)."""
    (m0, c0, r0), (m1, c1, r1), (m2, c2, r2) = points
    cpu = ((c1 - c0) / (m1 - m0), (c2 - c1) / (m2 - m1))
    rss = ((r1 - r0) / (m1 - m0), (r2 - r1) / (m2 - m1))
    text = (f"per MB: {cpu[0]:.3f} then {cpu[1]:.3f} s of CPU, {rss[0]:.1f} then {rss[1]:.1f} MB of RSS "
            f"(largest: {c2 / m2:.3f} s/MB, {r2 / m2:.1f} MB/MB overall)")
    growing = cpu[1] > 1.5 * cpu[0] + 0.01 or rss[1] > 1.5 * rss[0] + 2
    return ("NOT LINEAR: " if growing else "linear: ") + text


if __name__ == "__main__":
    main()
