"""Counts one rendered project's round trips per route (tools/round_trips.py runs it).

Runs in a generated project's venv with that project on PYTHONPATH, for its
tests/support/wire.py; serves the project given as the argument, which may be another
commit's render.

    python round_trips_probe.py PROJECT_DIR
"""

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-not-found]
from tests.support.wire import RoundTripCounter  # type: ignore[import-not-found]

SERVER = "postgresql://postgres@127.0.0.1:5432"
PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway account in a throwaway database


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


class App:
    def __init__(self, port: int, token: str = "") -> None:
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, form: str = ""
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form:
            data, headers["Content-Type"] = form.encode(), "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.base + path, data, headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, {}


def main(project: Path) -> None:
    pid = os.getpid()
    database, role = f"round_trips_{pid}", f"round_trips_runtime_{pid}"
    admin = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env |= {"SECRET_KEY": secrets.token_urlsafe(40), "LOG_LEVEL": "WARNING"}
    asyncio.run(_admin(f"CREATE DATABASE {database}"))
    proxy = RoundTripCounter(("127.0.0.1", 5432))
    server = None
    try:
        if (project / "app" / "db" / "setup.py").exists():  # row-level security: a runtime role
            runtime = f"postgresql+asyncpg://{role}@127.0.0.1:5432/{database}"  # trust auth
            setup = [".venv/bin/python", "-m", "app.db.setup"]
            env |= {"DATABASE_URL": runtime, "DATABASE_ADMIN_URL": admin}
        else:
            runtime, setup = admin, [".venv/bin/alembic", "upgrade", "head"]
            env |= {"DATABASE_URL": admin}
        subprocess.run(setup, cwd=project, env=env, check=True, capture_output=True)
        served = runtime.replace(":5432/", f":{proxy.port}/") + "?ssl=disable"
        env |= {"DATABASE_URL": served, "DATABASE_POOL_SIZE": "1", "DATABASE_MAX_OVERFLOW": "0"}
        port = 20000 + pid % 20000
        command = [".venv/bin/uvicorn", "--factory", "app.main:create_app", "--port", str(port)]
        command.append("--no-access-log")
        server = subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        app = App(port)
        for _ in range(150):
            try:
                app.call("GET", "/health")
                break
            except OSError:
                time.sleep(0.2)
        email = "probe@example.com"
        sign_up = {"tenant_name": "Probe", "email": email, "password": PASSWORD}
        if (status := app.call("POST", "/api/v1/tenants", sign_up)[0]) != 201:
            raise SystemExit(f"sign-up answered {status}")
        form = f"username={email.replace('@', '%40')}&password={PASSWORD.replace(' ', '+')}"
        status, token = app.call("POST", "/api/v1/auth/token", form=form)
        app.token = token["access_token"]
        _, item = app.call("POST", "/api/v1/items", {"title": "first"})
        routes: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/api/v1/items?limit=20", None),
            ("GET", f"/api/v1/items/{item['id']}", None),
            ("GET", "/api/v1/users/me", None),
            ("POST", "/api/v1/items", {"title": "more"}),
            ("GET", "/health", None),
            ("GET", "/health/ready", None),
        ]
        for method, path, body in routes:
            for _ in range(2):
                app.call(method, path, body)
            before = proxy.round_trips
            status, _ = app.call(method, path, body)
            name = f"{method} {path.replace(str(item['id']), '{id}')}"
            count = proxy.round_trips - before if status < 400 else "-"
            print(f"{name:28} {count} (status {status})", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        proxy.cut()
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        asyncio.run(_admin(f"DROP ROLE IF EXISTS {role}"))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
