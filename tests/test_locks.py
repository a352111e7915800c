"""The generated project's uv.lock: one per variant in the template (`make locks`,
tools/locks.py), each still matching its pyproject.toml, and the post-gen hook keeping the
variant's own, named for the project, so that `uv sync --locked` accepts it."""

import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.rendering import Rendered, require_lock
from tools import locks
from tools.processes import BIN_DIR, clean_env, run
from tools.template import DECLARED, TEMPLATE_DIR, hook_answers, render_hook, run_cookiecutter


def _post_gen_hook() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "post_gen_project"}
    code = render_hook("post_gen_project", hook_answers())
    exec(compile(code, "post_gen_project.py", "exec"), namespace)  # noqa: S102 - our own hook
    return namespace


def _uv_lock_check(project: Path, python_version: str) -> None:
    """`uv lock --check`, offline: fails when uv.lock does not match pyproject.toml."""
    python = locks.interpreter(python_version)
    if python is None:
        pytest.skip(f"no Python {python_version} on this machine")
    command = [str(BIN_DIR / "uv"), "lock", "--check", "--offline", "--python", str(python)]
    run(command, cwd=project, env=clean_env(UV_PYTHON_DOWNLOADS="never"), timeout=120)


def test_every_variant_has_its_lock_and_nothing_else_is_there() -> None:
    hook = _post_gen_hook()
    expected = set()
    for python_version, include_sentry in locks.variants():
        answers = {"python_version": python_version, "include_sentry": include_sentry}
        assert hook["lock_name"](answers) == locks.lock_name(python_version, include_sentry)
        expected.add(locks.lock_name(python_version, include_sentry))
    assert {path.name for path in locks.LOCKS.iterdir()} == expected
    locked_floors = set(DECLARED["python_version"]) - locks.LOCKED_ON_FIRST_INSTALL
    assert len(expected) == len(locked_floors) * len(DECLARED["include_sentry"])
    assert set(DECLARED["python_version"]) >= locks.LOCKED_ON_FIRST_INSTALL  # no stale entry


@pytest.mark.parametrize(
    "version",
    ["0.1.0", "1", "v1.0", "1.0.0-RC1", "1.0a", "1.0-beta.2", "1.0c3", "1.0.post", "1.0-3",
     "1.0rev4", "1.0.dev", "1.0_DEV7", "2!1.0", "0!1.0", "01.002", "1.0+Local_01.AB-3",
     "1.0PREVIEW5.post1.dev2"],
)  # fmt: skip
def test_the_hook_writes_the_version_as_uv_does(version: str) -> None:
    hook = _post_gen_hook()
    assert hook["normalized_version"](version) == str(Version(version))


@pytest.mark.parametrize("slug", ["acme_backend", "Acme_Backend", "a__b_c9", "x"])
def test_the_hook_writes_the_name_as_uv_does(slug: str) -> None:
    assert _post_gen_hook()["normalized_name"](slug) == canonicalize_name(slug)


def test_the_rendered_lock_matches_its_pyproject(rendered: Rendered) -> None:
    _uv_lock_check(rendered.path, rendered.answers["python_version"])


def test_an_odd_name_and_version_still_match_the_lock(tmp_path: Path) -> None:
    answers = {"project_slug": "Odd__Name2", "version": "V1.0-RC01.POST2+Loc_01"}
    result = run_cookiecutter(tmp_path, answers=answers)
    assert result.returncode == 0, result.stderr
    _uv_lock_check(tmp_path / "Odd__Name2", "3.11")


def test_every_variants_lock_is_fresh() -> None:
    """What `make locks LOCK_ARGS=--check` does: each variant rendered, its lock checked."""
    for python_version, _ in locks.variants():
        if locks.interpreter(python_version) is None:
            pytest.skip(f"no Python {python_version} on this machine to check its locks")
    command = [str(BIN_DIR / "python"), "-m", "tools.locks", "--check"]
    result = run(command, cwd=TEMPLATE_DIR, timeout=600)
    assert result.stdout.count("up to date") == len(locks.variants())


def test_the_image_builds_with_the_locked_uv(rendered: Rendered) -> None:
    require_lock(rendered)
    # The Dockerfile pins uv by itself (it runs before the lock is read): the same version.
    lock = tomllib.loads(rendered.read("uv.lock"))
    [uv] = [package["version"] for package in lock["package"] if package["name"] == "uv"]
    assert f"ARG UV_VERSION={uv}\n" in rendered.read("Dockerfile")
