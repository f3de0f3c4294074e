"""Files small enough to read in one sitting (issue 12): no Python file over 400 lines and no function
over 60 lines, outside tests/ and the Alembic migrations.

A function's length runs from its ``def`` line to its last line (decorators not counted), nested
functions and methods included. Each failure lists every offender, longest first.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.sources import ROOT, source_files

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def long_files(root: Path = ROOT) -> list[tuple[str, int]]:
    """(file, lines) for each file over the limit, longest first."""
    sizes = [(str(p.relative_to(root)), len(p.read_text(encoding="utf-8").splitlines()))
             for p in source_files(root)]
    return sorted(((f, n) for f, n in sizes if n > MAX_FILE_LINES), key=lambda x: -x[1])


def long_functions(root: Path = ROOT) -> list[tuple[str, int]]:
    """("file:line name", lines) for each function over the limit, longest first."""
    found: list[tuple[str, int]] = []
    for path in source_files(root):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append((f"{path.relative_to(root)}:{node.lineno} {node.name}", lines))
    return sorted(found, key=lambda x: -x[1])


def _report(what: str, offenders: list[tuple[str, int]]) -> str:
    listing = "\n".join(f"  {n:5d}  {name}" for name, n in offenders)
    print(f"{what}:\n{listing}")
    return f"{len(offenders)} {what}:\n{listing}"


def test_the_rules_see_the_project() -> None:
    files = [str(p.relative_to(ROOT)) for p in source_files()]
    assert "controller/app.py" in files and "tts/vi/normalize.py" in files
    assert not any(f.startswith(("tests/", "controller/migrations/", ".venv/")) for f in files)


def test_no_file_over_400_lines() -> None:
    offenders = long_files()
    assert not offenders, _report(f"files over {MAX_FILE_LINES} lines", offenders)


def test_no_function_over_60_lines() -> None:
    offenders = long_functions()
    assert not offenders, _report(f"functions over {MAX_FUNCTION_LINES} lines", offenders)
