"""`make bench`: what optional Sentry costs, measured side by side in one run.

Renders the "no" and "yes" variants, installs each in its own venv, seeds the same data, and
runs each under uvicorn as the generated README runs it in production, with one worker pinned
to core 0 while wrk (Debian's package, installed when missing) runs on core 1. All five setups
("no", "yes", "yes" with its receiver down, with a black-hole receiver, and with 10 % of
requests traced instead of the default 5 %) are up at once, idle but for the one being
measured, and take turns route by route: in every round each setup serves the route for a few
seconds, the order alternating. This machine's throughput drifts by
15 % within seconds, so each ratio is taken within a round, between neighbours in time, and the
median over the rounds is reported. The "yes" app sends to the project's own loopback receiver,
in a separate process. It prints figures; it asserts nothing about time.

Each table is printed, and written to build/bench/results.md, as soon as it is measured, so an
interrupted run keeps what it had. Every child (servers, receiver, wrk) is stopped with SIGTERM
to its process group, never SIGINT, so the run stops cleanly however it was started: in a
terminal, as `nohup make bench &`, or under a runner without one.

    .venv/bin/python -m tools.bench [--rounds 16] [--seconds 2]
"""

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tools.processes import (
    CommandError,
    clean_env,
    free_port,
    run,
    start,
    stop,
    stop_children_on_sigterm,
)
from tools.template import TEMPLATE_DIR, run_cookiecutter

BUILD_DIR = TEMPLATE_DIR / "build" / "bench"
RESULTS = BUILD_DIR / "results.md"
SERVER_CORE, LOAD_CORE = "0", "1"
CONNECTIONS = 16
ITEMS = 20
ROUTES = {"health": "/health", "items": "/api/v1/items?limit=20", "error": "/api/v1/error"}
QUIET_ROUTES = ("health", "items")  # what the receiver-down and black-hole setups are measured on
STORM_ROUNDS = 3


# -- the projects --------------------------------------------------------------------------------


@dataclass
class Project:
    variant: str  # "no" or "yes"
    path: Path
    database: Path

    @property
    def python(self) -> str:
        return str(self.path / ".venv" / "bin" / "python")


def expect(condition: bool, message: str) -> None:
    """What the run relies on (the seeding worked, every answer was the expected one); a run
    where it does not hold stops, since its figures would mean nothing."""
    if not condition:
        raise SystemExit(f"error: {message}")


def render(variant: str) -> Project:
    output = BUILD_DIR / variant
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    rendered = run_cookiecutter(output, answers={"include_sentry": variant})
    if rendered.returncode != 0:
        raise CommandError(f"cookiecutter failed:\n{rendered.stdout}\n{rendered.stderr}")
    project = Project(variant, output / "acme_backend", output / "acme_backend" / "bench.db")
    run(["make", "install"], cwd=project.path, timeout=1200)
    migrate = [".venv/bin/alembic", "upgrade", "head"]
    run(migrate, cwd=project.path, env=clean_env(DATABASE_URL=_url(project)))
    return project


def _url(project: Project) -> str:
    return f"sqlite+aiosqlite:///{project.database}"


def ensure_tools() -> None:
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"installing {', '.join(missing)} from Debian's packages", flush=True)
        packages = ["wrk" if tool == "wrk" else "util-linux" for tool in missing]
        run(["apt-get", "update", "-qq"], env=os.environ)
        run(["apt-get", "install", "-y", "-qq", *packages], env=os.environ)
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("the benchmark needs two cores: one for the server, one for wrk")


# -- the peers: receiver, black hole -------------------------------------------------------------


@contextlib.contextmanager
def receiver(project: Project) -> Iterator["Receiver"]:
    port = free_port()
    process = start(
        [
            "taskset", "-c", LOAD_CORE,
            # SIGTERM (never SIGINT, which a background job ignores) makes it print its counts.
            project.python, "-m", "tools.sentry_dev", str(port), "--quiet",
        ],
        cwd=project.path,
    )  # fmt: skip
    first = process.stdout.readline() if process.stdout else ""
    handle = Receiver(f"http://key@127.0.0.1:{port}/1", process)
    try:
        if not first.startswith("listening"):
            raise CommandError(f"the receiver did not start: {first}")
        yield handle
    finally:
        handle.stop()


@dataclass
class Receiver:
    dsn: str
    process: subprocess.Popen[str]
    counts: str = ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.counts = stop(self.process).strip()

    @property
    def events(self) -> int:
        match = re.search(r"received (\d+) events", self.counts)
        return int(match[1]) if match else -1


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A port that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        yield f"http://key@127.0.0.1:{listener.getsockname()[1]}/1"


# -- the server ----------------------------------------------------------------------------------

SECRET_KEY = secrets.token_urlsafe(48)


@contextlib.contextmanager
def server(project: Project, **env: str) -> Iterator["Server"]:
    port = free_port()
    command = [
        "taskset", "-c", SERVER_CORE,
        ".venv/bin/uvicorn", "--factory", "app.main:create_app",
        "--host", "127.0.0.1", "--port", str(port),
        "--proxy-headers", "--forwarded-allow-ips=127.0.0.1",
    ]  # fmt: skip
    settings = {
        "ENVIRONMENT": "staging",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": _url(project),
        "ACCESS_TOKEN_EXPIRE_MINUTES": "1440",
        "ERROR_ROUTE": "true",
    }
    # The log goes to a file: a pipe nobody reads fills up with tracebacks and blocks the server.
    log = project.path / f"bench-server-{port}.log"  # several servers of one project at once
    with log.open("w") as log_file:
        process = start(
            command, cwd=project.path, env=clean_env(**settings, **env), stdout=log_file
        )
        handle = Server(project, f"http://127.0.0.1:{port}", process, log)
        try:
            handle.wait_until_up()
            yield handle
        finally:
            stop(process, grace=60)


@dataclass
class Server:
    project: Project
    url: str
    process: subprocess.Popen[str]
    log: Path
    token: str = ""

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log.read_text()}")
            with contextlib.suppress(OSError):
                if self.call("/health")[0] == 200:
                    return
            time.sleep(0.2)
        raise SystemExit("the server did not answer /health within 60 s")

    def call(
        self, path: str, body: dict[str, object] | None = None, form: str = ""
    ) -> tuple[int, dict[str, object]]:
        data, headers = None, {"Authorization": f"Bearer {self.token}"} if self.token else {}
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

    def sign_in(self) -> None:
        """The same tenant, owner and items in every variant's database."""
        email, password = "bench@example.com", "correct horse battery staple"
        status, _ = self.call(
            "/api/v1/tenants", {"tenant_name": "Bench", "email": email, "password": password}
        )
        expect(status in {201, 409}, f"sign-up answered {status}")  # 409: seeded before
        status, token = self.call(
            "/api/v1/auth/token",
            form=f"username=bench%40example.com&password={password.replace(' ', '+')}",
        )
        expect(status == 200, f"login answered {status}")
        self.token = str(token["access_token"])
        status, page = self.call("/api/v1/items?limit=1")
        for number in range(ITEMS - int(str(page.get("total", 0)))):
            status, _ = self.call("/api/v1/items", {"title": f"item {number}"})
            expect(status == 201, f"creating an item answered {status}")

    def rss_kib(self) -> int:
        # The uvicorn process itself (taskset execs it, so the pid is the server's).
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match[1]) if match else -1


# -- the load --------------------------------------------------------------------------------------


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise SystemExit(f"unreadable latency {text!r}")
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match[2]]


def wrk(url: str, token: str, seconds: float, connections: int = CONNECTIONS) -> Load:
    command = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s",
        "--timeout", "30s", "--latency", "-H", f"Authorization: Bearer {token}", url,
    ]  # fmt: skip
    output = run(command, timeout=seconds + 60).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if not (latency and rate and total):
        raise SystemExit(f"no request completed:\n{output}")
    return Load(
        requests_per_second=float(rate[1]),
        p50_ms=_milliseconds(latency["50"]),
        p99_ms=_milliseconds(latency["99"]),
        requests=int(total[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
    )


# -- the measurements ----------------------------------------------------------------------------


@dataclass
class Storm:
    calm: Load  # /health alone
    during: Load  # /health beside a flood of failing requests
    failing_requests: int


@dataclass
class Results:
    loads: dict[tuple[str, str], list[Load]] = field(default_factory=dict)  # (setup, route)
    memory: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # RSS start, end
    storms: dict[str, list[Storm]] = field(default_factory=dict)
    delivered: list[tuple[int, int]] = field(default_factory=list)  # failing requests, events

    def add(self, setup: str, route: str, load: Load) -> None:
        self.loads.setdefault((setup, route), []).append(load)

    def median(self, setup: str, route: str, attribute: str) -> float:
        loads = self.loads[(setup, route)]
        return float(statistics.median(getattr(load, attribute) for load in loads))

    def ratios(self, setup: str, route: str, attribute: str) -> list[float]:
        """Round by round, this setup's figure over "no"'s in the same round."""
        pairs = zip(self.loads[(setup, route)], self.loads[("no", route)], strict=True)
        return [getattr(this, attribute) / getattr(no, attribute) for this, no in pairs]


def measure_route(
    results: Results, servers: dict[str, "Server"], route: str, rounds: int, seconds: float
) -> int:
    """Every setup in turn, round after round; returns how many requests failed on purpose
    on the "yes" server (the error route), whose events the receiver counts."""
    setups = [setup for setup in servers if route in QUIET_ROUTES or setup in ("no", "yes")]
    failing = 0
    for setup in setups:  # warm-up
        load = wrk(servers[setup].url + ROUTES[route], servers[setup].token, 1)
        failing += load.requests if setup == "yes" and route == "error" else 0
    for number in range(rounds):
        for setup in setups if number % 2 == 0 else setups[::-1]:
            load = wrk(servers[setup].url + ROUTES[route], servers[setup].token, seconds)
            expected = load.requests if route == "error" else 0
            expect(load.non_2xx == expected, f"{setup} {route}: {load.non_2xx} non-2xx answers")
            results.add(setup, route, load)
            failing += load.requests if setup == "yes" and route == "error" else 0
    return failing


# The storm: 2 connections, each sending a failing request every 20 ms (at most 100 a second,
# about half of what the "no" app can serve on the error route), so /health keeps some room.
STORM_SCRIPT = "function delay()\n  return 20\nend\n"


def measure_storm(results: Results, setup: str, running: Server, seconds: float) -> int:
    """/health measured alone, then beside a flood of failing requests; returns their count."""
    health = running.url + ROUTES["health"]
    time.sleep(2)  # let the server finish what the previous measurement left queued
    calm = wrk(health, running.token, seconds, connections=4)
    script = BUILD_DIR / "storm.lua"
    script.write_text(STORM_SCRIPT)
    flood = start(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c2", f"-d{round(seconds) + 2}s",
         "-s", str(script), "-H", f"Authorization: Bearer {running.token}",
         running.url + ROUTES["error"]],
    )  # fmt: skip
    try:
        time.sleep(1)
        during = wrk(health, running.token, seconds, connections=4)
        flood_output = flood.communicate(timeout=seconds + 60)[0]
    finally:
        if flood.poll() is None:
            stop(flood)
    flooded = re.search(r"(\d+) requests in", flood_output)
    failing = int(flooded[1]) if flooded else 0
    results.storms.setdefault(setup, []).append(Storm(calm, during, failing))
    return failing


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def publish(lines: list[str]) -> None:
    """A finished piece of the report: printed, and appended to the results file, now."""
    text = "\n".join(lines)
    print(text, flush=True)
    with RESULTS.open("a", encoding="utf-8") as results_file:
        results_file.write(text + "\n")


def measure(projects: dict[str, Project], rounds: int, seconds: float) -> Results:
    """Every measurement but the micro-benchmarks, each table published as it is complete."""
    results = Results()
    failing = 0
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(receiver(projects["yes"]))
        dsns = {
            "yes": up.dsn,
            "yes, receiver down": f"http://key@127.0.0.1:{free_port()}/1",  # nothing listens
            "yes, black-hole receiver": stack.enter_context(black_hole()),
        }
        servers = {"no": stack.enter_context(server(projects["no"]))}
        for setup, dsn in dsns.items():
            servers[setup] = stack.enter_context(server(projects["yes"], SENTRY_DSN=dsn))
        # The default rate before issue 5, for comparison: 10 % of requests traced.
        servers["yes, traces 10 %"] = stack.enter_context(
            server(projects["yes"], SENTRY_DSN=up.dsn, SENTRY_TRACES_SAMPLE_RATE="0.1")
        )
        for running in servers.values():
            running.sign_in()
        memory_at_start = {setup: running.rss_kib() for setup, running in servers.items()}
        publish(load_table_head(rounds, seconds))
        for route in ROUTES:
            progress(f"{route}: {rounds} rounds")
            failing += measure_route(results, servers, route, rounds, seconds)
            publish(load_rows(results, route))
        progress(f"error storms: {STORM_ROUNDS} rounds")
        for number in range(STORM_ROUNDS):
            for setup in ("no", "yes") if number % 2 == 0 else ("yes", "no"):
                flooded = measure_storm(results, setup, servers[setup], seconds)
                failing += flooded if setup == "yes" else 0
        publish(storm_table(results))
        for setup, running in servers.items():
            results.memory[setup] = [(memory_at_start[setup], running.rss_kib())]
    results.delivered.append((failing, up.events))  # the receiver has stopped and counted
    publish(delivery_lines(results) + memory_table(results))
    return results


# -- micro-benchmarks: the scrubbing callbacks, start-up ----------------------------------------

SCRUB_BENCH = """
import copy, json, sys, time
from app import sentry

frames = [
    {"filename": f"app/module_{n}.py", "function": f"handler_{n}", "lineno": n, "in_app": True,
     "context_line": f"    result = await service.call(item_id, password=secret_{n})"}
    for n in range(25)
]
event = {
    "event_id": "0" * 32, "level": "error", "platform": "python", "transaction": "app.items.read",
    "exception": {"values": [{"type": "OperationalError", "value": "connection to 10.0.0.7:5432 "
        "refused for user app password=hunter2", "stacktrace": {"frames": frames}}]},
    "request": {"method": "POST", "url": "http://api.example/api/v1/items",
        "query_string": "limit=20&api_key=sk_live_123&page=2",
        "headers": {"host": "api.example", "authorization": "Bearer abc.def.ghi",
            "content-type": "application/json", "user-agent": "curl/8", "x-request-id": "r-1"},
        "data": {"title": "a", "description": "b", "password": "p", "nested": {"token": "t"}}},
    "user": {"id": "9de7859a-5f0a-4c8b-97e1-55879adc242d"},
    "tags": {"tenant_id": "25382e75-56e6-409d-9468-8c4fccb5ee83"},
    "contexts": {"tenant": {"id": "25382e75-56e6-409d-9468-8c4fccb5ee83"}},
    "breadcrumbs": {"values": [
        {"category": "query", "message": f"SELECT * FROM items WHERE id = {n}"} for n in range(20)
    ]},
}
rounds = 2000
events = [copy.deepcopy(event) for _ in range(rounds)]
started = time.perf_counter()
for each in events:
    sentry._before_send(each, {})
elapsed = time.perf_counter() - started
size = len(json.dumps(event))
print(json.dumps({"us_per_event": elapsed / rounds * 1e6, "event_bytes": size}))
"""

STARTUP_BENCH = """
import asyncio, json, sys, time
started = time.perf_counter()
from app.core.config import load_settings
from app.main import create_app

async def start() -> float:
    app = create_app(load_settings())
    async with app.router.lifespan_context(app):
        return time.perf_counter() - started

print(json.dumps({"seconds": asyncio.run(start())}))
"""


def micro_benchmarks(projects: dict[str, Project], repetitions: int) -> list[str]:
    yes = projects["yes"]
    scrub = [
        json.loads(run([yes.python, "-c", SCRUB_BENCH], cwd=yes.path).stdout)
        for _ in range(repetitions)
    ]
    lines = [
        "",
        f"Scrubbing callbacks (`before_send` on a typical {scrub[0]['event_bytes']}-byte error "
        f"event, 2,000 events, median of {repetitions}): "
        f"{statistics.median(each['us_per_event'] for each in scrub):.0f} µs per event.",
        "",
        "| variant | start-up to first request served, s (median of 5) |",
        "|---|---|",
    ]
    for variant, project in projects.items():
        env = {"DATABASE_URL": _url(project), "ENVIRONMENT": "staging", "SECRET_KEY": SECRET_KEY}
        if variant == "yes":  # a closed port: start-up must not wait for Sentry
            env["SENTRY_DSN"] = f"http://key@127.0.0.1:{free_port()}/1"
        startup = [project.python, "-c", STARTUP_BENCH]
        runs = [
            json.loads(run(startup, cwd=project.path, env=clean_env(**env)).stdout)
            for _ in range(5)
        ]
        lines.append(f"| {variant} | {statistics.median(each['seconds'] for each in runs):.3f} |")
    return lines


# -- the report ----------------------------------------------------------------------------------


def load_table_head(rounds: int, seconds: float) -> list[str]:
    return [
        f"{rounds} rounds per route, {seconds:g} s per setup and round, {CONNECTIONS} "
        "connections. req/s, p50 and p99: medians over the rounds. Ratios: medians over the "
        "rounds of this setup's figure over \"no\"'s in the same round.",
        "",
        "| setup | route | req/s | p50 ms | p99 ms | req/s ratio | middle half of the "
        "rounds' req/s ratios | p99 ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]


def load_rows(results: Results, route: str) -> list[str]:
    lines = []
    for setup, measured in results.loads:
        if measured != route:
            continue
        rps = results.median(setup, route, "requests_per_second")
        p99 = results.median(setup, route, "p99_ms")
        p50 = results.median(setup, route, "p50_ms")
        rps_ratios = results.ratios(setup, route, "requests_per_second")
        low, rps_ratio, high = statistics.quantiles(rps_ratios, n=4, method="inclusive")
        p99_ratio = statistics.median(results.ratios(setup, route, "p99_ms"))
        lines.append(
            f"| {setup} | `{ROUTES[route]}` | {rps:.0f} | {p50:.2f} | {p99:.2f} "
            f"| {rps_ratio:.2f} | {low:.2f} to {high:.2f} | {p99_ratio:.2f} |"
        )
    return lines


def storm_table(results: Results) -> list[str]:
    lines = [
        "",
        "| setup | `/health` p99 calm, ms | p99 during an error storm, ms | storm / calm |",
        "|---|---|---|---|",
    ]
    for setup, storms in results.storms.items():
        calm = statistics.median(storm.calm.p99_ms for storm in storms)
        during = statistics.median(storm.during.p99_ms for storm in storms)
        lines.append(f"| {setup} | {calm:.2f} | {during:.2f} | {during / calm:.2f} |")
    return lines


def delivery_lines(results: Results) -> list[str]:
    return [
        "",
        'Failing requests of the "yes" app and the events that reached the receiver:',
        *(
            f"- {failing} failing requests, {events} events"
            for failing, events in results.delivered
        ),
    ]


def memory_table(results: Results) -> list[str]:
    lines = ["", "| setup | RSS at start, KiB | RSS at end, KiB |", "|---|---|---|"]
    for setup, samples in results.memory.items():
        starts = ", ".join(str(start) for start, _ in samples)
        ends = ", ".join(str(end) for _, end in samples)
        lines.append(f"| {setup} | {starts} | {ends} |")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the report gives the middle half of them)")
    stop_children_on_sigterm()
    try:
        ensure_tools()
        progress("rendering and installing both variants ...")
        projects = {variant: render(variant) for variant in ("no", "yes")}
        RESULTS.write_text("", encoding="utf-8")
        measure(projects, args.rounds, args.seconds)
        publish(micro_benchmarks(projects, repetitions=3))
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: every child has been stopped on the way
        print(f"interrupted; what was measured is in {RESULTS}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
