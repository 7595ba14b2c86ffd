"""Run one fuzz case through the `fedlang` command in-process and check its properties.

Properties (each violation is a `problem`):
- `fedlang check` exits 0, 1 or 2; it never raises (FEDLANG_DEBUG=1 lets a compiler bug raise
  here, so its traceback is kept) and never runs past the time limit;
- every line it prints to stderr is part of a positioned diagnostic
  (`spec.fed:LINE:COL: error[CODE]: …`, the quoted source line, caret, hint, notes, the count);
- nothing it prints holds a raw control character (terminal escapes);
- a spec that checks is emitted (`fedlang emit -o`), and the program's BYTES compile as Python
  loads them: no encoding cookie from the spec, no canary (tests/fuzzing/specgen.CANARY) outside
  string literals and comments, no identifier that is neither the template's nor a name written in
  the spec's code positions;
- `fedlang fmt` (when it exists) is idempotent and keeps the check outcome.
"""

from __future__ import annotations

import ast as pyast
import builtins
import io
import os
import re
import shutil
import signal
import time
import tokenize
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from click.testing import CliRunner

from fedlang.cli import main

from .specgen import CANARY, ROOT, Case

SPEC_NAME = "spec.fed"
_HEADER = re.compile(r"^(?P<name>.*?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)\[(?P<code>[A-Z]\d{3})\]: ")
_COUNT = re.compile(r"^\d+ errors? in |^For more about (this|an) error, run `fedlang explain ")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


# Problems of classes that issue 8 lists and another helper is fixing (owner in the value). The
# fixed-seed tests tolerate these and bench/fuzz.py counts them apart; delete a row once its fix
# is on main, so the fuzzer guards it from then on.
KNOWN_OPEN: dict[str, str] = {}  # issue 8's classes are fixed: every problem counts


def known_owner(problem: str) -> str | None:
    """Who is fixing `problem`, if it is of a class another helper owns."""
    return next((owner for pattern, owner in KNOWN_OPEN.items() if re.search(pattern, problem)), None)


class CaseTimeout(BaseException):
    """Raised by the alarm when a case runs past its time limit (not an Exception: nothing catches it)."""


@dataclass
class Result:
    outcome: str  # ok | error | usage | internal | hang
    problems: list[str] = field(default_factory=list)
    traceback: str | None = None
    seconds: float = 0.0  # the whole case: check, emit, fmt
    exit_code: int | None = None
    check_seconds: float = 0.0  # `fedlang check` alone, CPU seconds

    @property
    def unsafe(self) -> bool:
        return any(p.startswith("unsafe") for p in self.problems)


def prepare(case: Case, workdir: Path) -> Path:
    """A fresh folder holding the spec, its files and (for mutants) a `data` link; returns the spec path."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    spec = workdir / SPEC_NAME
    spec.write_bytes(case.spec.encode("utf-8", errors="surrogatepass"))
    for name, data in case.files.items():
        try:
            (workdir / name).write_bytes(data)
        except (OSError, ValueError):
            pass  # a name the file system refuses: the spec then names a missing file
    if case.data_dir is not None and case.data_dir.is_dir() and not (workdir / "data").exists():
        (workdir / "data").symlink_to(case.data_dir)
    return spec


def run_case(case: Case, workdir: Path, timeout: float | None = 20.0, emit: bool = True,
             fmt: bool = True) -> Result:
    """Check (and emit, and format) `case` in `workdir`; classify the outcome and list violations."""
    spec = prepare(case, workdir)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = Result("ok")
    try:
        with _deadline(timeout):
            code, out, err, exc = _invoke(["check", str(spec)])
            result.check_seconds = time.process_time() - cpu_started  # CPU: the machine is shared
            result.exit_code = code
            if exc is not None:
                result.outcome, result.traceback = "internal", exc
                result.problems.append("internal: check raised " + exc.strip().splitlines()[-1][:300])
            else:
                result.outcome = {0: "ok", 1: "error", 2: "usage"}.get(code, "internal")
                if result.outcome == "internal":
                    result.problems.append(f"internal: check exited {code}")
                result.problems += _output_problems(out, err, str(spec), code, case.spec)
                if code == 0 and emit:
                    result.problems += emit_problems(spec, workdir / "program.py", case.spec)
                if fmt and "fmt" in main.commands and code in (0, 1):
                    result.problems += fmt_problems(spec, code)
    except CaseTimeout:
        result.outcome = "hang"
        result.problems.append(f"hang: no answer within {timeout:g} s of CPU")
    result.seconds = time.perf_counter() - started
    return result


def _invoke(args: list[str]) -> tuple[int, str, str, str | None]:
    """(exit code, stdout, stderr, traceback or None) of `fedlang ARGS`, in this process."""
    runner = CliRunner()
    r = runner.invoke(main, args, env={"FEDLANG_DEBUG": "1", "NO_COLOR": "1"}, catch_exceptions=True)
    exc = None
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        exc = "".join(traceback.format_exception(*r.exc_info))
    return r.exit_code, r.stdout, r.stderr, exc


class _deadline:
    """Raise CaseTimeout in the main thread after `seconds` of this process's CPU time (SIGPROF,
    so a case starved on a loaded machine is not a hang); no-op when None."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds

    def __enter__(self):
        if self.seconds:
            self.previous = signal.signal(signal.SIGPROF, self._fire)
            signal.setitimer(signal.ITIMER_PROF, self.seconds)

    @staticmethod
    def _fire(signum, frame):
        raise CaseTimeout()

    def __exit__(self, *exc):
        if self.seconds:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, self.previous)
        return False


def _output_problems(out: str, err: str, spec_name: str, code: int, text: str) -> list[str]:
    problems = []
    for stream, content in (("stdout", out), ("stderr", err)):
        bad = _CONTROL.search(content)
        if bad:
            problems.append(f"terminal: raw control character {bad.group(0)!r} in {stream}")
    if code not in (0, 1):
        return problems
    lines = err.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    n_lines = text.count("\n") + 1
    errors = 0
    for line in lines:
        m = _HEADER.match(line)
        if m:
            if m.group("name") != spec_name:
                problems.append(f"unpositioned: diagnostic names {m.group('name')!r}, not the spec")
            if not 1 <= int(m.group("line")) <= n_lines + 1 or int(m.group("col")) < 1:
                problems.append(f"unpositioned: position {m.group('line')}:{m.group('col')} outside the spec")
            errors += m.group("sev") == "error"
        elif not (line.startswith("    ") or line.startswith("  hint: ") or line.startswith("  note: ")
                  or _COUNT.match(line)):
            if not any(p.startswith("unpositioned: stderr line") for p in problems):
                problems.append(f"unpositioned: stderr line {line[:200]!r}")
    if code == 1 and errors == 0:
        problems.append("unpositioned: exit 1 without a positioned error")
    return problems


# ---------------------------------------------------------------- the emitted program


def emit_problems(spec: Path, program_path: Path, spec_text: str) -> list[str]:
    code, out, err, exc = _invoke(["emit", str(spec), "-o", str(program_path)])
    if exc is not None:
        return ["internal: emit raised " + exc.strip().splitlines()[-1][:300]]
    if code != 0:
        return [f"internal: check passed but emit exited {code}: {err.strip()[:300]}"]
    return program_problems(program_path.read_bytes(), spec_text)


def program_problems(data: bytes, spec_text: str) -> list[str]:
    """Why these program bytes are unsafe to run (empty when they are the template's code only)."""
    problems = []
    for line in data.split(b"\n")[:2]:
        m = _COOKIE.match(line)
        if m and m.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
            problems.append(f"unsafe: encoding cookie {m.group(1)!r} on the first two lines")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        return problems + [f"unsafe: Python cannot read the program's encoding: {exc}"]
    if encoding not in ("utf-8", "utf-8-sig"):
        problems.append(f"unsafe: Python reads the program as {encoding}")
    try:
        tree = compile(data, "program.py", "exec", flags=pyast.PyCF_ONLY_AST, dont_inherit=True)
        compile(data, "program.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return problems + [f"unsafe: the program does not compile from its bytes: {type(exc).__name__}: {exc}"]
    try:
        for tok in tokenize.tokenize(io.BytesIO(data).readline):
            if CANARY in tok.string and tok.type not in (tokenize.STRING, tokenize.COMMENT):
                problems.append(f"unsafe: spec text {tok.string[:80]!r} is code on line {tok.start[0]}")
                break
    except (tokenize.TokenError, SyntaxError) as exc:
        problems.append(f"unsafe: the program does not tokenize: {exc}")
    allowed = template_words() | spec_code_words(spec_text)
    for node in pyast.walk(tree):
        for ident in _identifiers(node):
            base = ident
            while base not in allowed and base.endswith("_"):  # lower.value_names appends '_' to avoid clashes
                base = base[:-1]
            if base not in allowed:
                problems.append(f"unsafe: identifier {ident!r} is neither the template's nor the spec's")
                return problems
    return problems


def _identifiers(node: pyast.AST) -> list[str]:
    if isinstance(node, pyast.Name):
        return [node.id]
    if isinstance(node, pyast.Attribute):
        return [node.attr]
    if isinstance(node, (pyast.FunctionDef, pyast.AsyncFunctionDef, pyast.ClassDef)):
        return [node.name]
    if isinstance(node, pyast.arg):
        return [node.arg]
    if isinstance(node, pyast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, pyast.alias):
        return [p for p in (node.name.split(".") + [node.asname or ""]) if p]
    return []


@lru_cache(maxsize=1)
def template_words() -> frozenset[str]:
    """Every word of the emitter's template, library, lowering, registry and construct definitions, and builtins."""
    words = set(dir(builtins))
    fedlang = ROOT / "fedlang"
    for path in [*fedlang.glob("**/*.py"), *fedlang.glob("emit/templates/*")]:
        if path.is_file():
            words |= set(re.findall(r"[A-Za-z_]\w*", path.read_text(errors="replace")))
    # names the lowering builds from registry names: tff.learning.optimizers.build_<optimizer>,
    # tff.learning.algorithms.build_<weighted|unweighted>_fed_<avg|prox>
    from fedlang import registry

    words |= {f"build_{n}" for n in (*registry.CLIENT_OPTIMIZERS, *registry.SERVER_OPTIMIZERS)}
    words |= {f"build_{w}_fed_{a}" for w in ("weighted", "unweighted") for a in ("avg", "prox")}
    return frozenset(words)


_SPEC_TOKEN = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|([A-Za-z_]\w*)")


def spec_code_words(text: str) -> set[str]:
    """Identifiers written in the spec outside strings and comments (aggregate and value names)."""
    words = {m.group(1) for m in _SPEC_TOKEN.finditer(text) if m.group(1)}
    return words | {f"aggregate_{w}" for w in words}


# ---------------------------------------------------------------- fmt


def fmt_problems(spec: Path, check_code: int) -> list[str]:
    """`fedlang fmt` then `fedlang fmt --check` (idempotent), and `check` answers as before."""
    original = spec.read_bytes()
    code, out, err, exc = _invoke(["fmt", str(spec)])
    if exc is not None:
        return ["internal: fmt raised " + exc.strip().splitlines()[-1][:300]]
    if code not in (0, 1, 2):
        return [f"internal: fmt exited {code}"]
    problems = []
    if code == 0:
        once = spec.read_bytes()
        code2, _, err2, exc2 = _invoke(["fmt", "--check", str(spec)])
        if exc2 is not None or code2 != 0 or spec.read_bytes() != once:
            problems.append("fmt: not idempotent (fmt --check fails on fmt's own output)")
        code3, _, _, exc3 = _invoke(["check", str(spec)])
        if exc3 is not None or code3 != check_code:
            problems.append(f"fmt: check answered {check_code} before fmt and {code3} after")
    spec.write_bytes(original)
    return problems


def reproducer_name(result: Result) -> str:
    """A short file-name-safe label for the first problem of a result."""
    first = result.problems[0] if result.problems else result.outcome
    return re.sub(r"[^A-Za-z0-9]+", "_", first)[:60].strip("_")


def save_reproducer(case: Case, result: Result, folder: Path, index: int) -> Path:
    """folder/<n>-<problem>/: spec.fed, its data files, and report.txt with the problems and traceback."""
    target = folder / f"{index:06d}-{reproducer_name(result)}"
    prepare(case, target)
    report = [f"kind: {case.kind}", f"outcome: {result.outcome} (exit {result.exit_code})",
              f"seconds: {result.seconds:.2f}", *result.problems]
    if result.traceback:
        report += ["", result.traceback]
    (target / "report.txt").write_text("\n".join(report) + "\n", errors="backslashreplace")
    if (target / "data").is_symlink():
        (target / "report.txt").open("a").write(f"data -> {os.readlink(target / 'data')}\n")
    return target
