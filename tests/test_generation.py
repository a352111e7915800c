"""Render every supported combination of answers and hold each result to the same bar:
no template residue, lint-clean, and (where this machine has the Python it targets) its own
`make lint` and `make test` passing, on SQLite and on PostgreSQL when TEST_DATABASE_URL is set."""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN_DIR, clean_env, generated_files, python_for

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
    answers = request.param
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


# GitHub's own expressions, which the workflows are meant to keep (a `${{ cookiecutter.x }}`
# left behind is still caught: "cookiecutter" is looked for in the text as written).
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def test_no_template_residue(project: Path) -> None:
    for path in generated_files(project):
        relative = path.relative_to(project).as_posix()
        assert "{{" not in relative
        assert "cookiecutter" not in relative
        text = path.read_text(encoding="utf-8")
        assert "cookiecutter" not in text, f"'cookiecutter' left in {relative}"
        if relative.startswith(".github/workflows/"):
            text = GITHUB_EXPRESSION.sub("", text)
        for marker in ("{{", "{%"):
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


# The generated project's target: `make test` here runs theirs, `make test-long` their long one.
TARGET = os.environ.get("GENERATED_TEST_TARGET", "test")
assert TARGET in {"test", "test-long"}, f"GENERATED_TEST_TARGET={TARGET!r}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_generated_test_suite_passes(
    project: Path, answers_of: dict[str, str], backend: str
) -> None:
    python = _python_or_skip(answers_of)
    env = {"TEST_DATABASE_URL": TEST_DATABASE_URL if backend == "postgresql" else ""}
    if backend == "postgresql" and not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    # -rA lists every test that passed, so the Sentry suite's presence can be checked.
    result = _run(["make", TARGET, f"PYTHON={python}"], cwd=project, PYTEST_ADDOPTS="-rA", **env)
    assert f"database backend: {backend}" in result.stdout
    profile = "long" if TARGET == "test-long" else "default"
    assert f"hypothesis profile: {profile}" in result.stdout
    sentry_tests = re.findall(r"^(\w+) tests/sentry/test_\w+\.py::", result.stdout, re.MULTILINE)
    if answers_of["include_sentry"] == "yes":
        assert len(sentry_tests) > 50, "the Sentry tests did not run"
        assert set(sentry_tests) == {"PASSED"}, "a Sentry test was skipped or failed"
    else:
        assert sentry_tests == []
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


@contextmanager
def _make_run(project: Path, **env: str) -> Iterator[tuple[int, list[str]]]:
    """`make run` on a free port until /health answers 200; yields the port and, once the
    server has stopped, its output lines."""
    port = _free_port()
    server = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=project,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        assert _wait_for_health(port, server, timeout=300) == 200
        yield port, output
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output.extend(server.communicate(timeout=30)[0].splitlines())


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


@pytest.mark.slow
def test_make_run_serves_health_from_a_copied_project(tmp_path: Path, cookies: Any) -> None:
    """What a user does first: copy the project anywhere, `make run`, and it answers."""
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    copy = tmp_path / "elsewhere" / "my_service"
    shutil.copytree(result.project_path, copy)
    with _make_run(copy) as (_, output):
        assert (copy / "app.db").is_file(), "make run should have migrated the SQLite database"
    assert any("Application startup complete" in line for line in output)


def _call(port: int, path: str, body: bytes | None = None, **headers: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return {"status": error.code, **json.loads(error.read())}


class _Receiver:
    """The generated project's own loopback receiver, run as a user would run it."""

    def __init__(self, project: Path) -> None:
        self.process = subprocess.Popen(
            [
                str(project / ".venv" / "bin" / "python"),
                "-m",
                "tools.sentry_dev",
                str(_free_port()),
                "--json",
            ],
            cwd=project,
            env=clean_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        first = self.stdout.readline()
        assert first.startswith("listening; set SENTRY_DSN="), first
        self.dsn = first.strip().rpartition("=")[2]

    def next_event(self) -> dict[str, Any]:
        """The next error event, past transactions (sign-up and login are always traced)."""
        lines: list[str] = []
        for line in self.stdout:
            lines.append(line)
            if line.rstrip("\n") == "}":
                item = dict(json.loads("".join(lines)))
                lines = []
                if "exception" in item or "logentry" in item:
                    return item
        raise AssertionError("the receiver stopped before an event arrived")

    def stop(self) -> str:
        self.process.terminate()
        return self.process.communicate(timeout=30)[0]


@pytest.mark.slow
def test_make_run_of_a_yes_project_reports_an_error_to_the_receiver(cookies: Any) -> None:
    """The whole path, as a user would see it: `make run` with SENTRY_DSN at the receiver the
    project ships, a signed-in request that fails, and the scrubbed event that arrives."""
    result = cookies.bake(extra_context={"include_sentry": "yes"})
    assert result.exit_code == 0, result.exception
    project = result.project_path
    _run(["make", "install"], cwd=project)
    receiver = _Receiver(project)
    try:
        with _make_run(project, SENTRY_DSN=receiver.dsn) as (port, _):
            password = "correct horse battery staple"  # noqa: S105 - a test account
            signed_up = _call(
                port,
                "/api/v1/tenants",
                json.dumps(
                    {"tenant_name": "Acme", "email": "ada@example.com", "password": password}
                ).encode(),
                **{"Content-Type": "application/json"},
            )
            token = _call(
                port,
                "/api/v1/auth/token",
                f"username=ada%40example.com&password={password.replace(' ', '+')}".encode(),
            )["access_token"]
            # The items table disappears under the running app: the next query fails.
            with sqlite3.connect(project / "app.db") as database:
                database.execute("DROP TABLE items")
            failed = _call(port, "/api/v1/items?limit=5", Authorization=f"Bearer {token}")
            event = receiver.next_event()
    finally:
        received = receiver.stop()

    assert failed["status"] == 503
    assert event["exception"]["values"][-1]["type"] == "OperationalError"
    assert event["request"]["url"].endswith("/api/v1/items")
    assert event["request"]["query_string"] == "limit=5"
    assert event["user"] == {"id": signed_up["owner"]["id"]}
    assert event["tags"]["tenant_id"] == signed_up["tenant"]["id"]
    assert event["environment"] == "local"
    assert event["release"].startswith("acme_backend@0.1.0")
    for secret in (token, password, "ada@example.com", "127.0.0.1:" + str(port)):
        assert secret not in json.dumps(event) + received
