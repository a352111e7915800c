"""Render every supported combination of answers and hold each result to the same bar:
no template residue, lint-clean, and (where this machine has the Python it targets) its own
`make lint` and `make test` passing, on SQLite and on PostgreSQL when TEST_DATABASE_URL is set."""

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN_DIR, check_answer_keys, clean_env, generated_files, python_for

# The combinations we support, named after the options they set (as cookiecutter-django does).
SUPPORTED: list[dict[str, str]] = [
    {"include_sentry": "no", "python_version": "3.11"},
    {"include_sentry": "yes", "python_version": "3.11"},
    {"include_sentry": "no", "python_version": "3.13"},
    {"include_sentry": "yes", "python_version": "3.12"},
    {  # awkward free text: non-ASCII, quotes and backslashes must survive every file
        "project_name": 'Ünïcode "Café" Опс 🚀',
        "project_slug": "cafe_ops",
        "description": 'Says "hi", it\'s \\ fine — naïvely 🚀.',
        "author_name": "Zoë O'Brien",
        "include_sentry": "no",
        "python_version": "3.11",
    },
]
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")


def _variant_id(answers: dict[str, str]) -> str:
    return "-".join(f"{key}={value}" for key, value in answers.items() if key != "description")


@dataclass(frozen=True)
class Rendered:
    path: Path
    answers: dict[str, str]


@pytest.fixture(scope="session", params=SUPPORTED, ids=_variant_id)
def rendered(request: pytest.FixtureRequest, cookies_session: Any) -> Rendered:
    answers = check_answer_keys(request.param)
    result = cookies_session.bake(extra_context=answers)
    assert result.exit_code == 0, result.exception
    return Rendered(path=result.project_path, answers=answers)


@pytest.fixture(scope="session")
def project(rendered: Rendered) -> Path:
    return rendered.path


@pytest.fixture(scope="session")
def answers_of(rendered: Rendered) -> dict[str, str]:
    return rendered.answers


def _run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed in {cwd}\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    return result


def test_no_template_residue(project: Path) -> None:
    for path in generated_files(project):
        relative = path.relative_to(project).as_posix()
        assert "{{" not in relative
        assert "cookiecutter" not in relative
        text = path.read_text(encoding="utf-8")
        for marker in ("{{", "{%", "cookiecutter"):
            assert marker not in text, f"{marker!r} left in {relative}"


def test_ruff_check_and_format_are_clean(project: Path) -> None:
    _run([str(BIN_DIR / "ruff"), "check", "--no-cache", "."], cwd=project)
    _run([str(BIN_DIR / "ruff"), "format", "--no-cache", "--check", "."], cwd=project)


def test_no_trace_of_sentry_when_not_included(project: Path, answers_of: dict[str, str]) -> None:
    if answers_of["include_sentry"] != "no":
        pytest.skip("Sentry is included in this variant")
    for path in generated_files(project):
        assert "sentry" not in path.relative_to(project).as_posix().lower()
        assert "sentry" not in path.read_text(encoding="utf-8").lower(), path


def _python_or_skip(answers: dict[str, str]) -> str:
    python = python_for(answers["python_version"])
    if python is None:
        pytest.skip(f"no Python {answers['python_version']}+ on this machine to run it")
    return python


@pytest.mark.slow
def test_generated_lint_passes(project: Path, answers_of: dict[str, str]) -> None:
    python = _python_or_skip(answers_of)
    _run(["make", "lint", f"PYTHON={python}"], cwd=project)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_generated_test_suite_passes(
    project: Path, answers_of: dict[str, str], backend: str
) -> None:
    python = _python_or_skip(answers_of)
    env = {"TEST_DATABASE_URL": TEST_DATABASE_URL if backend == "postgresql" else ""}
    if backend == "postgresql" and not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    result = _run(["make", "test", f"PYTHON={python}"], cwd=project, **env)
    assert f"database backend: {backend}" in result.stdout
    summary = re.search(r"^=+ (?P<counts>.*) in [\d.]+s", result.stdout, re.MULTILINE)
    assert summary is not None, result.stdout[-2000:]
    assert re.search(r"\d+ passed", summary["counts"]), summary["counts"]
    assert "failed" not in summary["counts"]
    assert "error" not in summary["counts"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
def test_make_run_serves_health_from_a_copied_project(tmp_path: Path, cookies: Any) -> None:
    """What a user does first: copy the project anywhere, `make run`, and it answers."""
    result = cookies.bake(extra_context=check_answer_keys({}))
    assert result.exit_code == 0, result.exception
    copy = tmp_path / "elsewhere" / "my_service"
    shutil.copytree(result.project_path, copy)
    port = _free_port()
    server = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=copy,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        status = _wait_for_health(port, server, timeout=300)
        assert status == 200
        assert (copy / "app.db").is_file(), "make run should have migrated the SQLite database"
    finally:
        os.killpg(server.pid, 15)
        output, _ = server.communicate(timeout=30)
    assert "Application startup complete" in output


def _wait_for_health(port: int, server: subprocess.Popen[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"make run exited early:\n{server.communicate()[0]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                status: int = response.status
                return status
        except OSError:
            time.sleep(0.5)
    raise AssertionError("GET /health did not answer in time")
