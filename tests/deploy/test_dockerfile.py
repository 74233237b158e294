"""The Dockerfile, checked as far as a machine without a Docker engine can: every path it
copies exists and survives .dockerignore, its stages and commands point at real things.

    .venv/bin/python -m pytest tests/deploy/test_dockerfile.py -q
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    """(stage, KEYWORD, arguments) per instruction, continuation lines joined, comments out."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out, stage = [], ""
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            parts = args.split()
            stage = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else parts[0]
        out.append(Instruction(stage, keyword.upper(), args.strip()))
    return out


def copies() -> list[tuple[Instruction, list[str], str, str | None]]:
    """(instruction, sources, destination, --from stage) for every COPY."""
    found = []
    for ins in instructions():
        if ins.keyword != "COPY":
            continue
        words = shlex.split(ins.args)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        origin = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        found.append((ins, paths[:-1], paths[-1], origin))
    return found


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (its patterns, simplified:
    Go filepath.Match per pattern plus `**/`, which is all this repository's file uses)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path.rstrip("/")).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(Path(prefix).name, bare)
            ):
                return True
    return False


def test_every_path_the_dockerfile_copies_from_the_context_exists_and_is_not_ignored():
    checked = 0
    for ins, sources, _, origin in copies():
        if origin is not None:
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path ({ins.stage})"
            assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
            checked += 1
    assert checked >= 5


def test_copies_from_another_stage_name_a_stage_that_builds_that_path():
    stages = {
        ins.args.split()[2]
        for ins in instructions()
        if ins.keyword == "FROM" and " AS " in ins.args.upper()
    }
    for _, sources, _, origin in copies():
        if origin is None:
            continue
        assert origin in stages
        # The node stage builds the web UI into /frontend/dist (vite.config.ts: outDir "dist").
        assert sources == ["/frontend/dist/"]
    vite = (ROOT / "frontend" / "vite.config.ts").read_text()
    assert 'outDir: "dist"' in vite


def test_the_frontend_stage_runs_scripts_that_exist():
    scripts = json.loads((ROOT / "frontend" / "package.json").read_text())["scripts"]
    runs = [ins.args for ins in instructions() if ins.keyword == "RUN" and ins.stage == "frontend"]
    assert "npm ci --no-audit --no-fund" in runs
    assert "npm run build" in runs and "build" in scripts
    node = next(i.args for i in instructions() if i.keyword == "FROM" and i.stage == "frontend")
    major = int(re.search(r"node:(\d+)", node).group(1))
    engines = json.loads((ROOT / "frontend" / "package.json").read_text())["engines"]["node"]
    assert major >= int(re.search(r"(\d+)", engines).group(1))


def test_the_python_stage_matches_the_project_s_python_and_extras():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    base = next(i.args for i in instructions() if i.keyword == "FROM" and "python:" in i.args)
    version = tuple(int(x) for x in re.search(r"python:(\d+)\.(\d+)", base).groups())
    minimum = tuple(
        int(x)
        for x in re.search(r">=(\d+)\.(\d+)", pyproject["project"]["requires-python"]).groups()
    )
    assert version >= minimum
    installs = " ".join(
        i.args for i in instructions() if i.keyword == "RUN" and "pip install" in i.args
    )
    extras = re.search(r'"\.\[([a-z0-9,]+)\]"', installs).group(1).split(",")
    assert set(extras) <= set(pyproject["project"]["optional-dependencies"])
    assert "s3" in extras and "cluster" in extras


def test_torch_comes_from_an_explicit_spec_and_index():
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
        for i in instructions()
        if i.keyword == "ARG"
    }
    makefile = (ROOT / "Makefile").read_text()
    assert f"TORCH_SPEC ?= {args['TORCH_SPEC']}" in makefile  # the same PyTorch as `make`
    assert args["TORCH_INDEX_URL"].startswith("https://download.pytorch.org/whl/")
    assert any('--index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"' in i.args for i in instructions())


@pytest.mark.parametrize("variable", ["LABELLOOP_DATA_DIR", "LABELLOOP_FRONTEND_DIST"])
def test_the_image_sets_only_settings_that_exist(variable):
    env = " ".join(i.args for i in instructions() if i.keyword == "ENV")
    assert f"{variable}=" in env
    assert f'"{variable}"' in (ROOT / "labeling" / "settings.py").read_text()


def test_the_default_command_serves_the_wsgi_application_as_a_non_root_user():
    keywords = [i.keyword for i in instructions()]
    assert "USER" in keywords and keywords.index("USER") < keywords.index("CMD")
    cmd = json.loads(next(i.args for i in instructions() if i.keyword == "CMD"))
    assert cmd[:2] == ["gunicorn", "labeling.wsgi"]
    assert (ROOT / "labeling" / "wsgi.py").exists()
