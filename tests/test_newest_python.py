"""The Python 3.14 variant on a machine that may have no Python 3.14 (these have 3.11 only).
Like every variant it is rendered and ruff-checked with its own configuration (test_generation,
`target-version = "py314"`); here the project's own mypy checks it with `python_version = "3.14"`.
Its `make lint` and `make test` run where a 3.14 is installed: the template's GitHub workflow."""

import tomllib
from pathlib import Path

import pytest

from tests.rendering import SENTRY, Renders, copy_of, supported
from tools.processes import run

NEWEST = supported("sentry-yes-py3.14")


def test_the_newest_variant_targets_its_python(renders: Renders) -> None:
    pyproject = tomllib.loads(renders.render(NEWEST).read("pyproject.toml"))
    assert pyproject["project"]["requires-python"] == ">=3.14"
    assert pyproject["tool"]["ruff"]["target-version"] == "py314"
    assert pyproject["tool"]["mypy"]["python_version"] == "3.14"


@pytest.mark.slow
def test_the_newest_variant_type_checks_against_its_python(
    renders: Renders, tmp_path: Path
) -> None:
    """mypy from the same answers installed on 3.11: it checks against 3.14's stubs and takes
    3.14's version branches, but parses with the running Python, so syntax new in 3.14 would
    not parse here (the template's code has none: ruff, targeting 3.14, would add it)."""
    rendered = renders.render(NEWEST)
    project = copy_of(rendered, tmp_path / rendered.path.name)
    mypy = str(renders.install(SENTRY).path / ".venv" / "bin" / "mypy")
    result = run([mypy], project, timeout=900)
    assert result.stdout.startswith("Success: no issues found"), result.stdout
    # The configured target is the one in force: a 3.14-only branch is reachable.
    probe = project / "version_probe.py"
    probe.write_text("import sys\n\nif sys.version_info >= (3, 14):\n    reveal_type(1)\n")
    revealed = run([mypy, probe.name], project, check=False)
    assert 'Revealed type is "Literal[1]?"' in revealed.stdout, revealed.stdout
