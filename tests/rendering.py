"""Rendering for the template tests, in one place: the supported combinations of answers (and
the unsupported ones the pre-gen hook must refuse), one `Rendered`, and the session-scoped
fixtures through which every test module shares each combination's render and install.

Each combination is rendered once per run, through the real CLI, into a tree that stays as
cookiecutter wrote it (tests that read files see nothing a command added). It is installed at
most once per run, the first time a test asks for it, into a copy of its own where the
generated project's commands run (`make install`, `lint`, `test`, `run`, `serve`).

Registered as a plugin by conftest.py.
"""

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools.locks import LOCKED_ON_FIRST_INSTALL
from tools.processes import clean_env, free_port, run, start, stop
from tools.template import DECLARED, check_answer_keys, run_cookiecutter

# --- the combinations -----------------------------------------------------------------------

# How each choice names itself in a test id: `sentry-yes-py3.11`. Every choice option must be
# here, so a new option shows up in every id.
ID_PARTS = {"include_sentry": "sentry-{}", "python_version": "py{}"}
CHOICES = [k for k, v in DECLARED.items() if isinstance(v, list) and not k.startswith("_")]
assert sorted(ID_PARTS) == sorted(CHOICES), "name every choice option in ID_PARTS"


@dataclass(frozen=True)
class Combination:
    """One full set of choice answers (and, where `label` says so, free-text ones too)."""

    answers: dict[str, str]
    label: str = ""  # what the free-text answers are about, for the id

    def __post_init__(self) -> None:
        check_answer_keys(self.answers)
        missing = set(CHOICES) - set(self.answers)
        assert not missing, f"a combination sets every choice; missing {sorted(missing)}"
        assert bool(self.label) == bool(set(self.answers) - set(CHOICES)), (
            "a combination with free-text answers is labelled, and only such a one"
        )

    @property
    def id(self) -> str:
        parts = [ID_PARTS[name].format(self.answers[name]) for name in ID_PARTS]
        return "-".join([*parts, self.label] if self.label else parts)

    @property
    def unlisted(self) -> tuple[str, str]:
        """The one choice answer that is not among cookiecutter.json's options."""
        (found,) = [(k, v) for k in CHOICES if (v := self.answers[k]) not in DECLARED[k]]
        return found


# Supported: every one is rendered, linted and (where this machine has its Python) installed,
# linted and tested by its own suite. Both Sentry answers, every Python floor, and awkward
# free text (non-ASCII, quotes and backslashes must survive every file).
SUPPORTED = [
    Combination({"include_sentry": "no", "python_version": "3.11"}),
    Combination({"include_sentry": "yes", "python_version": "3.11"}),
    Combination({"include_sentry": "no", "python_version": "3.13"}),
    Combination({"include_sentry": "yes", "python_version": "3.12"}),
    Combination({"include_sentry": "yes", "python_version": "3.14"}),
    Combination(
        {
            "project_name": 'Ünïcode "Café" Опс 🚀',
            "project_slug": "cafe_ops",
            "description": 'Says "hi", it\'s \\ fine — naïvely 🚀.',
            "author_name": "Zoë O'Brien",
            "include_sentry": "no",
            "python_version": "3.11",
        },
        label="awkward-text",
    ),
]
# Unsupported: a choice answer that is not one of the options. The CLI refuses it itself; the
# Python API (replay files, user configs) does not, and the pre-gen hook must.
UNSUPPORTED = [
    Combination({"include_sentry": "no", "python_version": "2.7"}),
    Combination({"include_sentry": "maybe", "python_version": "3.11"}),
]
assert len({c.id for c in SUPPORTED + UNSUPPORTED}) == len(SUPPORTED + UNSUPPORTED)


def supported(combination_id: str) -> Combination:
    (found,) = [c for c in SUPPORTED if c.id == combination_id]
    return found


DEFAULT = supported("sentry-no-py3.11")  # the answers `cookiecutter --no-input` gives
SENTRY = supported("sentry-yes-py3.11")


# --- a rendered project ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    path: Path
    combination: Combination
    python: str | None = None  # the interpreter it was installed with, once installed

    @property
    def answers(self) -> dict[str, str]:
        return self.combination.answers

    @property
    def sentry(self) -> bool:
        return self.answers["include_sentry"] == "yes"

    def read(self, relative: str | Path) -> str:
        return (self.path / relative).read_text(encoding="utf-8")


SKIPPED_PARTS = {".venv", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__"}


def require_lock(rendered: Rendered) -> None:
    """Skip a check that reads uv.lock on a Python floor the template holds no lock for
    (tools/locks.py, LOCKED_ON_FIRST_INSTALL): such a render has none until its first install."""
    if rendered.answers["python_version"] in LOCKED_ON_FIRST_INSTALL:
        assert not (rendered.path / "uv.lock").exists()
        pytest.skip("no committed lock for this Python floor: its first install locks it")


def generated_files(project: Path) -> Iterator[Path]:
    for path in sorted(project.rglob("*")):
        if path.is_file() and not SKIPPED_PARTS.intersection(path.relative_to(project).parts):
            yield path


def python_for(version: str) -> str | None:
    """An interpreter able to run a project whose floor is `version`, if this machine has one.
    TEMPLATE_TEST_PYTHON names the only one to try (each leg of the template's GitHub workflow
    sets it to its own Python)."""
    wanted = tuple(int(part) for part in version.split("."))
    only = os.environ.get("TEMPLATE_TEST_PYTHON")
    for candidate in [only] if only else [f"python{version}", "python3"]:
        path = shutil.which(candidate, path=clean_env()["PATH"])
        if path is None:
            continue
        probe = run([path, "-c", "import sys; print(*sys.version_info[:2])"], check=False)
        if probe.returncode == 0 and tuple(map(int, probe.stdout.split())) >= wanted:
            return path
    return None


def copy_of(rendered: Rendered, destination: Path) -> Path:
    """The rendered tree, as cookiecutter wrote it, copied to `destination` (which ends in the
    project's own directory name, as a user's copy would)."""
    shutil.copytree(rendered.path, destination)
    return destination


@dataclass
class Renders:
    """Each combination's render and install, made on first use and kept for the session."""

    root: Path
    rendered: dict[str, Rendered] = field(default_factory=dict)
    installed: dict[str, Rendered] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)

    def render(self, combination: Combination) -> Rendered:
        if combination.id not in self.rendered:
            output = self.root / "rendered" / combination.id
            output.mkdir(parents=True, exist_ok=True)
            result = run_cookiecutter(output, answers=combination.answers)
            assert result.returncode == 0, result.stdout + result.stderr
            (project,) = output.iterdir()
            self.rendered[combination.id] = Rendered(project, combination)
        return self.rendered[combination.id]

    def install(self, combination: Combination) -> Rendered:
        """A copy of the render with `make install` done, or a skip where this machine has no
        Python the combination can run on."""
        python = python_for(combination.answers["python_version"])
        if python is None:
            pytest.skip(f"no Python {combination.answers['python_version']}+ on this machine")
        if combination.id in self.failed:
            pytest.fail(f"{combination.id} did not install (shown once, above)")
        if combination.id not in self.installed:
            self.failed.add(combination.id)  # until the install below has succeeded
            rendered = self.render(combination)
            project = copy_of(
                rendered, self.root / "installed" / combination.id / rendered.path.name
            )
            run(["make", "install", f"PYTHON={python}"], cwd=project, timeout=1200)
            self.installed[combination.id] = Rendered(project, combination, python)
            self.failed.discard(combination.id)
        return self.installed[combination.id]


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> Renders:
    return Renders(tmp_path_factory.mktemp("renders"))


@pytest.fixture(scope="session", params=SUPPORTED, ids=lambda c: c.id)
def rendered(request: pytest.FixtureRequest, renders: Renders) -> Rendered:
    """Every supported combination, as cookiecutter rendered it. Read it; do not write to it."""
    combination: Combination = request.param
    return renders.render(combination)


@pytest.fixture(scope="session")
def installed(rendered: Rendered, renders: Renders) -> Rendered:
    """The same combination, installed (`make install`), in a copy where commands may run."""
    return renders.install(rendered.combination)


# --- running a generated project's server ---------------------------------------------------


def wait_for_health(port: int, server: subprocess.Popen[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited early:\n{stop(server)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                status: int = response.status
                return status
        except OSError:
            time.sleep(0.5)
    raise AssertionError("GET /health did not answer in time")


@contextmanager
def make_server(
    project: Path, target: str, *args: str, **env: str
) -> Iterator[tuple[int, list[str]]]:
    """`make run` or `make serve` on a free port until /health answers 200; yields the port
    and, once the server has stopped, its output lines. A SQLite database it leaves in the
    project is removed afterwards, so the next test starts from none."""
    database = project / "app.db"
    database.unlink(missing_ok=True)
    port = free_port()
    server = start(["make", target, f"PORT={port}", *args], cwd=project, env=clean_env(**env))
    output: list[str] = []
    try:
        assert wait_for_health(port, server, timeout=300) == 200
        yield port, output
    finally:
        output.extend(stop(server).splitlines())
        database.unlink(missing_ok=True)
