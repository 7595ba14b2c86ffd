"""Plan → standalone Python source (TFF + TF + NumPy, no fedlang import).

The program is rendered from `templates/program.py.j2`. Helper functions are copied verbatim
from fedlang/lib (read as text, never imported, so emitting does not load TensorFlow). Every
value from the spec reaches the source through one of the encoders of `encode.py` (the
template's `py`, `comment`, `word`, `ident` and `dotted` filters), and `emit` proves the result
by compiling its UTF-8 bytes the way `python program.py` will (`encode.program_bytes`).
"""

from __future__ import annotations

import ast as pyast
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import jinja2

from ..plan import Plan, PyCall
from .encode import EmitError, comment, dotted, identifier, literal, literal_wrapped, program_bytes, targets, word

LIB = Path(__file__).resolve().parent.parent / "lib"


# The program's own imports (besides those the copied helpers bring along).
_PROGRAM_IMPORTS = ("import argparse", "import os", "import time", "import numpy as np")
# Imported after TF_CPP_MIN_LOG_LEVEL is set, since they load TensorFlow.
_TF_MODULES = ("tensorflow", "tensorflow_federated", "tensorflow_privacy")


def emit(plan: Plan) -> str:
    """The experiment as one readable Python program (checked to load from its bytes as rendered)."""
    text = _render(plan)
    program_bytes(text)
    return text


def emit_bytes(plan: Plan) -> bytes:
    """The program exactly as it is written to disk and executed: UTF-8 bytes, checked."""
    return program_bytes(_render(plan))


def _render(plan: Plan) -> str:
    """The template rendered twice: first to learn which names the program part (before the copied
    helpers) uses, then with the imports split: those on top, the helpers' other imports with them."""
    snippets = [helper_source(LIB / module, names) for module, names in plan.helper_modules]
    imports = set(_PROGRAM_IMPORTS) | set(plan.imports) | {"import tensorflow as tf",
                                                            "import tensorflow_federated as tff"}
    for snippet in snippets:
        imports |= set(snippet.imports)

    def render(top: set[str]) -> str:
        stdlib, third_party, tensorflow = _group_imports(top)
        return _env().get_template("program.py.j2").render(
            plan=plan,
            process=plan.process if plan.execution[0] == "fused" else with_update_norms(plan.process),
            requirements=_requirements(imports),
            steps=plan.data_steps,
            stdlib_imports=stdlib,
            third_party_imports=third_party,
            tensorflow_imports=tensorflow,
            # below the program part, on purpose: E402 (an import not at the top) is silenced for linters
            helper_imports="\n\n".join("\n".join(f"{line}  # noqa: E402" for line in group)
                                        for group in _group_imports(imports - top) if group),
            helpers="\n\n\n".join(s.source for s in snippets if s.source.strip()),
        )

    draft = render(set())
    # The template's banner starts a line; spec text (quoted lines, names) never does, and helpers follow it.
    part = draft[:draft.rindex("\n" + HELPERS_BANNER)]
    used = {node.id for node in pyast.walk(pyast.parse(part)) if isinstance(node, pyast.Name)}
    return render({line for line in imports if _bound_name(line) in used}).rstrip() + "\n"


# The comment that opens the copied helpers (tests split programs there).
HELPERS_BANNER = "# Helpers (copied verbatim from fedlang.lib"


def _bound_name(line: str) -> str:
    """The name an import line binds: `import a.b` → a, `import a as b` / `from a import b` → b."""
    words = line.split()
    return words[-1] if words[0] == "from" or " as " in line else words[1].split(".")[0]


def with_update_norms(process: PyCall) -> PyCall:
    """The learning process with its model aggregator wrapped by `measure_update_norms` (TFF's
    default mean made explicit where the plan left it out), so every round reports the clients'
    update norms."""
    if process.func == "FedPerProcess":  # measures its update norms itself (fedlang/lib/fedper.py)
        return process
    args = dict(process.args)
    inner = args.get("model_aggregator")
    if inner is None:
        weighted = "_weighted_" in process.func or process.func.endswith("build_fed_sgd")
        inner = PyCall.of("tff.aggregators.MeanFactory" if weighted else "tff.aggregators.UnweightedMeanFactory")
    wrapped = PyCall.of("measure_update_norms", inner)
    if "model_aggregator" in args:
        return PyCall(process.func, tuple((k, wrapped if k == "model_aggregator" else v) for k, v in process.args))
    return PyCall(process.func, process.args + (("model_aggregator", wrapped),))


# Packages besides TensorFlow, TFF and NumPy that an import line needs (the program's header lists them).
_PACKAGES = {"sklearn": "scikit-learn", "tensorflow_privacy": "tensorflow-privacy", "dp_accounting": "dp-accounting"}


def _requirements(imports: set[str]) -> list[str]:
    modules = {line.split()[1].split(".")[0] for line in imports}
    return sorted(_PACKAGES[m] for m in modules if m in _PACKAGES)


def _group_imports(lines: set[str]) -> tuple[list[str], list[str], list[str]]:
    """isort-style groups: standard library, third party, then the TensorFlow family."""
    def module(line: str) -> str:
        return line.split()[1].split(".")[0]

    stdlib = sorted((l for l in lines if module(l) in sys.stdlib_module_names), key=lambda l: (l.startswith("from"), l))
    rest = [l for l in lines if module(l) not in sys.stdlib_module_names]
    tensorflow = sorted((l for l in rest if module(l) in _TF_MODULES), key=lambda l: (l.startswith("from"), l))
    third_party = sorted((l for l in rest if module(l) not in _TF_MODULES), key=lambda l: (l.startswith("from"), l))
    return stdlib, third_party, tensorflow


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fedlang.emit", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["py"] = literal
    env.filters["py_wrapped"] = literal_wrapped
    env.filters["comment"] = comment
    env.filters["word"] = word
    env.filters["ident"] = identifier
    env.filters["dotted"] = dotted
    env.filters["targets"] = targets
    env.globals["call_lines"] = call_lines
    return env


def call_lines(indent: int, head: str, args: Iterable[str], end: str = "", width: int = 120) -> str:
    """`head(arg, …)end` at `indent`, the arguments (source text, already encoded) packed onto as
    few lines as fit in `width`, each further line aligned after the parenthesis."""
    args = list(args)
    lines, line = [], " " * indent + head + "("
    align = " " * len(line)
    for k, arg in enumerate(args):
        piece = arg + ("," if k < len(args) - 1 else ")" + end)
        if len(line) + len(piece) + 1 > width and not line.endswith("("):
            lines.append(line.rstrip())
            line = align
        line += piece + " "
    return "\n".join(lines + [line.rstrip()])


# Kept under their old names for callers outside the emitter.
py = literal
py_wrapped = literal_wrapped


@dataclass(frozen=True)
class Snippet:
    source: str
    imports: tuple[str, ...]  # the module's import lines that the copied code uses


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> tuple[str, pyast.Module]:
    """A library file's text and syntax tree, read once per process (they are fedlang's own files)."""
    text = path.read_text()
    return text, pyast.parse(text)


def helper_source(path: Path, names: Iterable[str]) -> Snippet:
    """`names` and the helpers they need (the module's REQUIRES), in file order, with their imports."""
    text, module = _parsed(path)
    requires: dict[str, tuple[str, ...]] = {}
    defs: dict[str, pyast.AST] = {}
    import_nodes: list[pyast.AST] = []
    for node in module.body:
        if isinstance(node, (pyast.FunctionDef, pyast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (pyast.Import, pyast.ImportFrom)):
            import_nodes.append(node)
        elif isinstance(node, (pyast.Assign, pyast.AnnAssign)):
            target = node.targets[0] if isinstance(node, pyast.Assign) else node.target
            if isinstance(target, pyast.Name) and target.id == "REQUIRES":
                requires = pyast.literal_eval(node.value)
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(requires.get(name, ()))
    chosen = [node for name, node in defs.items() if name in wanted]
    used = {n.id for node in chosen for n in pyast.walk(node) if isinstance(n, pyast.Name)}
    imports = []
    for node in import_nodes:
        if isinstance(node, pyast.ImportFrom) and (node.module == "__future__" or node.level):
            continue  # a lib module's import of another lib module: the program copies that one too
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if bound in used:
                if isinstance(node, pyast.Import):
                    imports.append(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
                else:
                    imports.append(f"from {node.module} import {alias.name}"
                                   + (f" as {alias.asname}" if alias.asname else ""))
    lines = text.splitlines(keepends=True)
    return Snippet("\n\n\n".join(_segment(lines, node) for node in chosen), tuple(imports))


def _segment(lines: list[str], node: pyast.AST) -> str:
    """`ast.get_source_segment` for a node, from lines split once: that function splits the whole
    file again for every node, which made emitting a program take up to a second."""
    first, last = node.lineno - 1, node.end_lineno - 1
    if first == last:
        return lines[first].encode()[node.col_offset:node.end_col_offset].decode()
    head = lines[first].encode()[node.col_offset:].decode()
    tail = lines[last].encode()[:node.end_col_offset].decode()
    return "".join([head, *lines[first + 1:last], tail])
