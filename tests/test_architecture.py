"""The rooms of ARCHITECTURE.md import only what they may (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "image2"

SHARED = {"image2", "image2._version", "image2.errors"}
MAY_IMPORT = {
    "core": {"core"},
    "io": {"core", "io"},
    "run": {"core", "io", "run"},
    "watch": {"core", "io", "run", "watch"},
    "synthetic": {"core", "io", "synthetic"},
}
"""The image2 rooms each room may import (the cli may import them all)."""

FORBIDDEN_IN_CORE = ("astropy.io", "click", "watchdog", "structlog", "jwst", "liger_iris_pipeline")
NEVER = ("jwst", "liger_iris_pipeline")


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth, as absolute names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def _modules(room: str) -> list[Path]:
    return sorted((PACKAGE / room).rglob("*.py"))


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_each_room_imports_only_the_rooms_it_may(room: str):
    allowed = MAY_IMPORT[room]
    wrong = []
    for path in _modules(room):
        for name in _imports(path):
            if name.startswith("image2") and name not in SHARED and name.split(".")[1] not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_core_reads_no_files_and_talks_to_no_user():
    wrong = [f"{path.relative_to(PACKAGE)} imports {name}" for path in _modules("core") for name in _imports(path)
             if name.startswith(FORBIDDEN_IN_CORE)]
    assert not wrong, "\n".join(wrong)


def test_the_reference_pipelines_are_never_imported():
    wrong = [f"{path.relative_to(PACKAGE)} imports {name}" for path in PACKAGE.rglob("*.py")
             for name in _imports(path) if name.split(".")[0] in NEVER]
    assert not wrong, "\n".join(wrong)
