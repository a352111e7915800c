"""Render every supported combination of answers and hold each result to the same bar:
no template residue, lint-clean, and (where this machine has the Python it targets) its own
`make lint` and `make test` passing, on SQLite and on PostgreSQL when TEST_DATABASE_URL is set."""

import json
import os
import re
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.rendering import (
    DEFAULT,
    SENTRY,
    Rendered,
    Renders,
    copy_of,
    generated_files,
    make_server,
)
from tools.processes import BIN_DIR, clean_env, free_port, run, start, stop

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")


# GitHub's own expressions, which the workflows are meant to keep (a `${{ cookiecutter.x }}`
# left behind is still caught: "cookiecutter" is looked for in the text as written).
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def test_no_template_residue(rendered: Rendered) -> None:
    project = rendered.path
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


# What a newcomer reads first stays short; the Sentry guide is docs/sentry.md.
README_LINES = 250
APP_MODULE_LINES = 450


def test_the_readme_and_every_app_module_stay_short(rendered: Rendered) -> None:
    readme = (rendered.path / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(readme) < README_LINES
    for module in (rendered.path / "app").rglob("*.py"):
        lines = len(module.read_text(encoding="utf-8").splitlines())
        assert lines <= APP_MODULE_LINES, f"{module.relative_to(rendered.path)}: {lines} lines"


def test_ruff_check_and_format_are_clean(rendered: Rendered) -> None:
    run([str(BIN_DIR / "ruff"), "check", "--no-cache", "."], cwd=rendered.path)
    run([str(BIN_DIR / "ruff"), "format", "--no-cache", "--check", "."], cwd=rendered.path)


def test_no_trace_of_sentry_when_not_included(rendered: Rendered) -> None:
    if rendered.sentry:
        pytest.skip("Sentry is included in this combination")
    for path in generated_files(rendered.path):
        assert "sentry" not in path.relative_to(rendered.path).as_posix().lower()
        assert "sentry" not in path.read_text(encoding="utf-8").lower(), path


@pytest.mark.slow
def test_generated_lint_passes(installed: Rendered) -> None:
    run(["make", "lint", f"PYTHON={installed.python}"], cwd=installed.path, timeout=1200)


# The generated project's target: `make test` here runs theirs, `make test-long` their long one.
TARGET = os.environ.get("GENERATED_TEST_TARGET", "test")
assert TARGET in {"test", "test-long"}, f"GENERATED_TEST_TARGET={TARGET!r}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_generated_test_suite_passes(installed: Rendered, backend: str) -> None:
    if backend == "postgresql" and not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    env = clean_env(TEST_DATABASE_URL=TEST_DATABASE_URL if backend == "postgresql" else "")
    # -rA lists every test that passed, so the Sentry suite's presence can be checked.
    env["PYTEST_ADDOPTS"] = "-rA"
    command = ["make", TARGET, f"PYTHON={installed.python}"]
    result = run(command, cwd=installed.path, env=env, timeout=1200, check=False)
    assert result.returncode == 0, _why_it_failed(result.stdout) + result.stderr[-4000:]
    assert f"database backend: {backend}" in result.stdout
    profile = "long" if TARGET == "test-long" else "default"
    assert f"hypothesis profile: {profile}" in result.stdout
    sentry_tests = re.findall(r"^(\w+) tests/sentry/test_\w+\.py::", result.stdout, re.MULTILINE)
    if installed.sentry:
        assert len(sentry_tests) > 50, "the Sentry tests did not run"
        assert set(sentry_tests) == {"PASSED"}, "a Sentry test was skipped or failed"
    else:
        assert sentry_tests == []
    summary = re.search(r"^=+ (?P<counts>.*) in [\d.]+s", result.stdout, re.MULTILINE)
    assert summary is not None, result.stdout[-2000:]
    assert re.search(r"\d+ passed", summary["counts"]), summary["counts"]
    assert "failed" not in summary["counts"]
    assert "error" not in summary["counts"]


def _why_it_failed(output: str) -> str:
    """The failures and errors pytest reported, with its closing line: with -rA the end of the
    output is the list of every test that passed, which says nothing about what failed."""
    start = re.search(r"^=+ (FAILURES|ERRORS) =+$", output, re.MULTILINE)
    end = re.search(r"^=+ short test summary info =+$", output, re.MULTILINE)
    details = output[start.start() : end.start() if end else None] if start else output[-6000:]
    return f"{details[:12000]}\n{output.strip().splitlines()[-1] if output.strip() else ''}\n"


@pytest.mark.slow
def test_make_run_serves_health_from_a_copied_project(tmp_path: Path, renders: Renders) -> None:
    """What a user does first: copy the project anywhere, `make run`, and it answers. The copy
    is of the render, before any install: `make run` installs it where it now is."""
    copy = copy_of(renders.render(DEFAULT), tmp_path / "elsewhere" / "my_service")
    with make_server(copy, "run") as (_, output):
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
        python = str(project / ".venv" / "bin" / "python")
        command = [python, "-m", "tools.sentry_dev", str(free_port()), "--json"]
        self.process = start(command, cwd=project)
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        first = self.stdout.readline()
        if not first.startswith("listening; set SENTRY_DSN="):
            raise AssertionError(f"the receiver did not start: {first}{stop(self.process)}")
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
        return stop(self.process)


@pytest.mark.slow
def test_make_run_of_a_yes_project_reports_an_error_to_the_receiver(renders: Renders) -> None:
    """The whole path, as a user would see it: `make run` with SENTRY_DSN at the receiver the
    project ships, a signed-in request that fails, and the scrubbed event that arrives."""
    project = renders.install(SENTRY).path
    receiver = _Receiver(project)
    try:
        with make_server(project, "run", SENTRY_DSN=receiver.dsn) as (port, _):
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
