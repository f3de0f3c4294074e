"""The project's own Python files as the architecture tests see them (not tests/, not the migrations)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = ("tests", "migrations", "__pycache__", "build", "dist", "data")


def source_files(root: Path = ROOT) -> Iterator[Path]:
    """Every .py file of the project outside tests/, the migrations and hidden or build folders."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p.endswith(".egg-info") or p in SKIPPED for p in parts[:-1]):
            continue
        yield path


def module_name(path: Path, root: Path = ROOT) -> str:
    """controller/fleet/presence.py → controller.fleet.presence (a package is its __init__)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@dataclass(frozen=True)
class Import:
    """One import statement: where it is, what it imports, and whether it sits inside a function."""

    where: str  # "file:line"
    module: str  # absolute module name
    in_function: bool


def imports(path: Path, root: Path = ROOT) -> Iterator[Import]:
    """Every import in ``path`` (module level, in functions, under TYPE_CHECKING), relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    rel = path.relative_to(root)

    def visit(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(f"{rel}:{child.lineno}", alias.name, in_function)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join([*package[: len(package) - child.level + 1], *([base] if base else [])])
                yield Import(f"{rel}:{child.lineno}", base, in_function)
            yield from visit(child, inside)

    yield from visit(tree, False)


def of_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")
