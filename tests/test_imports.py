"""Import structure: no two modules of a layer import each other (at any depth, lazy imports
included), so each can be read, loaded and replaced on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import loraport

SRC = Path(loraport.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every loraport module `path` imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("loraport")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("loraport"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@pytest.mark.parametrize("scope", ["loraport.models.", "loraport.api"])
def test_no_mutual_imports(scope):
    """models.gguf used to import models.resolve, which imported it back; the API is imported by
    nothing it imports. Package __init__ files (re-exports) are left out."""
    graph = {module_name(p): imports_of(p) for p in sorted(SRC.rglob("*.py")) if p.name != "__init__.py"}
    pairs = sorted(
        (a, b) for a in graph if a.startswith(scope) for b in graph[a] if b != a and a in graph.get(b, ())
    )
    assert not pairs, f"modules that import each other: {pairs}"


def test_gguf_registers_itself_as_a_file_format():
    from loraport.models.resolve import FILE_FORMATS

    assert "gguf" in FILE_FORMATS
    assert FILE_FORMATS.get("gguf").matches(Path("model.GGUF"))
