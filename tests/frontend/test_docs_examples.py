"""Every complete spec in the docs and every example spec compiles (parse, check, lower, emit).

Convention: in docs/language.md, a ```fed block whose first line is `# complete spec` is a
whole spec and must compile; other ```fed blocks are fragments and are not checked here.
Every .fed file under examples/ (recursively) is a complete spec. Data paths in doc specs are resolved against
examples/ (so `csv("data/clinics.csv", …)` means examples/data/clinics.csv); example specs
resolve them against their own folder, as `fedlang check` does.
"""

import ast as pyast
import re
from pathlib import Path

import pytest

from fedlang.diagnostics import Source, SpecError, render_all
from fedlang.parse import read_source
from fedlang.pipeline import compile_source

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
MARKER = "# complete spec"

_FENCE = re.compile(r"^```fed[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def fed_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every ```fed block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _FENCE.finditer(text)]


def complete_specs(path: Path) -> list[tuple[str, str]]:
    return [(f"{path.relative_to(ROOT)}:{line}", body) for line, body in fed_blocks(path)
            if body.lstrip().startswith(MARKER)]


DOC_SPECS = complete_specs(DOCS / "language.md")
EXAMPLE_SPECS = sorted(EXAMPLES.rglob("*.fed"))  # recursively: examples/robust/ too


def _compile(source: Source, base_dir: Path):
    try:
        compiled = compile_source(source, base_dir)
    except SpecError as exc:
        pytest.fail("spec does not compile:\n" + render_all(exc.source, exc.diagnostics, color=False))
    pyast.parse(compiled.program())  # the emitted program is valid Python
    return compiled


def test_docs_have_complete_specs():
    assert len(DOC_SPECS) >= 5, "docs/language.md should contain complete, checked specs"


@pytest.mark.parametrize("name,text", DOC_SPECS, ids=[name for name, _ in DOC_SPECS])
def test_doc_spec_compiles(name, text):
    _compile(Source(name, text), EXAMPLES)


def test_examples_exist():
    names = {p.name for p in EXAMPLE_SPECS}
    assert {"quickstart.fed", "fedprox_synthetic.fed", "fedavgm_shards.fed",
            "cross_silo_breast_cancer.fed", "cnn_digits.fed", "csv_natural.fed"} <= names


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=[str(p.relative_to(EXAMPLES)) for p in EXAMPLE_SPECS])
def test_example_compiles_without_warnings(path):
    compiled = _compile(read_source(path), path.parent)
    assert not compiled.checked.warnings, [w.message for w in compiled.checked.warnings]
    assert compiled.checked.evaluate is not None, "every example evaluates on a test set"


def test_example_readme_covers_every_example():
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in EXAMPLE_SPECS:
        named = path.relative_to(EXAMPLES).as_posix()
        nested = path.parent != EXAMPLES and named.removesuffix(".fed") in readme  # robust/clean_fedavg
        assert f"examples/{named}" in readme or nested, f"examples/README.md does not mention {named}"


def test_clinics_csv_is_what_the_script_makes():
    """examples/data/clinics.csv is reproducible from examples/data/make_clinics.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_clinics", EXAMPLES / "data" / "make_clinics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (EXAMPLES / "data" / "clinics.csv").read_text() == module.csv_text()
