"""Golden emitted programs: tests/fixtures/golden/<name>.fed → <name>.py, byte for byte.

A golden holds the program part (everything before the copied helpers); the helpers are
checked once, as verbatim copies of fedlang/lib definitions. A missing golden fails.
Regenerate after an intended change with `FEDLANG_UPDATE_GOLDEN=1 pytest tests/frontend`,
then review the diff of the .py files like any other code change.
"""

import ast
import sys
from pathlib import Path

import pytest

from fedlang.pipeline import compile_file

from ..conftest import REPO, UPDATE_GOLDEN

GOLDEN = REPO / "tests" / "fixtures" / "golden"
SPECS = sorted(GOLDEN.glob("*.fed"))


HELPERS_MARKER = "\n# Helpers (copied verbatim from fedlang.lib"


def split_program(program: str) -> tuple[str, str]:
    """(program part, copied helpers): the helpers start at their banner comment."""
    at = program.rindex(HELPERS_MARKER)
    at = program.rindex("\n# ---", 0, at)  # the rule above the banner
    return program[:at + 1], program[at + 1:]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_emitted_program_matches_golden(spec: Path, in_repo):
    # Data paths are absolute in emitted programs; the golden files spell the checkout as <repo>.
    program = compile_file(spec.relative_to(REPO)).program().replace(str(REPO), "<repo>")
    part, _ = split_program(program)
    expected = spec.with_suffix(".py")
    if UPDATE_GOLDEN:
        expected.write_text(part)
    assert expected.exists(), f"no golden {expected.name}: write it with FEDLANG_UPDATE_GOLDEN=1 and review it"
    assert part == expected.read_text()


def test_copied_helpers_are_verbatim_lib_definitions(in_repo):
    """Every definition after the banner is a definition of a fedlang/lib module, unchanged."""
    from fedlang.emit import LIB

    lib = {}
    for path in LIB.glob("*.py"):
        text = path.read_text()
        for node in ast.parse(text).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                lib[node.name] = ast.get_source_segment(text, node)
    for spec in SPECS:
        _, helpers = split_program(compile_file(spec.relative_to(REPO)).program())
        tree = ast.parse(helpers)
        body = list(tree.body)
        while body and isinstance(body[0], (ast.Import, ast.ImportFrom)):  # the imports only helpers need
            body.pop(0)
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assert ast.get_source_segment(helpers, node) == lib.get(node.name), (spec.name, node.name)
            else:  # only the entry-point guard may follow the helpers
                assert isinstance(node, ast.If) and "__main__" in ast.unparse(node.test), (spec.name, ast.unparse(node))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_the_program_part_imports_what_it_uses_and_the_helpers_the_rest(spec: Path, in_repo):
    """Imports on top bind names the program part reads; those after the banner, names only helpers read."""
    part, helpers = split_program(compile_file(spec.relative_to(REPO)).program())

    def bound(tree):
        return {alias.asname or alias.name.split(".")[0] for node in tree.body
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}

    def read(tree, skip=()):
        return {n.id for node in tree.body if not isinstance(node, skip) for n in ast.walk(node)
                if isinstance(n, ast.Name)}

    part_tree, helper_tree = ast.parse(part), ast.parse(helpers)
    assert bound(part_tree) <= read(part_tree), spec.name
    helper_only = bound(helper_tree)
    assert not helper_only & read(part_tree), spec.name
    assert helper_only <= read(helper_tree, skip=(ast.Import, ast.ImportFrom)), spec.name


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_emitted_program_is_standalone(spec: Path, in_repo):
    """The program parses, imports no fedlang, and defines the entry points `fedlang run` uses."""
    tree = ast.parse(compile_file(spec.relative_to(REPO)).program())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "fedlang" not in imported
    assert {"tensorflow", "tensorflow_federated", "numpy"} <= imported
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert {"load_data", "build_keras_model", "model_fn", "build_process", "train", "main"} <= defined
    assert defined & {"use_local_tff_worker", "use_tff_workers"}  # one local worker, or the pool a runtime asks for


def test_emitting_does_not_import_tensorflow(in_repo):
    """`fedlang emit` must answer without loading TensorFlow (checked in a fresh interpreter)."""
    import subprocess

    code = ("import sys; from fedlang.pipeline import compile_file; "
            f"[compile_file(p).program() for p in {[str(s.relative_to(REPO)) for s in SPECS]!r}]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_federated')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
