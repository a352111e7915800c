"""The generated Sentry suite on sentry-sdk 3: a "yes" project installed from its lock (2.x),
then the 3.x pre-release installed over it, and the same tests, unchanged, run against it.

The version proven is SENTRY_SDK_3; the template README names it (held below)."""

import os
import re
from pathlib import Path

import pytest

from tests.rendering import SENTRY, Renders, copy_of, make_server
from tools.processes import clean_env, run

SENTRY_SDK_3 = "3.0.0b2"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


# Older than the oldest the app supports (2.75): what a hand-edited lock could bring.
UNSUPPORTED_SDK = "2.44.0"


def _installed_with(renders: Renders, directory: Path, version: str) -> Path:
    """A copy of the "yes" render, installed from its lock, then `version` of sentry-sdk over
    the locked one (`make` does not reinstall: its stamp is newer than the lock)."""
    rendered = renders.render(SENTRY)
    project = copy_of(rendered, directory / rendered.path.name)
    run(["make", "install"], cwd=project, timeout=1200)
    uv, python = project / ".venv/bin/uv", project / ".venv/bin/python"
    install = ["pip", "install", "--quiet", "--python", str(python), "--prerelease", "allow"]
    run([str(uv), *install, f"sentry-sdk[fastapi]=={version}"], cwd=project, timeout=600)
    return project


@pytest.fixture(scope="module")
def on_sdk3(renders: Renders, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _installed_with(renders, tmp_path_factory.mktemp("sdk3"), SENTRY_SDK_3)


def _python(project: Path, code: str) -> str:
    return run([str(project / ".venv/bin/python"), "-c", code], cwd=project).stdout.strip()


@pytest.mark.slow
def test_sdk3_replaced_the_locked_sdk(on_sdk3: Path) -> None:
    assert _python(on_sdk3, "import sentry_sdk; print(sentry_sdk.VERSION)") == SENTRY_SDK_3
    # The app takes the streaming branch, and modules 3.x removed are truly gone.
    generation = "from app import sentry_sdk_bridge as b; print(b.current().major)"
    assert _python(on_sdk3, generation) == "3"
    for removed in ("sentry_sdk.scrubber", "sentry_sdk.tracing"):
        probe = f"import importlib.util as u; print(u.find_spec({removed!r}) is None)"
        assert _python(on_sdk3, probe) == "True"


@pytest.mark.slow
def test_the_app_type_checks_against_sdk3(on_sdk3: Path) -> None:
    run([str(on_sdk3 / ".venv/bin/mypy"), "app", "tools"], cwd=on_sdk3, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_sentry_suite_passes_on_sdk3(on_sdk3: Path, backend: str) -> None:
    if backend == "postgresql" and not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    env = clean_env(TEST_DATABASE_URL=TEST_DATABASE_URL if backend == "postgresql" else "")
    command = [str(on_sdk3 / ".venv/bin/pytest"), "-rA", "-p", "no:cacheprovider"]
    result = run([*command, "tests/sentry"], cwd=on_sdk3, env=env, timeout=1200, check=False)
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-4000:]
    outcomes = re.findall(r"^(\w+) tests/sentry/test_\w+\.py::", result.stdout, re.MULTILINE)
    assert len(outcomes) > 50, "the Sentry tests did not run"
    assert set(outcomes) == {"PASSED"}, "a Sentry test was skipped or failed on sentry-sdk 3"
    assert f"database backend: {backend}" in result.stdout


def test_the_readme_names_the_sdk3_release_proven() -> None:
    readme = (TEMPLATE_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"sentry-sdk {SENTRY_SDK_3}" in readme


@pytest.mark.slow
def test_an_unsupported_sdk_leaves_sentry_off_naming_its_version(
    renders: Renders, tmp_path: Path
) -> None:
    project = _installed_with(renders, tmp_path, UNSUPPORTED_SDK)
    assert _python(project, "import sentry_sdk; print(sentry_sdk.VERSION)") == UNSUPPORTED_SDK
    with make_server(project, "run", SENTRY_DSN="http://key@127.0.0.1:9/1") as (_port, output):
        pass  # make_server has seen /health answer 200
    said = [line for line in output if "Sentry is" in line]
    reason = f"sentry-sdk {UNSUPPORTED_SDK} is not supported (this app supports 2.75 or later"
    assert len(said) == 1, output
    assert f"Sentry is off: {reason}" in said[0]
