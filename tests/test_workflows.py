"""The GitHub Actions workflows: the generated project's (.github/workflows/ci.yml, rendered for
each supported combination) and the template's own. Real linters hold them to GitHub's schema
and to zizmor's security audits (actions pinned by commit SHA, no persisted credentials, ...);
what is left here is what no linter knows: each runs the very commands the READMEs give, on our
services, the release is named as the app names it, and the generated one comes out of Jinja
with GitHub's `${{ }}` expressions intact."""

import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.rendering import SENTRY, Rendered, Renders, copy_of
from tools.processes import BIN_DIR, clean_env, run
from tools.template import DECLARED, TEMPLATE_DIR

WORKFLOW = Path(".github/workflows/ci.yml")
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
WHEN_CONFIGURED = "env.SENTRY_AUTH_TOKEN != ''"


@dataclass(frozen=True)
class Workflow:
    text: str  # the workflow as written
    parsed: dict[str, Any]  # the workflow as parsed

    @property
    def jobs(self) -> dict[str, Any]:
        jobs: dict[str, Any] = self.parsed["jobs"]
        return jobs


def parse_workflow(text: str) -> dict[str, Any]:
    workflow: dict[Any, Any] = yaml.safe_load(text)
    if True in workflow:  # YAML 1.1 reads the key `on` as a boolean
        workflow["on"] = workflow.pop(True)
    return workflow


@pytest.fixture(scope="session")
def workflow(rendered: Rendered) -> Workflow:
    """The generated project's workflow, of every supported combination."""
    text = rendered.read(WORKFLOW)
    return Workflow(text, parse_workflow(text))


# --- the linters --------------------------------------------------------------------------------


def lint_workflow(path: Path) -> None:
    """zizmor (offline: no GitHub token, no network) and GitHub's workflow schema."""
    run([str(BIN_DIR / "zizmor"), "--offline", str(path)], timeout=120)
    schema = ["--builtin-schema", "vendor.github-workflows"]
    run([str(BIN_DIR / "check-jsonschema"), *schema, str(path)], timeout=120)


def test_generated_workflow_passes_zizmor_and_the_schema(rendered: Rendered) -> None:
    lint_workflow(rendered.path / WORKFLOW)


def test_template_workflow_passes_zizmor_and_the_schema() -> None:
    lint_workflow(TEMPLATE_DIR / WORKFLOW)


# --- what the READMEs and .ci/run say -----------------------------------------------------------


def _code_lines(markdown: str) -> list[str]:
    """The lines of the ```bash blocks, comments removed."""
    blocks = re.findall(r"^```bash\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)
    return [line.partition("#")[0].strip() for block in blocks for line in block.splitlines()]


def readme_test_command(readme: str) -> str:
    """The command the README's "two commands" block gives for the tests (the one whose
    comment speaks of tests)."""
    section = re.split(r"^## .*two commands.*$", readme, flags=re.MULTILINE | re.IGNORECASE)[1]
    block = re.search(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert block is not None, "no code block under the README's 'two commands' heading"
    commands = [
        command.strip()
        for command, _, comment in (line.partition("#") for line in block[1].splitlines())
        if "test" in comment
    ]
    assert len(commands) == 1, commands
    return commands[0]


def readme_postgres_command(readme: str) -> tuple[str, str]:
    """(TEST_DATABASE_URL, command) of the README's `TEST_DATABASE_URL=... make test` line."""
    found = [
        (match[1], match[2])
        for line in _code_lines(readme)
        if (match := re.fullmatch(r"TEST_DATABASE_URL=(\S+) (.+)", line))
    ]
    assert len(found) == 1, found
    return found[0]


def steps_of(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(f"{action}@")]


def runs_of(job: dict[str, Any]) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def assert_postgres_service(job: dict[str, Any], url: str) -> None:
    """A PostgreSQL 16 service, healthy before the steps start, that `url` can reach as is."""
    service = job["services"]["postgres"]
    assert service["image"] == "postgres:16"
    options = service["options"]
    for option in ("--health-cmd", "--health-interval", "--health-timeout", "--health-retries"):
        assert option in options, option
    target = urlsplit(url)
    assert target.scheme == "postgresql+asyncpg"
    assert target.hostname in {"127.0.0.1", "localhost"}
    assert f"{target.port}:5432" in service["ports"]
    env = service["env"]
    assert env["POSTGRES_DB"] == target.path.lstrip("/")
    assert target.username == env.get("POSTGRES_USER", "postgres")
    if target.password is None:
        assert env["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    else:
        assert env["POSTGRES_PASSWORD"] == target.password


# --- the generated project's workflow -----------------------------------------------------------


def test_github_expressions_survive_and_no_jinja_is_left(
    rendered: Rendered, workflow: Workflow
) -> None:
    for expression in (
        "${{ env.PYTHON_VERSION }}",
        "${{ matrix.database }}",
        "${{ matrix.test-database-url }}",
        "${{ hashFiles('pyproject.toml', 'uv.lock') }}",
        "${{ github.event_name == 'pull_request' }}",
    ):
        assert expression in workflow.text, expression
    if rendered.sentry:
        assert "${{ secrets.SENTRY_AUTH_TOKEN }}" in workflow.text
        assert "${{ vars.SENTRY_ORG }}" in workflow.text
    assert "cookiecutter" not in workflow.text
    outside_expressions = GITHUB_EXPRESSION.sub("", workflow.text)
    for marker in ("{{", "}}", "{%", "%}", "{#", "#}", "endraw"):
        assert marker not in outside_expressions, marker
    assert not workflow.text.startswith("\n")
    assert "\n\n\n" not in workflow.text


def test_lint_job_runs_make_lint(rendered: Rendered, workflow: Workflow) -> None:
    assert runs_of(workflow.jobs["lint"]) == ["make lint"]
    # ... which is ruff check, ruff format --check and mypy.
    makefile = rendered.read("Makefile")
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None
    assert [line.strip() for line in recipe[1].splitlines()] == [
        "$(BIN)/ruff check .",
        "$(BIN)/ruff format --check .",
        "$(BIN)/mypy",
    ]


def test_test_job_runs_the_readme_command_on_sqlite_and_on_postgresql(
    rendered: Rendered, workflow: Workflow
) -> None:
    command = readme_test_command(rendered.read("README.md"))
    postgres_url, postgres_command = readme_postgres_command(rendered.read("README.md"))
    assert postgres_command == command

    job = workflow.jobs["test"]
    [step] = [step for step in job["steps"] if "run" in step]
    # Pushes and pull requests run the README's command; the weekly run its long profile.
    assert command == "make test"
    assert "make test-long" in rendered.read("README.md")
    by_hand = "github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'"
    assert step["run"].strip() == f"make ${{{{ ({by_hand}) && 'test-long' || 'test' }}}}"
    [schedule] = workflow.parsed["on"]["schedule"]
    assert re.fullmatch(r"\d+ \d+ \* \* [0-6]", schedule["cron"]), schedule  # weekly
    assert step["env"] == {"TEST_DATABASE_URL": "${{ matrix.test-database-url }}"}
    legs = {
        leg["database"]: leg["test-database-url"] for leg in job["strategy"]["matrix"]["include"]
    }
    # An empty TEST_DATABASE_URL means SQLite to tests/databases.py.
    assert legs == {"sqlite": "", "postgresql": postgres_url}
    assert job["strategy"]["fail-fast"] is False
    assert_postgres_service(job, postgres_url)


def test_python_version_is_the_answer(rendered: Rendered, workflow: Workflow) -> None:
    version = rendered.answers["python_version"]
    assert workflow.parsed["env"]["PYTHON_VERSION"] == version
    setups = [
        step for job in workflow.jobs.values() for step in steps_of(job, "actions/setup-python")
    ]
    assert len(setups) == len(workflow.jobs)
    for step in setups:
        assert step["with"]["python-version"] == "${{ env.PYTHON_VERSION }}"
    pyproject = tomllib.loads(rendered.read("pyproject.toml"))
    assert pyproject["project"]["requires-python"] == f">={version}"


def test_installs_are_cached(rendered: Rendered, workflow: Workflow) -> None:
    for name, job in workflow.jobs.items():
        for step in steps_of(job, "actions/setup-python"):
            assert step["with"]["cache"] == "pip", name
            assert step["with"]["cache-dependency-path"] == "pyproject.toml", name
    # `make` installs the packages with uv: its cache is the one that matters.
    makefile = rendered.read("Makefile")
    assert re.search(r"^UV := \$\(BIN\)/uv$", makefile, re.MULTILINE)
    assert re.search(r"^\t\$\(UV\) sync .*--locked", makefile, re.MULTILINE)
    for name in ("lint", "test"):
        [cache] = steps_of(workflow.jobs[name], "actions/cache")
        assert cache["with"]["path"] == "~/.cache/uv"
        assert "${{ hashFiles('pyproject.toml', 'uv.lock') }}" in cache["with"]["key"]


def _sentry_cli_calls(job: dict[str, Any]) -> list[list[str]]:
    return [
        shlex.split(line)[1:]
        for script in runs_of(job)
        for line in script.splitlines()
        if line.startswith("sentry-cli ")
    ]


def test_release_job_only_when_sentry_is_included(rendered: Rendered, workflow: Workflow) -> None:
    if not rendered.sentry:
        assert set(workflow.jobs) == {"lint", "test"}
        assert "sentry" not in workflow.text.lower()
        return
    job = workflow.jobs["release"]
    assert set(job["needs"]) == {"lint", "test"}
    assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert job["env"] == {
        "SENTRY_AUTH_TOKEN": "${{ secrets.SENTRY_AUTH_TOKEN }}",
        "SENTRY_ORG": "${{ vars.SENTRY_ORG }}",
        "SENTRY_PROJECT": "${{ vars.SENTRY_PROJECT }}",
    }
    # Secrets are not available to `if:`; the steps test the job's env instead.
    first, *steps = job["steps"]
    assert first["if"] == "env.SENTRY_AUTH_TOKEN == ''"
    assert "::notice::" in first["run"]
    assert [step["if"] for step in steps] == [WHEN_CONFIGURED] * len(steps)
    [checkout] = steps_of(job, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0  # set-commits needs the history
    [install] = [run for run in runs_of(job) if "pip install" in run]
    assert any(word.startswith("sentry-cli") for word in shlex.split(install))

    calls = _sentry_cli_calls(job)
    assert [call[:2] for call in calls] == [
        ["releases", "new"],
        ["releases", "set-commits"],
        ["releases", "finalize"],
        ["deploys", "new"],
    ]
    assert all("$RELEASE" in call for call in calls)
    assert "--auto" in calls[1]
    assert calls[3][calls[3].index("--release") + 1] == "$RELEASE"
    assert "-e" in calls[3]
    # $RELEASE comes from an earlier step, through $GITHUB_ENV.
    [naming] = [
        i for i, step in enumerate(job["steps"]) if "app.sentry release" in step.get("run", "")
    ]
    [calling] = [
        i for i, step in enumerate(job["steps"]) if "sentry-cli releases" in step.get("run", "")
    ]
    assert naming < calling
    assert 'RELEASE=$release" >> "$GITHUB_ENV"' in job["steps"][naming]["run"]


@pytest.mark.slow
def test_release_step_names_the_release_as_the_app_does(renders: Renders, tmp_path: Path) -> None:
    """In a checkout with one commit, the workflow's own snippet (run by bash, as the runner
    does) and the app's release_name() (what a deployment reports) give the same name."""
    rendered = renders.render(SENTRY)
    project = copy_of(rendered, tmp_path / rendered.path.name)
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(
        ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.com", "commit", "-qm", "1"],
        project,
    )
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()

    # The app's runtime dependencies only (app.sentry needs its settings, not the dev tools):
    # not the shared install, which has the dev tools too.
    venv = tmp_path / "venv"
    run([str(BIN_DIR / "uv"), "venv", "-q", "--python", sys.executable, str(venv)], tmp_path)
    python = venv / "bin" / "python"
    uv_install = [str(BIN_DIR / "uv"), "pip", "install", "-q", "--python", str(python)]
    run([*uv_install, "-r", "pyproject.toml"], project)
    env = clean_env()
    env.pop("SENTRY_RELEASE", None)
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"  # the `python` the snippet calls

    app_says = run(
        [
            str(python),
            "-c",
            "from app.sentry import SentrySettings, release_name\n"
            "print(release_name(SentrySettings()))",
        ],
        project,
        env=env,
    ).stdout.strip()

    workflow = parse_workflow((project / WORKFLOW).read_text(encoding="utf-8"))
    [snippet] = [
        step["run"]
        for step in workflow["jobs"]["release"]["steps"]
        if "app.sentry" in step.get("run", "")
    ]
    script = tmp_path / "release-name.sh"
    script.write_text(snippet, encoding="utf-8")
    github_env = tmp_path / "github_env"
    github_env.touch()
    run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        project,
        env=env | {"GITHUB_ENV": str(github_env)},
    )
    exported = dict(
        line.split("=", 1) for line in github_env.read_text(encoding="utf-8").splitlines()
    )

    assert app_says == f"acme_backend@0.1.0+{head[:12]}"
    assert exported == {"RELEASE": app_says}


# --- the template's own workflow ----------------------------------------------------------------


def test_template_ci_runs_make_test_like_the_readme_and_ci_run() -> None:
    workflow = parse_workflow((TEMPLATE_DIR / WORKFLOW).read_text(encoding="utf-8"))
    readme = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    ci_run = (TEMPLATE_DIR / ".ci" / "run").read_text(encoding="utf-8")
    command = readme_test_command(readme)
    readme_url, readme_postgres = readme_postgres_command(readme)
    ci_run_url = re.search(
        r'^export TEST_DATABASE_URL="\$\{TEST_DATABASE_URL:-(\S+)\}"$', ci_run, re.M
    )
    assert ci_run_url is not None
    ci_run_commands = [line for line in ci_run.splitlines() if line and not line[0].isspace()]
    assert ci_run_commands[-1] == command == readme_postgres
    assert ci_run_url[1] == readme_url

    [job] = workflow["jobs"].values()
    [step] = [step for step in job["steps"] if "run" in step]
    assert step["run"].strip() == command
    assert step["env"]["TEST_DATABASE_URL"] == readme_url
    assert_postgres_service(job, readme_url)

    # One leg per floor a project may have, each with that Python as the default python3.
    assert job["strategy"]["matrix"]["python-version"] == DECLARED["python_version"]
    [setup] = steps_of(job, "actions/setup-python")
    assert setup["with"]["python-version"] == "${{ matrix.python-version }}"
    assert setup["with"]["cache"] == "pip"
    [cache] = steps_of(job, "actions/cache")
    assert cache["with"]["path"] == "~/.cache/uv"
    assert "hashFiles('**/pyproject.toml')" in cache["with"]["key"]
