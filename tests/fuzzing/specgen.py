"""Fuzz cases for fedlang: grammar-aware specs, mutants of the repository's specs, odd data files.

Every generator takes a `Draw` (the source of choices): `RandomDraw` (a seeded random.Random,
fast, for bench/fuzz.py) or `HypothesisDraw` (Hypothesis's `draw`, so failures shrink). The
structure follows grammar/fedlang.lark; names, options and ranges come from fedlang/registry.py
and fedlang/check/steps.py, so most generated specs are well formed and a good share check;
numbers at the edges, hostile strings and wrong names make the rest fail in every pass.

Strings carry the canary CANARY so the oracle can tell spec text that leaked into code from
spec text that stayed inside a literal or a comment.
"""

from __future__ import annotations

import csv
import io
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fedlang import registry
from fedlang.check.steps import OPERATORS

ROOT = Path(__file__).resolve().parents[2]
CANARY = "zzFUZZ"


# ---------------------------------------------------------------- the source of choices


class Draw:
    """Where a generator's choices come from."""

    def integer(self, low: int, high: int) -> int:
        raise NotImplementedError

    def chance(self, p: float) -> bool:
        """True with probability about p (False is the simpler outcome, for shrinking)."""
        return self.integer(0, 999) >= 1000 - round(p * 1000)

    def choice(self, items: Sequence):
        return items[self.integer(0, len(items) - 1)]

    rate = 1.0  # how hostile this case is: scales every mistake's probability

    def rare(self, p: float) -> bool:
        """A mistake or an edge value, with probability p × rate."""
        return self.chance(min(1.0, p * self.rate))


class RandomDraw(Draw):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class HypothesisDraw(Draw):
    def __init__(self, draw: Callable):
        from hypothesis import strategies as st

        self._draw, self._st = draw, st

    def integer(self, low: int, high: int) -> int:
        return self._draw(self._st.integers(low, high))


@dataclass
class Case:
    """One input: the spec text, files written next to it, and where `data/` points (mutants)."""

    kind: str
    spec: str
    files: dict[str, bytes] = field(default_factory=dict)
    data_dir: Path | None = None


# ---------------------------------------------------------------- numbers

EDGE_NUMBERS = (
    "0", "-0", "0.0", "-0.0", "00", "0e0", "1", "-1", "2", ".5", "5.", "1E5", "1e+3", "1e-3",
    "1e-300", "1e300", "-1e300", "1e308", "1e309", "1e400", "-1e400", "1e-400", "4.9e-324",
    "2147483647", "2147483648", "-2147483649", "9223372036854775807", "9223372036854775808",
    "18446744073709551616", "1" + "0" * 40, "9" * 400, "9" * 5000, "0." + "0" * 400 + "1",
    "1" * 30 + ".5", "0.1e999999999", "1e-999999999",
    # inf/nan spellings: names to the grammar, strings, or out-of-range literals
    "inf", "-inf", "nan", "NaN", "Infinity", "infinity", "math.inf", "float(\"inf\")", '"nan"', '"1e3"',
    # Unicode digits: the lexer's \d matches them
    "١٢", "٣.٥", "１２", "𝟗", "۹۹۹۹۹۹۹۹۹۹۹۹", "߁", "²", "½",
    # not numbers at all
    "true", "false", "[]", "[1]", '"3"', "none", "auto", "x", "1.2.3", "1e", "0x10", "1_000",
)

# A plausible range per setting/option (registry ranges are open-ended upwards).
INT_RANGES = {
    "rounds": (1, 12), "clients_per_round": (1, 20), "local_epochs": (1, 3), "batch": (1, 64),
    "shuffle": (0, 200), "every": (1, 6), "units": (1, 48), "filters": (1, 6), "clients": (1, 40),
    "per_client": (1, 4), "min_examples": (1, 5), "devices": (2, 40), "features": (1, 40),
    "classes": (2, 6), "population": (1, 5000), "bits": (1, 16), "threshold": (0, 100),
    "byzantine": (0, 3), "m": (1, 5), "seed": (0, 2**31 - 1), "pool": (1, 3), "kernel": (1, 3),
    "strides": (1, 2),
}


def edge_number(d: Draw) -> str:
    return d.choice(EDGE_NUMBERS)


def int_text(d: Draw, name: str, p_edge: float = 0.04) -> str:
    if d.rare(p_edge):
        return edge_number(d)
    low, high = INT_RANGES.get(name, (0, 20))
    return str(d.integer(low, high))


def float_text(d: Draw, low: float | None = 0.0, high: float | None = None, p_edge: float = 0.04) -> str:
    if d.rare(p_edge):
        return edge_number(d)
    lo = 0.0 if low is None else low
    hi = (lo + 3.0) if high is None else high
    x = lo + (hi - lo) * d.integer(1, 999) / 1000
    style = d.integer(0, 9)
    if style == 0:
        return f"{x:.3e}"
    if style == 1 and x.is_integer():
        return str(int(x))
    text = f"{x:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


# ---------------------------------------------------------------- names and strings

_SAFE_WORDS = ("mlp", "cnn", "digits", "net", "agg", "robust", "trimmed", "clipped", "data", "x", "y", "a_b",
               "Model2", "_private", "v" * 60)
# Names that mean something to Python, TFF or the emitted template: where a spec name becomes an
# identifier (aggregate blocks), none of these may shadow or break anything.
_HOSTILE_NAMES = (
    "round", "import", "None", "True", "class", "lambda", "def", "return", "__import__", "exec", "eval",
    "np", "tf", "tff", "os", "sys", "time", "math", "dim", "SEED", "ROUNDS", "load_data", "build_process",
    "build_model", "main", "gather", "mean", "aggregate_x", "aggregate_", "clip_norm_fn", "update", "model",
    "data", "weights", "delta", "print", "__name__", "__builtins__", "_", "__", "async", "await", "match",
    "case", "type", "self", "cls", "federated_computation", "CLIENTS", "SERVER", "sum", "all", "any",
)
_IDENT_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_IDENT_REST = _IDENT_START + "0123456789"


def name(d: Draw) -> str:
    """An identifier (NAME token): ordinary, hostile to Python, or random."""
    kind = d.integer(0, 9)
    if kind <= 4:
        return d.choice(_SAFE_WORDS)
    if kind <= 7:
        return d.choice(_HOSTILE_NAMES)
    return d.choice(_IDENT_START) + "".join(d.choice(_IDENT_REST) for _ in range(d.integer(0, 12)))


def misspell(d: Draw, word: str) -> str:
    """A near miss of `word`: a dropped, doubled or swapped letter, or a case change."""
    if len(word) < 2:
        return word + "x"
    i = d.integer(0, len(word) - 2)
    op = d.integer(0, 3)
    if op == 0:
        return word[:i] + word[i + 1:]
    if op == 1:
        return word[:i] + word[i] + word[i:]
    if op == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word.upper()


# Spec string values (after escapes decode) that have broken, or could break, the emitted program
# or the terminal. Each carries the canary where code could hide.
PAYLOADS = (
    '"""; __import__("os").system("' + CANARY + '"); """',
    "'''; " + CANARY + "(); '''",
    '"""\n' + CANARY + "()\n#",
    "\n" + CANARY + "()\n",
    "\r\n" + CANARY + "()",
    "\\",
    "\\\\",
    '\\"""',
    "\\N",
    "\\x",
    "\\u12",
    "-*- coding: utf-7 -*-",
    "# -*- coding: utf_7 -*- +AAo-" + CANARY + "()",
    "vim: set fileencoding=latin-1 :",
    "coding=rot13",
    "coding: undefined_codec",
    "coding:utf-16",
    "\x1b[2J\x1b[H" + "ok",
    "\x1b]0;title\x07",
    "[bold red]ok[/bold red]",
    "[link=file:///etc/passwd]x[/link]",
    "{{ 7*7 }}",
    "{% raw %}",
    "%s%n%x",
    "{0}{}{x}",
    "$(touch " + CANARY + ")",
    "`" + CANARY + "`",
    "\u202e" + CANARY,
    "\u2028" + CANARY + "()",
    "\u2029",
    "\x85" + CANARY,
    "\x0c",
    "\x0b",
    "\ufeff",
    "\x00",
    "\x7f",
    "\ud800",
    "\udcff",
    "é\u0301",
    "日本語",
    "🎉",
    "a" * 3000,
    "#",
    "",
    " ",
)

# Characters for random strings: controls, quotes, backslashes, separators, non-ASCII.
STRING_ALPHABET = (
    "abcXYZ019 _-./:" + '"' + "'" + "\\" + "#{}[]()<>$%`\t\r\n\x00\x01\x07\x08\x0b\x0c\x1b\x1f\x7f\x80\x85\x9b"
    "\xa0\xad\u0300\u200b\u200d\u202e\u2028\u2029\ufeff\ufffd\ud800\udfff" + "éß日本🎉𝟗١" + CANARY
)


def string_value(d: Draw, plain: Sequence[str] = ("digits-run", "exp 1", "a", "Δ-test")) -> str:
    """A string's value (what the escapes decode to)."""
    if not d.rare(0.6):
        return d.choice(plain)
    if d.chance(0.5):
        return d.choice(PAYLOADS)
    return "".join(d.choice(STRING_ALPHABET) for _ in range(d.integer(0, 24)))


_RAW_OK = set("\t\x01\x07\x08\x0b\x0c\x1b\x1f\x7f\x80\x85\x9b\xa0")


def string_literal(d: Draw, value: str) -> str:
    """`value` as a spec STRING token: escapes chosen at random where the grammar allows a choice."""
    quote = '"' if d.chance(0.8) else "'"
    out = []
    for c in value:
        if c == "\\":
            out.append("\\\\")
        elif c == quote:
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\x00":
            out.append("\\x00" if d.chance(0.9) else "\\0")
        elif "\ud800" <= c <= "\udfff":
            out.append(f"\\u{ord(c):04x}")
        elif c in _RAW_OK and d.chance(0.5):
            out.append(c)  # raw control character inside the quotes
        elif not c.isprintable() or (ord(c) > 127 and d.chance(0.3)):
            code = ord(c)
            out.append(f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}" if code < 65536 else f"\\U{code:08x}")
        else:
            out.append(c)
    if d.rare(0.03):
        out.append(d.choice(["\\x", "\\N{no such}", "\\u12", "\\U0011ffff", "\\q", "\\8", "\\N{BULLET}"]))
    return quote + "".join(out) + quote


def string(d: Draw, plain: Sequence[str] = ("digits-run", "exp 1", "a", "Δ-test")) -> str:
    return string_literal(d, string_value(d, plain))


# ---------------------------------------------------------------- values from the registry


def _fmt_args(d: Draw, args: list[tuple[str | None, str]]) -> str:
    sep = d.choice([", ", ",", " , ", ",\n    "])
    trailing = "," if d.rare(0.05) else ""
    return sep.join(v if k is None else f"{k}{d.choice([' = ', '=', ' ='])}{v}" for k, v in args) + trailing


def param_value(d: Draw, p: registry.Param, forms_ctx: dict | None = None) -> str:
    """A value for a registry Param: usually valid, sometimes at the edges or of the wrong type."""
    if d.rare(0.03):
        return d.choice([edge_number(d), string(d), "[" + edge_number(d) + "]", name(d), "f(1)", "a.b.c"])
    t = p.type
    if t == "int":
        return int_text(d, p.name)
    if t == "float":
        return float_text(d, p.low, p.high if p.high is not None else None)
    if t == "bool":
        return d.choice(["true", "false"])
    if t == "str":
        return string(d)
    if t == "name":
        return d.choice(p.choices) if p.choices and d.chance(0.9) else misspell(d, d.choice(p.choices or ("x",)))
    if t == "shape":
        return "[" + ", ".join(int_text(d, "units") for _ in range(d.integer(1, 3))) + "]"
    if t == "size":
        return int_text(d, "kernel") if d.chance(0.7) else f"[{int_text(d, 'kernel')}, {int_text(d, 'kernel')}]"
    if t == "scale":
        return d.choice(["minmax", "standard", float_text(d, 0.0, 2.0)])
    if t == "form" and p.forms:
        return form_value(d, p.forms)
    return edge_number(d)


def form_value(d: Draw, forms: dict[str, registry.Form], choose: str | None = None) -> str:
    """`name` or `name(args…)` for one of `forms`; positional or keyword arguments, sometimes wrong."""
    fname = choose or d.choice(list(forms))
    if d.rare(0.03):
        fname = misspell(d, fname)
    form = forms.get(fname)
    params = form.params if form else ()
    args: list[tuple[str | None, str]] = []
    positional = d.chance(0.3)
    for i, p in enumerate(params):
        if not p.required and not d.chance(0.4):
            continue
        if p.required and d.rare(0.02):
            continue  # a missing required option
        key = None if positional and i == len(args) else p.name
        if key is not None:
            positional = False
        args.append((key, param_value(d, p)))
    if d.rare(0.03):
        args.append((d.choice([name(d), "bogus", "lr"]), edge_number(d)))
    if d.rare(0.02) and args:
        args.append(args[0])
    if not args and d.chance(0.8):
        return fname
    return f"{fname}({_fmt_args(d, args)})"


# ---------------------------------------------------------------- data sources and files


@dataclass
class DataChoice:
    setting: str  # the `source …` value
    features: int | None  # flat feature count when known
    classes: int | None
    natural: bool  # comes with client ids
    examples: int | None
    tokens: bool = False  # integer token ids (an embedding first)


_SK = {k: v for k, v in registry.SKLEARN_SETS.items()}


def data_source(d: Draw, files: dict[str, bytes], files_only: bool = False) -> DataChoice:
    """A `source` value; `files_only`: always a CSV or npz file written next to the spec."""
    kind = d.integer(6, 8) if files_only else d.integer(0, 8)
    if d.rare(0.08):
        return DataChoice(d.choice(["emnist", "emnist(only_digits = false)", "mnist", "sklearn.nope", "csv", "npz()",
                                    'npz("' + CANARY + '.npz")', 'csv("/proc/self/environ")', 'csv("/dev/null")',
                                    'csv(".")', 'csv("")', 'csv("~/x.csv")', 'csv("~nobody/x.csv")',
                                    'npz("/etc")', 'csv("data.csv\\x00")', 'csv("../../../etc/passwd")',
                                    'files("*.tfrecord")', 'files("nothing/*.csv")', 'files("/etc/*")']),
                          None, None, False, None)
    if d.rare(0.1):  # token ids: the model gets an embedding and sequence layers
        vocab, window = d.integer(2, 30), d.integer(1, 12)
        args = f"vocab = {vocab}, clients = {int_text(d, 'devices', 0.02)}, length = {d.integer(window, 80)}, " \
               f"window = {window}" + (f", skew = {float_text(d, 0.0, 1.0)}" if d.chance(0.5) else "")
        return DataChoice(f"markov({args})", window, vocab, True, None, tokens=True)
    if kind <= 3:
        key = d.choice(list(_SK))
        s = _SK[key]
        return DataChoice(key, s.features[0], s.classes, False, s.examples)
    if kind <= 5:
        f, c, n = int_text(d, "features", 0.02), int_text(d, "classes", 0.02), int_text(d, "devices", 0.02)
        args = [("features", f), ("classes", c), ("devices", n)]
        args += [(k, float_text(d, 0.0, 2.0)) for k in ("alpha", "beta") if d.chance(0.4)]
        if d.chance(0.2):
            args.append(("iid", d.choice(["true", "false"])))
        d_args = [a for a in args if d.chance(0.8)]
        try:
            features, classes = int(dict(d_args).get("features", "60")), int(dict(d_args).get("classes", "10"))
        except ValueError:
            features, classes = None, None
        return DataChoice(f"synthetic({_fmt_args(d, d_args)})" if d_args else "synthetic", features, classes, True, None)
    if kind <= 7:
        return csv_source(d, files)
    return npz_source(d, files)


def file_name(d: Draw, ext: str) -> str:
    """A file name to create next to the spec: ordinary or hostile (quotes, backslashes, controls)."""
    if not d.rare(0.4):
        return d.choice(["train", "data", "a b", "données"]) + ext
    stem = d.choice([
        '"""', "'''", '"""; ' + CANARY + '(); """', "a\\b", "a\\x41", "a\\N{x}", "\\", "x\nimport " + CANARY,
        "coding:utf-7 +AAo-" + CANARY, "\x1b[2J", "[bold]x[/bold]", "\u202e", "\r", "#", "{{x}}", " ",
        "".join(d.choice(STRING_ALPHABET.replace("/", "").replace("\x00", "").replace("\ud800", "").replace(
            "\udfff", "")) for _ in range(d.integer(1, 12))),
    ])
    return stem + ext


_CELL_EDGES = ("", " ", "nan", "NaN", "inf", "-inf", "1e300", "-1e300", "1e30", "1e400", "4.9e-324", "-0",
               "١٢", "１", "1,5", "1_0", "0x1", "abc", '"', "\x00", "\ufeff1", "9" * 400, "True", "None",
               "1e-400", "   3  ", "+5", "--1", "1.5")


def csv_bytes(d: Draw, features: int, classes: int, rows: int, label: str, client: str | None) -> bytes:
    header = [f"f{i}" for i in range(features)]
    pos = d.integer(0, features)
    header.insert(pos, label)
    if client is not None:
        header.insert(d.integer(0, len(header)), client)
    body = []
    clients = [d.choice(["north", "south", "east", "a", "b"]) for _ in range(3)]
    for r in range(rows):
        row = []
        for col in header:
            if col == label and col != client:
                row.append(str(r % classes if r < classes else d.integer(0, classes - 1)))
            elif col == client:
                row.append(d.choice(clients))
            else:
                row.append(f"{d.integer(-999, 999) / 100:g}")
        body.append(row)
    odd = d.rare(0.4)
    if odd:
        for _ in range(d.integer(1, 4)):
            op = d.integer(0, 9)
            if op <= 4 and body:
                row = d.choice(body)
                if row:  # an earlier change may have emptied it
                    row[d.integer(0, len(row) - 1)] = d.choice(_CELL_EDGES)
            elif op == 5 and body:
                row = d.choice(body)
                if d.chance(0.5):
                    row.append("7")
                elif row:
                    row.pop()
            elif op == 6:
                header.append(d.choice(header) if header else "x")
            elif op == 7:
                body = []
            elif op == 8 and header:
                header[d.integer(0, len(header) - 1)] = d.choice(["", " ", label, "\ufefflabel", string_value(d)])
            else:
                body.append([d.choice(_CELL_EDGES)])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=d.choice(["\n", "\r\n", "\n", "\r"]) if odd else "\n")
    writer.writerow(header)
    writer.writerows(body)
    text = out.getvalue()
    if odd and d.chance(0.3):
        text = d.choice(["\ufeff" + text, text[: d.integer(0, len(text))], text + "\x00", text.replace(",", ";"),
                         "", "\n\n\n", text + "\n" * 50, text.replace("\n", "\n\n")])
    encoding = "latin-1" if odd and d.rare(0.05) and all(ord(c) < 256 for c in text) else "utf-8"
    data = text.encode(encoding, errors="surrogatepass")
    if odd and d.rare(0.05):
        data = bytes(d.integer(0, 255) for _ in range(d.integer(0, 64)))
    return data


def csv_source(d: Draw, files: dict[str, bytes]) -> DataChoice:
    features, classes = d.integer(1, 6), d.integer(1, 4) if d.rare(0.2) else d.integer(2, 4)
    rows = d.choice([0, 1, 2, 5]) if d.rare(0.2) else d.choice([12, 30, 40, 80])
    label = "label" if d.chance(0.6) else d.choice(["target", "y", string_value(d, ("label", "triage"))])
    client = None if d.chance(0.5) else ("site" if d.chance(0.6) else string_value(d, ("user", "clinic")))
    fname = file_name(d, ".csv")
    files[fname] = csv_bytes(d, features, classes, rows, label, client)
    args = [(None, string_literal(d, fname))]
    if label != "label" or d.chance(0.3):
        args.append(("label", string_literal(d, label if d.chance(0.95) else "missing")))
    if client is not None and d.chance(0.9):
        args.append(("client", string_literal(d, client)))
    natural = client is not None and any(k == "client" for k, _ in args)
    return DataChoice(f"csv({_fmt_args(d, args)})", features, classes, natural, rows)


def npz_bytes(d: Draw, features: int, classes: int, rows: int, keys: dict[str, str], client: bool) -> bytes:
    x = np.asarray([[d.integer(-99, 99) / 10 for _ in range(features)] for _ in range(rows)], dtype=np.float32)
    x = x.reshape(rows, features)
    y = np.asarray([r % classes if r < classes else d.integer(0, max(classes - 1, 0)) for r in range(rows)],
                   dtype=np.int64)
    arrays: dict[str, np.ndarray] = {keys["x"]: x, keys["y"]: y}
    if client:
        arrays[keys.get("client", "client")] = np.asarray([d.choice(["a", "b", "c"]) for _ in range(rows)])
    if d.rare(0.4):
        for _ in range(d.integer(1, 3)):
            _mutate_array(d, arrays)
    buffer = io.BytesIO()
    try:
        np.savez(buffer, **{k or "_": v for k, v in arrays.items()})
    except Exception:  # noqa: BLE001 - a key NumPy cannot store: write what it can
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y)
    data = buffer.getvalue()
    if d.rare(0.06):
        data = d.choice([data[: d.integer(0, len(data))], b"", b"PK\x03\x04" + b"\x00" * 30, b"not a zip",
                         _zip_with(d)])
    return data


def _mutate_array(d: Draw, arrays: dict[str, np.ndarray]) -> None:
    """One odd change to one array: huge, NaN, fractional, short, 0-d, 3-d, text, complex, object, gone."""
    if not arrays:
        return
    key = d.choice(list(arrays))
    op = d.integer(0, 11)
    a = arrays[key]
    with np.errstate(all="ignore"):
        try:
            if op == 0:
                arrays[key] = a.astype(np.float64) * 1e300 if a.dtype.kind in "fi" else a
            elif op == 1 and a.size and a.dtype.kind == "f":
                a = a.copy()
                a.flat[d.integer(0, a.size - 1)] = d.choice([np.nan, np.inf, -np.inf, 1e30])
                arrays[key] = a
            elif op == 2:
                arrays[key] = a.astype(np.float64) + 0.5 if a.dtype.kind in "fi" else a
            elif op == 3:
                arrays[key] = a[: max(0, len(a) - d.integer(1, 3))]
            elif op == 4:
                arrays[key] = np.asarray(d.choice([1, 1.5, "s", True]))  # 0-d
            elif op == 5:
                arrays[key] = a.reshape((len(a), 1, -1)) if a.ndim == 2 and a.size else a
            elif op == 6:
                arrays[key] = a.astype(str)
            elif op == 7:
                arrays[key] = a.astype(np.complex64) if a.dtype.kind in "fi" else a
            elif op == 8:
                arrays[key] = np.asarray([None] * len(a), dtype=object)  # pickled when saved
            elif op == 9:
                del arrays[key]
            elif op == 10:
                arrays[key] = -np.abs(a) - 1 if a.dtype.kind in "fi" else a
            else:
                arrays[d.choice(["extra", "x ", "", CANARY])] = np.zeros(d.integer(0, 3))
        except (TypeError, ValueError, IndexError):
            pass  # the change does not apply to this array (e.g. slicing a 0-d one)


def _zip_with(d: Draw) -> bytes:
    """A zip that is not a proper npz: a member that is not .npy, or a bad .npy header."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.npy", d.choice([b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}   \n", b"junk", b""]))
        z.writestr("y.txt", b"1 2 3")
    return buffer.getvalue()


def npz_source(d: Draw, files: dict[str, bytes]) -> DataChoice:
    features, classes = d.integer(1, 6), d.integer(1, 4) if d.rare(0.2) else d.integer(2, 4)
    rows = d.choice([0, 1, 3]) if d.rare(0.2) else d.choice([12, 30, 40])
    keys = {"x": "x", "y": "y"}
    args = []
    fname = file_name(d, ".npz")
    args.append((None, string_literal(d, fname)))
    for k in ("x", "y"):
        if d.chance(0.2):
            keys[k] = d.choice(["features", "labels", string_value(d, ("xs", "ys"))]) or k
            args.append((k, string_literal(d, keys[k])))
    client = d.chance(0.4)
    if client:
        keys["client"] = "client" if d.chance(0.7) else string_value(d, ("user",)) or "client"
        args.append(("client", string_literal(d, keys["client"])))
    files[fname] = npz_bytes(d, features, classes, rows, keys, client)
    return DataChoice(f"npz({_fmt_args(d, args)})", features, classes, client, rows)


# ---------------------------------------------------------------- blocks


def _setting_lines(d: Draw, pairs: list[tuple[str, str]], indent: str) -> list[str]:
    """`key value` settings, sometimes several on a line, sometimes with comments."""
    lines, current = [], []
    for key, value in pairs:
        current.append(f"{key} {value}")
        if "\n" in value or not d.chance(0.25):
            lines.append(indent + "  ".join(current) + (f"  # {string_value(d)}" if d.rare(0.05) else ""))
            current = []
    if current:
        lines.append(indent + "  ".join(current))
    return [line.replace("\n", " ") if "#" in line and "\n" in line else line for line in lines]


def _block(d: Draw, head: str, pairs: list[tuple[str, str]]) -> str:
    if d.chance(0.1) and len(pairs) <= 2 and all("\n" not in v for _, v in pairs):
        return f"{head} {{ " + "  ".join(f"{k} {v}" for k, v in pairs) + " }"
    indent = d.choice(["  ", "    ", "\t", " "])
    return head + " {\n" + "\n".join(_setting_lines(d, pairs, indent)) + "\n}"


def _perturb_settings(d: Draw, pairs: list[tuple[str, str]], params: Sequence[registry.Param]) -> None:
    """Typos, duplicates, stray settings from other blocks and aliases, at a low rate."""
    if pairs and d.rare(0.03):
        i = d.integer(0, len(pairs) - 1)
        pairs[i] = (misspell(d, pairs[i][0]), pairs[i][1])
    if pairs and d.rare(0.03):
        pairs.append(d.choice(pairs))
    if d.rare(0.03):
        pairs.append((d.choice(list(registry.ALIASES) + ["rounds", "batch", "noise", "source", "input", name(d)]),
                      param_value(d, d.choice(list(params)))))
    if pairs and d.rare(0.02):
        del pairs[d.integer(0, len(pairs) - 1)]


def model_block(d: Draw, data: DataChoice, reshape: list[int] | None) -> str:
    features = data.features or d.integer(1, 64)
    classes = data.classes or d.integer(2, 10)
    lines = []
    shape = reshape or [features]
    if d.rare(0.05):
        shape = [int(v) if v.isascii() and v.isdigit() and len(v) < 6 else 1 for v in (int_text(d, "units", 0.5) for _ in range(d.integer(1, 3)))]
    lines.append("input " + ("[" + ", ".join(map(str, shape)) + "]" if not d.rare(0.03) else param_value(
        d, registry.Param("input", "shape"))))
    if data.tokens and not d.rare(0.1):
        lines.append(f"embedding {classes} {int_text(d, 'units')}")
        for _ in range(d.integer(0, 3)):
            lines.append(d.choice([f"conv1d {int_text(d, 'filters')} {d.choice(registry.ACTIVATIONS)}"
                                   + (" padding = same" if d.chance(0.5) else ""),
                                   "maxpool1d " + d.choice(["2", "1", "3 padding = same"]),
                                   f"gru {int_text(d, 'units')} return_sequences = true", "layer_norm",
                                   f"lstm {int_text(d, 'units')} return_sequences = true", "batch_norm",
                                   f"activation {d.choice(registry.ACTIVATIONS)}"]))
        lines.append(d.choice([f"lstm {int_text(d, 'units')}", f"gru {int_text(d, 'units')}", "global_avgpool",
                               "flatten"]))
    elif len(shape) == 3 and not d.rare(0.1):
        for _ in range(d.integer(1, 2)):
            lines.append(f"conv2d {int_text(d, 'filters')} {d.choice(registry.ACTIVATIONS)}"
                         + (f" kernel = {int_text(d, 'kernel')}" if d.chance(0.5) else "")
                         + (" padding = same" if d.chance(0.5) else ""))
            if d.chance(0.4):
                lines.append("maxpool " + d.choice(["2", "1", "[2, 2]", "2 strides = 1", "3 padding = same"]))
            if d.chance(0.3):
                lines.append(d.choice(["avgpool 2", "batch_norm", "layer_norm", "activation relu",
                                       "avgpool [2, 1] padding = same"]))
        lines.append(d.choice(["flatten", "flatten", "global_avgpool"]))
    for _ in range(d.integer(0, 2)):
        if d.chance(0.7):
            lines.append(f"dense {int_text(d, 'units')} {d.choice(registry.ACTIVATIONS)}"
                         + (" use_bias = false" if d.chance(0.1) else ""))
        else:
            lines.append(f"dropout {float_text(d, 0.0, 0.9)}")
    if d.rare(0.05):
        lines.insert(d.integer(1, len(lines)), random_layer(d))
    binary = classes == 2 and d.chance(0.5)
    if binary:
        lines.append(f"dense 1 {d.choice(['sigmoid', 'linear'])}")
        lines.append("loss binary_crossentropy")
        metrics = sorted({d.choice(registry.METRICS) for _ in range(d.integer(0, 2))})
    else:
        lines.append(f"dense {classes} {d.choice(['softmax', 'linear', 'softmax'])}")
        lines.append("loss " + ("sparse_categorical_crossentropy" if not d.rare(0.05) else d.choice(
            list(registry.LOSSES) + ["mse", "crossentropy"])))
        metrics = ["accuracy"] if not d.rare(0.1) else [d.choice(registry.METRICS)]
    if metrics or d.chance(0.2):
        lines.append("metrics [" + ", ".join(metrics) + "]")
    if d.rare(0.05):
        i, j = d.integer(0, len(lines) - 1), d.integer(0, len(lines) - 1)
        lines[i], lines[j] = lines[j], lines[i]
    indent = d.choice(["  ", "    ", "\t"])
    return f"model {name(d) if d.chance(0.2) else 'mlp'} {{\n" + "".join(indent + l + "\n" for l in lines) + "}"


def random_layer(d: Draw) -> str:
    """Any layer from the registry with random options (positional or keyword)."""
    lname = d.choice(list(registry.LAYERS) + ["dence", "conv", "lstm"])
    form = registry.LAYERS.get(lname)
    parts = [lname]
    for i, p in enumerate(form.params if form else ()):
        if p.required or d.chance(0.3):
            value = param_value(d, p)
            parts.append(value if p.required or p.name == "activation" else f"{p.name} = {value}")
    return " ".join(parts)


def data_block(d: Draw, files: dict[str, bytes], files_only: bool = False
               ) -> tuple[str, DataChoice, list[int] | None, int, bool]:
    data = data_source(d, files, files_only)
    pairs = [("source", data.setting)]
    clients = 0
    if data.natural and d.chance(0.7):
        if d.chance(0.5):
            pairs.append(("partition", "natural"))
        clients = 1  # at least: clients_per_round stays within it
    else:
        p = d.choice(["iid", "dirichlet", "shards", "dirichlet"]) if not d.rare(0.1) else "natural"
        n = int_text(d, "clients")
        if data.examples is not None and n.isascii() and n.isdigit() and len(n) < 6 and not d.rare(0.2):
            n = str(max(1, min(int(n), data.examples // 6)))  # leaves room for a holdout and min_examples
        clients = int(n) if n.isascii() and n.isdigit() and len(n) < 6 else 5
        args = [("clients", n)]
        if p == "dirichlet":
            args.insert(0, ("alpha", float_text(d, 0.0, 2.0)))
            if d.chance(0.2):
                args.append(("min_examples", int_text(d, "min_examples")))
        elif p == "shards" and d.chance(0.4):
            args.append(("per_client", int_text(d, "per_client")))
        pairs.append(("partition", "natural" if p == "natural" else f"{p}({_fmt_args(d, args)})"))
    test = None
    if d.chance(0.6):
        test = "split" if d.rare(0.1) else d.choice([f"holdout({float_text(d, 0.0, 0.5)})", "none",
                                                      f"holdout(fraction = {float_text(d, 0.0, 0.6)})"])
        pairs.append(("test", test))
    if d.chance(0.4):
        pairs.append(("scale", d.choice(["minmax", "standard", float_text(d, 0.0, 1.0)])))
    reshape = None
    if data.features == 64 and d.chance(0.25):
        reshape = [8, 8, 1]
        pairs.append(("reshape", "[8, 8, 1]"))
    elif d.rare(0.03):
        pairs.append(("reshape", param_value(d, registry.Param("reshape", "shape"))))
    if d.chance(0.6):
        pairs.append(("batch", int_text(d, "batch")))
    if d.chance(0.3):
        pairs.append(("shuffle", int_text(d, "shuffle")))
    _perturb_settings(d, pairs, registry.DATA_SETTINGS)
    head = "data" + (" " + name(d) if d.chance(0.8) else "")
    return _block(d, head, pairs), data, reshape, clients, bool(test and test.startswith("holdout"))


def train_block(d: Draw, clients: int, robust: bool = False) -> str:
    """`robust`: the spec aggregates robustly or is attacked, which needs unweighted FedAvg."""
    algorithm = d.choice(["fedavg", "fedavg", "fedprox", "fedsgd"] + (["fed_avg"] if d.rare(0.05) else []))
    if robust and not d.rare(0.1):
        algorithm = "fedavg"
    pairs = [("rounds", int_text(d, "rounds"))]
    if d.chance(0.6):
        cpr = str(d.integer(1, max(1, clients))) if d.chance(0.9) else int_text(d, "clients_per_round")
        pairs.append(("clients_per_round", cpr))
    if d.chance(0.4) and algorithm != "fedsgd":
        pairs.append(("local_epochs", int_text(d, "local_epochs")))
    if algorithm != "fedsgd" and d.chance(0.7) or d.rare(0.02):
        pairs.append(("client_optimizer", form_value(d, registry.CLIENT_OPTIMIZERS)))
    if d.chance(0.5):
        pairs.append(("server_optimizer", form_value(d, registry.SERVER_OPTIMIZERS)))
    if robust and not d.rare(0.1):
        pairs.append(("weighting", "uniform"))
    elif d.chance(0.2) and (algorithm != "fedsgd" or d.rare(0.2)):
        pairs.append(("weighting", d.choice(registry.WEIGHTINGS)))
    if algorithm == "fedprox" and d.chance(0.95) or d.rare(0.02):
        pairs.append(("mu", float_text(d, 0.0, 1.0)))
    _perturb_settings(d, pairs, registry.TRAIN_SETTINGS)
    return _block(d, f"train {algorithm}", pairs)


def privacy_block(d: Draw, secure: bool) -> str:
    """`secure`: the spec has a secure aggregation block (noise at the clients needs one)."""
    auto = d.chance(0.3)
    pairs = [("noise", "auto" if auto else float_text(d, 0.3, 3.0)),
             ("clip", form_value(d, registry.CLIPS) if d.chance(0.2) else float_text(d, 0.0, 2.0))]
    for p in registry.PRIVACY_SETTINGS[2:]:
        if p.name == "epsilon" and (auto and not d.rare(0.1) or d.chance(0.3)):
            pairs.append(("epsilon", float_text(d, 5.0, 50.0)))
        elif p.name == "noise_at" and (secure or d.rare(0.2)) and d.chance(0.3):
            pairs.append(("noise_at", param_value(d, p)))
        elif p.name not in ("epsilon", "noise_at") and d.chance(0.2):
            pairs.append((p.name, param_value(d, p)))
    _perturb_settings(d, pairs, registry.PRIVACY_SETTINGS)
    return _block(d, "privacy", pairs)


def aggregation_block(d: Draw, aggregate_names: list[str], privacy: bool) -> str:
    """secure, compress and aggregator settings, combined as the checker allows unless a mistake is drawn."""
    pairs = []
    custom = aggregate_names and d.chance(0.7)
    aggregator = d.choice(aggregate_names) if custom else form_value(d, registry.ROBUST_AGGREGATORS)
    secure = (privacy or d.chance(0.3)) and not d.rare(0.1)
    if secure:
        lower = float_text(d, 0.0, 2.0)
        pairs.append(("secure", f"bounds(-{lower}, {float_text(d, 0.0, 2.0)})" if d.chance(0.8)
                      else form_value(d, registry.SECURE_FORMS)))
    if (not custom and not secure and d.chance(0.3)) or d.rare(0.05):
        pairs.append(("compress", form_value(d, registry.COMPRESSIONS, "quantize")))
    if (not pairs or custom or d.rare(0.1)) and (not privacy and not secure or d.rare(0.1)):
        pairs.append(("aggregator", aggregator))
    if not pairs:
        pairs.append(("secure", "bounds(-1, 1)"))
    _perturb_settings(d, pairs, registry.AGGREGATION_SETTINGS)
    return _block(d, "aggregation", pairs)


def attack_block(d: Draw) -> str:
    pairs = [("clients", "1" if not d.rare(0.3) else int_text(d, "clients"))]
    if d.chance(0.7):
        pairs.append(("scale", float_text(d, -100.0, 100.0)))
    _perturb_settings(d, pairs, registry.ATTACK_SETTINGS)
    return _block(d, "attack", pairs)


# Federated Core steps, typed as fedlang/check/steps.py types them: (dims, placement) with dims
# V (model vector), M (gathered matrix) or S (scalar) and placement C (CLIENTS) or S (SERVER).
_STEP_RULES = {
    # operator: ({operand type: result type}, options)
    "clip_norm": ({"VC": "VC", "VS": "VS"}, ("clip",)),
    "zero_large": ({"VC": "VC", "VS": "VS"}, ("threshold",)),
    "scale": ({"VC": "VC", "VS": "VS"}, ("factor",)),
    "mean": ({"VC": "VS"}, ()),
    "sum": ({"VC": "VS"}, ()),
    "gather": ({"VC": "MS"}, ()),
    "secure_sum": ({"VC": "VS"}, ("lower", "upper")),
    "median": ({"VC": "VS", "MS": "VS"}, ()),
    "krum": ({"VC": "VS", "MS": "VS"}, ("byzantine",)),
    "multi_krum": ({"VC": "VS", "MS": "VS"}, ("byzantine", "m")),
    "trimmed_mean": ({"VC": "VS"}, ("fraction",)),
    "norm_clipped_mean": ({"VC": "VS"}, ("clip",)),
    "zeroing_mean": ({"VC": "VS"}, ("threshold",)),
    "trim_mean": ({"MS": "VS"}, ("fraction",)),
    "broadcast": ({"VS": "VC"}, ()),
}
_OPTION_VALUES = {"clip": (0.1, 5.0), "threshold": (0.1, 10.0), "factor": (-2.0, 2.0), "lower": (-2.0, 0.0),
                  "upper": (0.0, 2.0), "fraction": (0.0, 0.45), "byzantine": None, "m": None}


def _step_call(d: Draw, op: str, operands: list[str], options: tuple[str, ...]) -> str:
    args: list[tuple[str | None, str]] = [(None, x) for x in operands]
    for opt in options:
        if d.chance(0.1) and opt in ("byzantine", "fraction"):
            continue
        rng = _OPTION_VALUES.get(opt)
        value = int_text(d, opt) if rng is None else float_text(d, *rng)
        args.append((opt if d.chance(0.7) or len(options) > 1 else None, value))
    return f"{op}({_fmt_args(d, args)})"


def fc_steps(d: Draw, param: str, other_aggregates: list[str], final_target: str | None) -> list[str]:
    """Steps from `param` ({float32[*]}@CLIENTS) to a float32[*]@SERVER result: a chain in which each
    step takes the previous value (so every value is used), well typed unless a mistake is drawn."""
    env = {param: "VC"}
    last = param
    lines = []
    for i in range(d.integer(0, 3)):
        if env[last] == "VC" and d.chance(0.15):  # two placed vectors: x ± the parameter
            target = f"diff{i}"
            lines.append(f"{target} @CLIENTS = {d.choice(['add', 'subtract'])}({last}, {param})")
            env[target], last = "VC", target
            continue
        candidates = [op for op, (types, _) in _STEP_RULES.items() if env[last] in types]
        operand = last
        if d.rare(0.05):
            candidates, operand = list(_STEP_RULES), d.choice(list(env))  # type errors, unused values
        op = d.choice(candidates)
        types, options = _STEP_RULES[op]
        result = types.get(env[operand], "VC")
        target = d.choice(["clipped", "all", "s", "v" + str(i), name(d)])
        if target in env:
            target += f"_{i}"
        placement = "CLIENTS" if result[1] == "C" else "SERVER"
        if d.rare(0.03):
            placement = d.choice(["CLIENTS", "SERVER", "clients", "EVERYWHERE"])
        lines.append(f"{target} @{placement} = {_step_call(d, op, [operand], options)}")
        env[target] = result
        last = target
    if env[last] == "VS" and d.chance(0.5):
        expression = last if final_target is not None or d.chance(0.3) else \
            f"scale({last}, {float_text(d, 0.0, 2.0)})"
        if final_target is None and expression == last:
            expression = f"clip_norm({last}, {float_text(d, 0.1, 5.0)})"
    elif env[last] == "VC" and d.chance(0.2):
        norm = "n" if "n" not in env else "n_"
        lines.append(f"{norm} @CLIENTS = norm({last})")
        expression = f"weighted_mean({last}, {norm})"
    elif env[last] == "VC" and other_aggregates and d.chance(0.3):
        expression = f"{d.choice(other_aggregates)}({last})"
    else:
        finals = [op for op, (types, _) in _STEP_RULES.items() if types.get(env[last]) == "VS"]
        if not finals:  # e.g. after a broadcast: back to the server
            finals = ["mean"]
        op = d.choice(finals)
        expression = _step_call(d, op, [last], _STEP_RULES[op][1])
    if d.rare(0.03):
        expression = d.choice([f"{misspell(d, 'mean')}({param})", f"mean({param}, {param})", "mean(nothing)",
                               f"gather({param})", param, f"mean({param}, fraction = 0.1)", f"norm({param})"])
    lines.append(f"return {expression}" if final_target is None else f"{final_target} @SERVER = {expression}")
    return lines


def aggregate_block(d: Draw, block_name: str, others: list[str]) -> str:
    param = d.choice(["update", "update", "u", "x", name(d)])
    signature = f"{param}: float32[*] @CLIENTS"
    result = "float32[*] @SERVER"
    if d.rare(0.03):
        signature = d.choice([f"{param}: float64[*] @CLIENTS", f"{param}: float32[*] @SERVER",
                              f"{param}: float32[3] @CLIENTS", f"{param}: float32[*] @CLIENTS, b: float32 @CLIENTS",
                              f"{param}: float32[?, *] @CLIENTS"])
    if d.rare(0.02):
        result = d.choice(["float32[*] @CLIENTS", "float32 @SERVER", "float32[?,*] @SERVER"])
    steps = fc_steps(d, param, others, None)
    indent = d.choice(["  ", "    "])
    return (f"aggregate {block_name}({signature}) -> {result} {{\n"
            + "".join(f"{indent}{s}\n" for s in steps) + "}")


def round_block(d: Draw, aggregates: list[str]) -> str:
    weights = d.choice(["weights", "w", "model_weights"])
    update = d.choice(["update", "u", "deltas"])
    lines = [f"{weights} @CLIENTS = broadcast(model)", f"{update} @CLIENTS = local_train({weights}, data)"]
    lines += fc_steps(d, update, aggregates, "delta")
    lines.append("model @SERVER = server_update(model, delta)")
    if d.rare(0.05):
        i, j = d.integer(0, len(lines) - 1), d.integer(0, len(lines) - 1)
        lines[i], lines[j] = lines[j], lines[i]
    return "round {\n" + "".join(f"  {l}\n" for l in lines) + "}"


# ---------------------------------------------------------------- whole specs


def grammar_spec(d: Draw, privacy_rate: float = 0.15, files_only: bool = False) -> Case:
    """A spec built block by block from the grammar and the registry, mostly coherent; how many
    mistakes and edge values it has is drawn first (d.rate). `files_only`: its data is a CSV or
    npz file written next to it."""
    files: dict[str, bytes] = {}
    blocks: list[str] = []
    d.rate = d.choice([0.0, 0.25, 1.0, 2.0])
    if d.chance(0.85):
        blocks.append("experiment " + string(d))
    if d.chance(0.9):
        blocks.append("seed " + int_text(d, "seed", 0.08))
    data_text, data, reshape, clients, has_test = data_block(d, files, files_only)
    blocks.append(model_block(d, data, reshape))
    blocks.append(data_text)
    aggregates: list[str] = []
    for _ in range(d.integer(1, 2) if d.chance(0.2) else 0):
        block_name = d.choice(["trimmed", "robust", "agg", "clipped_mean"] + [name(d)] * 2)
        aggregates.append(block_name)
    privacy = d.chance(privacy_rate)
    rounds = d.chance(0.1) and (not privacy or d.rare(0.2))
    aggregation = (d.chance(0.25) or aggregates and d.chance(0.8) or privacy and d.chance(0.3)) \
        and (not rounds or d.rare(0.2))
    attack = d.chance(0.1) and (not privacy or d.rare(0.2))
    blocks.append(train_block(d, clients, robust=bool(aggregates or aggregation or attack or rounds or privacy)))
    if has_test and d.chance(0.4) or d.rare(0.03):
        blocks.append(_block(d, "evaluate", [("every", int_text(d, "every"))]))
    for i, block_name in enumerate(aggregates):
        blocks.append(aggregate_block(d, block_name, aggregates[:i]))
    aggregation_text = aggregation_block(d, aggregates, privacy) if aggregation else ""
    if privacy:
        blocks.append(privacy_block(d, "secure" in aggregation_text))
    if aggregation:
        blocks.append(aggregation_text)
    if attack:
        blocks.append(attack_block(d))
    if rounds:
        blocks.append(round_block(d, aggregates))
    if d.chance(0.1):
        i, j = d.integer(0, len(blocks) - 1), d.integer(0, len(blocks) - 1)
        blocks[i], blocks[j] = blocks[j], blocks[i]
    if d.rare(0.03) and blocks:
        blocks.append(d.choice(blocks))  # a duplicated block
    return Case("grammar", layout(d, "\n\n".join(blocks) + "\n"), files)


def layout(d: Draw, text: str) -> str:
    """Comments, blank lines and line endings the lexer must take in its stride."""
    if d.chance(0.1):
        text = "# " + string_value(d).replace("\n", " ").replace("\r", " ") + "\n" + text
    if d.rare(0.05):
        text = text.replace("\n", "\r\n")
    if d.rare(0.03):
        text = "\ufeff" + text
    if d.rare(0.03):
        text = text.rstrip("\n")
    if d.rare(0.03):
        text = text.replace("\n", "\n\n")
    if d.rare(0.03):
        text = text.replace("  ", "\t")
    return text


# ---------------------------------------------------------------- the mutator


def repository_specs() -> list[tuple[str, str, Path]]:
    """(name, text, folder) of every spec in examples/ and tests/fixtures/."""
    out = []
    for pattern in ("examples/*.fed", "examples/*/*.fed", "tests/fixtures/*/*.fed"):
        for path in sorted(ROOT.glob(pattern)):
            out.append((str(path.relative_to(ROOT)), path.read_text(errors="replace"), path.parent))
    return out


_TOKEN = re.compile(r"\s+|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|\w+|[^\w\s]")
JUNK = (
    "-", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", ";", "@", "->", "*", "?", "\n", "\r\n", "\r", "\t",
    "\x0c", "\x00", "\ufeff", "é", "“", "#", '"', "'", "\\", "model", "data", "train", "experiment", "seed",
    "round", "aggregate", "return", "privacy", "aggregation", "attack", "evaluate", "@CLIENTS", "@SERVER",
    "float32[*]", "broadcast(model)", "local_train(w, data)", "server_update(model, delta)", "natural",
    "iid(clients = 2000)", "[8, 8, 1]", "conv2d 4 relu", "maxpool 9", "f(g(h(1)))", "[" * 60, "(" * 60,
)


def mutate(d: Draw, text: str) -> str:
    """Delete, duplicate, swap and insert tokens and lines; insert junk, numbers and strings."""
    for _ in range(d.integer(1, 4)):
        if d.chance(0.3):
            lines = text.splitlines(keepends=True) or [""]
            i, j = d.integer(0, len(lines) - 1), d.integer(0, len(lines) - 1)
            op = d.integer(0, 3)
            if op == 0:
                del lines[i]
            elif op == 1:
                lines.insert(i, lines[j])
            elif op == 2:
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(i, d.choice(["}\n", "{\n", "\n", "model m {\n", "  " + random_layer(d) + "\n",
                                          "privacy { noise 1  clip 1 }\n", "round {\n"]))
            text = "".join(lines)
        else:
            tokens = _TOKEN.findall(text) or [""]
            i = d.integer(0, len(tokens) - 1)
            op = d.integer(0, 5)
            if op == 0:
                del tokens[i]
            elif op == 1:
                tokens.insert(i, d.choice(tokens))
            elif op == 2:
                j = d.integer(0, len(tokens) - 1)
                tokens[i], tokens[j] = tokens[j], tokens[i]
            elif op == 3:
                tokens.insert(i, d.choice(JUNK))
            elif op == 4:
                numbers = [k for k, t in enumerate(tokens) if t[:1].isdigit()]
                tokens[d.choice(numbers) if numbers else i] = edge_number(d)
            else:
                strings = [k for k, t in enumerate(tokens) if t[:1] in "\"'"]
                tokens[d.choice(strings) if strings else i] = string(d)
            text = "".join(tokens)
    return text


def mutant_spec(d: Draw, corpus: list[tuple[str, str, Path]]) -> Case:
    spec_name, text, folder = d.choice(corpus)
    return Case(f"mutant:{spec_name}", mutate(d, text), {}, folder / "data")


def any_case(d: Draw, corpus: list[tuple[str, str, Path]], privacy_rate: float = 0.15) -> Case:
    """The mix the bench and the tests draw from: grammar specs, their mutants, repository mutants."""
    kind = d.integer(0, 9)
    if kind <= 5:
        return grammar_spec(d, privacy_rate)
    if kind <= 6:
        case = grammar_spec(d, privacy_rate)
        return Case("grammar-mutant", mutate(d, case.spec), case.files)
    return mutant_spec(d, corpus)
