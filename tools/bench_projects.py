"""`make bench`'s subjects: rendered projects (of this checkout, or of an earlier commit of the
template), their databases (SQLite files, or PostgreSQL databases the run creates and drops),
their servers, and the ceiling's server."""

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tools.processes import CommandError, clean_env, free_port, run, start, stop
from tools.template import TEMPLATE_DIR, run_cookiecutter

BUILD_DIR = TEMPLATE_DIR / "build" / "bench"
SERVER_CORE, LOAD_CORE = "0", "1"
ITEMS = 20
SECRET_KEY = secrets.token_urlsafe(48)
READER = ("bench@example.com", "Bench")  # the list, read and users/me routes' caller
WRITER = ("bench-writes@example.com", "Bench writes")  # the create route's: its own tenant
PASSWORD = "correct horse battery staple"  # noqa: S105 - a benchmark account's


def expect(condition: bool, message: str) -> None:
    """What the run relies on (the seeding worked, every answer was the expected one); a run
    where it does not hold stops, since its figures would mean nothing."""
    if not condition:
        raise SystemExit(f"error: {message}")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the projects --------------------------------------------------------------------------------


@dataclass
class Project:
    label: str  # "no", "yes", "base", "current": the name of its database too
    variant: str  # "no" or "yes"
    path: Path
    source: str  # "this checkout, <commit>" or the git ref it was rendered from

    @property
    def python(self) -> str:
        return str(self.path / ".venv" / "bin" / "python")

    @property
    def has_db_setup(self) -> bool:
        """`make db-setup` (runtime role, migrations, grants) exists since issue 15."""
        return (self.path / "app" / "db" / "setup.py").exists()

    @property
    def error_route(self) -> tuple[str, str]:
        """The failing route's path and the setting that mounts it (renamed after 2dde805)."""
        if (self.path / "app" / "api" / "routes" / "probe.py").exists():
            return "/api/v1/probe/error", "ERROR_PROBE"
        return "/api/v1/error", "ERROR_ROUTE"


def checkout_revision() -> str:
    """This checkout's commit, "-dirty" when it has uncommitted changes."""
    command = ["git", "-C", str(TEMPLATE_DIR), "describe", "--always", "--dirty"]
    return run(command, env=os.environ, check=False).stdout.strip() or "unknown"


def base_source(ref: str) -> Path:
    """The template as it was at `ref`, unpacked into build/bench/base-src."""
    target = BUILD_DIR / "base-src"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = BUILD_DIR / "base-src.tar"
    run(["git", "-C", str(TEMPLATE_DIR), "archive", "--output", str(archive), ref], env=os.environ)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
    return target


def render(label: str, variant: str, template: Path = TEMPLATE_DIR, source: str = "") -> Project:
    output = BUILD_DIR / label
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    rendered = run_cookiecutter(output, answers={"include_sentry": variant}, template=str(template))
    if rendered.returncode != 0:
        raise CommandError(f"cookiecutter failed:\n{rendered.stdout}\n{rendered.stderr}")
    source = source or f"this checkout, {checkout_revision()}"
    project = Project(label, variant, output / "acme_backend", source)
    progress(f"installing {label} ({variant}, {project.source}) ...")
    run(["make", "install"], cwd=project.path, timeout=1200)
    return project


# -- the databases -------------------------------------------------------------------------------


class Databases:
    """One database per project for one pass of the benchmark."""

    name = ""

    def prepare(self, project: Project) -> None:
        raise NotImplementedError

    def url(self, project: Project) -> str:
        """DATABASE_URL of the app: on PostgreSQL its non-superuser runtime role."""
        raise NotImplementedError

    @contextlib.contextmanager
    def dropped(self) -> Iterator["Databases"]:
        """Whatever the pass created is gone when it ends, however it ends."""
        yield self


class SqliteDatabases(Databases):
    name = "sqlite"

    def url(self, project: Project) -> str:
        return f"sqlite+aiosqlite:///{project.path / 'bench.db'}"

    def prepare(self, project: Project) -> None:
        (project.path / "bench.db").unlink(missing_ok=True)
        migrate = [".venv/bin/alembic", "upgrade", "head"]
        run(migrate, cwd=project.path, env=clean_env(DATABASE_URL=self.url(project)))


@dataclass
class PostgresDatabases(Databases):
    """Databases bench_<label>_<pid> on the machine's PostgreSQL (trust, superuser postgres),
    and one runtime role for the run, bench_app_<pid>: LOGIN, no superuser, no BYPASSRLS, not
    the tables' owner, so row-level security is in force as in production. `dropped()` drops
    them all, whatever happened."""

    host: str = "127.0.0.1"
    port: int = 5432
    admin: str = "postgres"
    created: list[str] = field(default_factory=list)
    role: str = field(default_factory=lambda: f"bench_app_{os.getpid()}")
    role_created: bool = False
    name = "postgresql"

    def psql(self, sql: str, database: str = "postgres") -> str:
        command = ["psql", "-h", self.host, "-p", str(self.port), "-U", self.admin]
        command += ["-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]
        return run(command, env=os.environ, timeout=120).stdout

    def database(self, project: Project) -> str:
        return f"bench_{project.label}_{os.getpid()}"

    def url(self, project: Project) -> str:
        return self._url(self.role, self.database(project))

    def admin_url(self, project: Project) -> str:
        return self._url(self.admin, self.database(project))

    def dsn(self, project: Project) -> str:
        """The runtime role's URL as asyncpg itself takes it (the ceiling's)."""
        return f"postgresql://{self.role}@{self.host}:{self.port}/{self.database(project)}"

    def _url(self, role: str, database: str) -> str:
        return f"postgresql+asyncpg://{role}@{self.host}:{self.port}/{database}"

    def prepare(self, project: Project) -> None:
        if not self.role_created:
            self.psql(
                f"CREATE ROLE {self.role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            )
            self.role_created = True
        database = self.database(project)
        self.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        self.psql(f"CREATE DATABASE {database}")
        self.created.append(database)
        env = clean_env(DATABASE_URL=self.url(project), DATABASE_ADMIN_URL=self.admin_url(project))
        if project.has_db_setup:  # as the README says: role (ours exists), migrations, grants
            run(["make", "db-setup"], cwd=project.path, env=env)
            return
        # An earlier render: migrations as the owner, then the runtime role gets row access.
        env["DATABASE_URL"] = self.admin_url(project)
        run([".venv/bin/alembic", "upgrade", "head"], cwd=project.path, env=env)
        self.psql(
            f"GRANT CONNECT ON DATABASE {database} TO {self.role}; "
            f"GRANT USAGE ON SCHEMA public TO {self.role}; "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {self.role}",
            database,
        )

    @contextlib.contextmanager
    def dropped(self) -> Iterator["Databases"]:
        try:
            yield self
        finally:
            for database in self.created:
                with contextlib.suppress(CommandError):
                    self.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            if self.role_created:
                with contextlib.suppress(CommandError):
                    self.psql(f"DROP ROLE IF EXISTS {self.role}")
            self.created.clear()
            self.role_created = False


def check_postgres(databases: PostgresDatabases) -> None:
    try:
        databases.psql("SELECT 1")
    except CommandError as error:
        raise SystemExit(
            f"PostgreSQL does not answer at {databases.host}:{databases.port} as "
            f"{databases.admin}:\n{error}"
        ) from None


# -- the servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[str]
    log: Path
    token: str = ""  # the reader's
    writer_token: str = ""

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log.read_text()}")
            with contextlib.suppress(OSError):
                if self.call("/health")[0] == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer /health within 60 s")

    def call(
        self,
        path: str,
        body: dict[str, object] | None = None,
        form: str = "",
        token: str | None = None,
    ) -> tuple[int, dict[str, object]]:
        token = self.token if token is None else token
        data, headers = None, {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form:
            data, headers["Content-Type"] = form.encode(), "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.url + path, data=data, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, {}

    def _account(self, email: str, tenant: str) -> str:
        status, _ = self.call(
            "/api/v1/tenants",
            {"tenant_name": tenant, "email": email, "password": PASSWORD},
            token="",
        )
        expect(status in {201, 409}, f"{self.name}: sign-up answered {status}")  # 409: seeded
        form = f"username={email.replace('@', '%40')}&password={PASSWORD.replace(' ', '+')}"
        status, answer = self.call("/api/v1/auth/token", form=form, token="")
        expect(status == 200, f"{self.name}: login answered {status}")
        return str(answer["access_token"])

    def sign_in(self) -> None:
        """The same two tenants in every project's database: one with its owner and 20 items
        (the read routes), one whose items the create route adds (so the list stays 20)."""
        self.token = self._account(*READER)
        self.writer_token = self._account(*WRITER)
        status, page = self.call("/api/v1/items?limit=1")
        expect(status == 200, f"{self.name}: the item list answered {status}")
        for number in range(ITEMS - int(str(page.get("total", 0)))):
            status, _ = self.call("/api/v1/items", {"title": f"item {number}"})
            expect(status == 201, f"{self.name}: creating an item answered {status}")

    def rss_kib(self) -> int:
        # The uvicorn process itself (taskset execs it, so the pid is the server's).
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match[1]) if match else -1


@contextlib.contextmanager
def _served(
    name: str, command: list[str], cwd: Path, env: dict[str, str], log: Path
) -> Iterator[Server]:
    # The log goes to a file: a pipe nobody reads fills up with tracebacks and blocks the server.
    with log.open("w") as log_file:
        process = start(command, cwd=cwd, env=env, stdout=log_file)
        port = command[command.index("--port") + 1]
        handle = Server(name, f"http://127.0.0.1:{port}", process, log)
        try:
            handle.wait_until_up()
            yield handle
        finally:
            stop(process, grace=60)


def _uvicorn(executable: str, app: str, port: int) -> list[str]:
    return [
        "taskset", "-c", SERVER_CORE, executable, app, "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


@contextlib.contextmanager
def server(name: str, project: Project, database_url: str, **env: str) -> Iterator[Server]:
    """The project as its README runs production: uvicorn, one worker (pinned to one core),
    proxy headers, ENVIRONMENT=staging."""
    port = free_port()
    command = [
        *_uvicorn(".venv/bin/uvicorn", "app.main:create_app", port),
        "--factory", "--proxy-headers", "--forwarded-allow-ips=127.0.0.1",
    ]  # fmt: skip
    settings = {
        "ENVIRONMENT": "staging",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url,
        "ACCESS_TOKEN_EXPIRE_MINUTES": "1440",
        project.error_route[1]: "true",
    }
    log = project.path / f"bench-server-{port}.log"  # several servers of one project at once
    with _served(name, command, project.path, clean_env(**settings, **env), log) as handle:
        yield handle


@contextlib.contextmanager
def ceiling(project: Project, dsn: str, connections: int) -> Iterator[Server]:
    """tools/bench_ceiling.py served by the project's own uvicorn, on the project's database
    as its runtime role, with the same SECRET_KEY: the project's tokens are valid there."""
    port = free_port()
    command = [
        *_uvicorn(".venv/bin/uvicorn", "bench_ceiling:app", port),
        "--app-dir", str(TEMPLATE_DIR / "tools"),
    ]  # fmt: skip
    env = clean_env(
        SECRET_KEY=SECRET_KEY, CEILING_DATABASE_URL=dsn, CEILING_CONNECTIONS=str(connections)
    )
    log = project.path / f"bench-ceiling-{port}.log"
    with _served("ceiling", command, project.path, env, log) as handle:
        yield handle
