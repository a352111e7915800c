import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
DECLARED: dict[str, Any] = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
BIN_DIR = Path(sys.executable).parent


def check_answer_keys(answers: dict[str, Any]) -> dict[str, Any]:
    """cookiecutter silently drops extra_context keys it does not declare, so a typo would
    render the defaults and pass. Every answer a test gives goes through here first."""
    unknown = sorted(set(answers) - {k for k in DECLARED if not k.startswith("_")})
    if unknown:
        raise KeyError(f"not declared in cookiecutter.json: {', '.join(unknown)}")
    return answers


def run_cookiecutter(
    output_dir: Path,
    *args: str,
    answers: dict[str, str] | None = None,
    template: str = str(TEMPLATE_DIR),
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a user runs it, with answers given on the command line."""
    pairs = [f"{k}={v}" for k, v in check_answer_keys(answers or {}).items()]
    return subprocess.run(
        [
            str(BIN_DIR / "cookiecutter"),
            "--no-input",
            "--output-dir",
            str(output_dir),
            *args,
            template,
            *pairs,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def generated_files(project: Path) -> Iterator[Path]:
    skip = {".venv", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__"}
    for path in sorted(project.rglob("*")):
        if path.is_file() and not skip.intersection(path.relative_to(project).parts):
            yield path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a generated project's make: no venv of ours leaking into it."""
    # The outer `make test` exports MAKELEVEL and MAKEFLAGS; a generated project's make must
    # run as a user's would, at top level.
    inherited = {"VIRTUAL_ENV", "PYTHONPATH", "MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"}
    env = {k: v for k, v in os.environ.items() if k not in inherited}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != BIN_DIR
    )
    env.update(extra)
    return env


def python_for(version: str) -> str | None:
    """An interpreter able to run a project whose floor is `version`, if this machine has one."""
    wanted = tuple(int(part) for part in version.split("."))
    for candidate in (f"python{version}", "python3"):
        path = shutil.which(candidate, path=clean_env()["PATH"])
        if path is None:
            continue
        probe = subprocess.run(
            [path, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and tuple(map(int, probe.stdout.split())) >= wanted:
            return path
    return None


class CheckedCookies:
    """pytest-cookies' `cookies`, with every bake's extra_context checked by
    check_answer_keys: no test can render the defaults by misspelling an answer."""

    def __init__(self, cookies: Any) -> None:
        self._cookies = cookies

    def bake(self, extra_context: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self._cookies.bake(extra_context=check_answer_keys(extra_context or {}), **kwargs)


@pytest.fixture
def cookies(cookies: Any) -> CheckedCookies:
    return CheckedCookies(cookies)


@pytest.fixture(scope="session")
def cookies_session(cookies_session: Any) -> CheckedCookies:
    return CheckedCookies(cookies_session)


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory
