"""The shape of the code (DESIGN.md section 6, docs/architecture.md): the layer contracts hold,
modules and functions stay short, an import hidden in a function says why, cross-app
reactions go through the domain events and never through model signals.

    .venv/bin/python -m pytest tests/test_architecture.py -q
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from django.db.models import signals as model_signals

from labeling.core import events

ROOT = Path(__file__).resolve().parents[1]
PYTHON = [
    p
    for top in ("labeling", "training")
    for p in sorted((ROOT / top).rglob("*.py"))
    if "migrations" not in p.parts
]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_import_layer_contracts_hold():
    """make lint runs them too; here they also guard a run of the suite alone."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed (it is in the dev extras: make install)"
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_module_is_over_400_lines():
    long = {rel(p): n for p in PYTHON if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_is_over_80_lines():
    long = {}
    for path in PYTHON:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{rel(path)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def imports_inside_functions(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every import statement inside a function body."""
    source = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(source))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found.append((inner.lineno, source[inner.lineno - 1]))
    return found


def says_why(path: Path, lineno: int) -> bool:
    """A comment on the import's line or within the three lines above its block of imports."""
    lines = path.read_text().splitlines()
    i = lineno - 1
    while i > 0 and lines[i - 1].strip().startswith(("import ", "from ")):
        i -= 1
    return any("#" in line for line in lines[max(i - 3, 0) : lineno])


def test_every_import_inside_a_function_under_labeling_says_why():
    """Not to dodge an import cycle (the layers make those impossible): to keep torch out of
    the web process, to load models after the app registry, an optional dependency..."""
    silent = [
        f"{rel(path)}:{lineno}: {line.strip()}"
        for path in PYTHON
        if rel(path).startswith("labeling/")
        for lineno, line in imports_inside_functions(path)
        if not says_why(path, lineno)
    ]
    assert silent == []


def test_the_import_check_notices_a_silent_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    x = 1\n    import json\n\n\ndef g():\n    # why\n    import os\n"
    )
    found = imports_inside_functions(module)
    assert [says_why(module, n) for n, _ in found] == [False, True]


def receiver_modules(signal) -> set[str]:
    """The modules of a signal's live receivers (Django keeps (key, weakref, is_async))."""
    found = set()
    for entry in signal.receivers:
        ref = entry[1]
        fn = ref() if isinstance(ref, weakref.ReferenceType) else ref
        if fn is not None:
            found.add(fn.__module__)
    return found


def test_no_model_signal_has_a_receiver_of_ours():
    """Cross-app reactions are the explicit domain events, never post_save and friends."""
    ours = {
        f"{name}: {module}"
        for name in ("pre_save", "post_save", "pre_delete", "post_delete", "m2m_changed")
        for module in receiver_modules(getattr(model_signals, name))
        if module.startswith("labeling.")
    }
    assert ours == set()


@pytest.mark.parametrize(
    ("event", "receivers"),
    [
        ("images_added", {"labeling.learning.receivers"}),
        (
            "images_labeled",
            {
                "labeling.annotations.receivers",
                "labeling.learning.receivers",
                "labeling.webhooks.receivers",
            },
        ),
        (
            "project_settings_changed",
            {"labeling.annotations.receivers", "labeling.learning.receivers"},
        ),
        ("class_renamed", {"labeling.images.receivers", "labeling.annotations.receivers"}),
        ("project_deleted", {"labeling.images.receivers", "labeling.learning.receivers"}),
        ("run_finished", {"labeling.learning.receivers", "labeling.webhooks.receivers"}),
        ("version_activated", {"labeling.webhooks.receivers"}),
    ],
)
def test_each_event_reaches_the_receivers_docs_architecture_names(event, receivers):
    assert receiver_modules(getattr(events, event)) == receivers
    assert f"`{event}`" in (ROOT / "docs" / "architecture.md").read_text()
