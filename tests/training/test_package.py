"""The shape of the `training` package: short explicit files (DESIGN.md, section 6)."""

from __future__ import annotations

import ast
from pathlib import Path

import training

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def test_no_training_module_is_over_400_lines_nor_any_function_over_80() -> None:
    too_long = []
    for path in sorted(Path(training.__file__).parent.rglob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.name}::{node.name}: {lines} lines")
    assert too_long == []
