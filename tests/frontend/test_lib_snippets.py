"""fedlang/lib modules are copied into emitted programs by `fedlang.emit.helper_source`, which
follows each module's REQUIRES table and brings the imports the copied code uses. These tests
read the modules as text (no TensorFlow is imported) and check that the table is exact."""

import ast
from pathlib import Path

import pytest

from fedlang.emit import LIB, helper_source

MODULES = sorted(p for p in LIB.glob("*.py") if p.name != "__init__.py")


def _module(path: Path):
    tree = ast.parse(path.read_text())
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    requires = next(ast.literal_eval(n.value) for n in tree.body
                    if isinstance(n, (ast.Assign, ast.AnnAssign))
                    and getattr(n.targets[0] if isinstance(n, ast.Assign) else n.target, "id", "") == "REQUIRES")
    return defs, requires


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_requires_lists_exactly_the_module_names_each_definition_uses(path):
    defs, requires = _module(path)
    assert set(requires) == set(defs), f"{path.name}: REQUIRES must list every function and class"
    for name, node in defs.items():
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defs and n.id != name}
        used -= _locally_bound(node)
        assert used == set(requires[name]), f"{path.name}: {name} uses {sorted(used)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_each_snippet_is_self_contained(path):
    """Every name a copied definition needs is defined by the snippet or imported by it."""
    defs, _ = _module(path)
    import builtins

    for name in defs:
        snippet = helper_source(path, [name])
        code = "\n".join(snippet.imports) + "\n\n" + snippet.source
        tree = ast.parse(code)
        bound = set(dir(builtins)) | {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bound |= {(a.asname or a.name.split(".")[0]) for a in node.names}
        bound |= _from_sibling_modules(path)  # the program copies those too (tests/frontend/test_emit_helpers.py)
        free = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        missing = free - bound - _locally_bound(tree)
        assert missing == set(), f"{path.name}:{name} copied without {sorted(missing)}"


def _from_sibling_modules(path: Path) -> set[str]:
    """Names a lib module imports from another lib module (`from .other import name`), each checked
    to be a definition of that module."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            defs, _ = _module(LIB / f"{node.module}.py")
            assert {a.name for a in node.names} <= set(defs), f"{path.name} imports what {node.module} lacks"
            names |= {a.asname or a.name for a in node.names}
    return names


def _locally_bound(tree: ast.AST) -> set[str]:
    """Names bound inside `tree`: arguments, assignments, local imports, inner definitions."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
    for n in ast.walk(tree):
        if isinstance(n, ast.arguments):
            names |= {a.arg for a in n.args + n.kwonlyargs + n.posonlyargs}
            names |= {a.arg for a in (n.vararg, n.kwarg) if a is not None}
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ExceptHandler) and n.name:
            names.add(n.name)
    inner = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    return names | {n.name for n in inner[1:]} if isinstance(tree, (ast.FunctionDef, ast.ClassDef)) \
        else names | {n.name for n in inner}
