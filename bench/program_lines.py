"""How long an emitted program is, and what its copied helpers spend their lines on.

    python bench/program_lines.py [SPEC ...]     (default: every example)

For each spec: the total (`fedlang emit SPEC | wc -l`), the readable part (everything above the
helpers' banner and its rule), and each copied helper's lines with the two blank lines after it.
Front end only: no TensorFlow is imported.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fedlang.pipeline import compile_file  # noqa: E402

BANNER = "# Helpers (copied"


def program_lines(spec: Path) -> tuple[int, int, dict[str, int]]:
    """(total lines, readable lines, {helper: lines}) of the program `fedlang emit spec` prints."""
    program = compile_file(spec).program()
    lines = program.splitlines()
    banner = next(i for i, line in enumerate(lines) if line.startswith(BANNER))  # 0-based: its rule is above
    helpers = {}
    for node in ast.parse(program).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.lineno > banner:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            helpers[node.name] = node.end_lineno - first + 1 + 2
    return len(lines), banner - 1, helpers


def main(argv: list[str]) -> None:
    specs = [Path(a) for a in argv] or sorted((REPO / "examples").rglob("*.fed"))
    for spec in specs:
        total, readable, helpers = program_lines(spec)
        name = spec.relative_to(REPO) if spec.is_absolute() else spec
        print(f"{name}: {total} lines, readable part {readable}, helpers {sum(helpers.values())} "
              f"(+{total - readable - sum(helpers.values())} banner, imports and entry point)")
        print("    " + ", ".join(f"{k} {v}" for k, v in helpers.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
