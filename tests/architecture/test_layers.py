"""Imports run one way (issue 12, docs/architecture.md).

* every import-linter contract of pyproject.toml ([tool.importlinter]) is kept;
* scheduler/, devices/, tts/ and firmware_sim/ import nothing of controller/, not even inside a
  function or under TYPE_CHECKING;
* no function-local import of a controller module outside controller/cli/ (the CLI imports lazily
  so that `loaphuong normalize` starts fast; anywhere else a local import only hides a cycle);
* no import cycle between the project's modules (function-local imports included);
* no private name (``_x``) imported from another module: ask, don't reach.

The checks cover the packages under the contract; bench/ scripts are imported by nothing, so they
cannot close a cycle. Each failure lists every offender.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

from tests.architecture.sources import ROOT, Import, imports, of_package, source_files

PACKAGES = ("controller", "scheduler", "devices", "tts", "firmware_sim")
LOWER = ("scheduler", "devices", "tts", "firmware_sim")
LAZY_ALLOWED = "controller/cli/"


def _package_imports(packages: tuple[str, ...]) -> Iterator[Import]:
    for path in source_files():
        if path.relative_to(ROOT).parts[0] in packages:
            yield from imports(path)


def _listing(offenders: list[str]) -> str:
    text = "\n".join(f"  {o}" for o in offenders)
    print(text)
    return f"{len(offenders)} offenders:\n{text}"


def _lint_imports() -> str:
    found = Path(sys.executable).with_name("lint-imports")
    exe = str(found) if found.exists() else shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed (it is in the [test] extras: pip install -e '.[test]')")
    return exe


def test_every_import_linter_contract_is_kept() -> None:
    run = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    report = run.stdout + run.stderr
    print(report)
    assert "Contracts:" in report, report
    assert run.returncode == 0 and " 0 broken" in report, report


def test_lower_packages_import_nothing_of_controller() -> None:
    offenders = [f"{i.where} imports {i.module}" for i in _package_imports(LOWER)
                 if of_package(i.module, "controller")]
    assert not offenders, _listing(offenders)


def test_no_function_local_import_of_controller_outside_the_cli() -> None:
    offenders = [f"{i.where} imports {i.module} inside a function" for i in _package_imports(PACKAGES)
                 if i.in_function and of_package(i.module, "controller")
                 and not i.where.startswith(LAZY_ALLOWED)]
    assert not offenders, _listing(offenders)


def test_no_private_name_imported_from_another_module() -> None:
    offenders = []
    for path in source_files():
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in PACKAGES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                offenders += [f"{rel}:{node.lineno} from {node.module} import {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders, _listing(offenders)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_import_cycle() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    offenders = [" -> ".join(group) for group in _cycles(graph)]
    assert not offenders, _listing(offenders)
