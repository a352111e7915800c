"""`make bench`: the generated app measured side by side with what it is compared with, in one
run, on SQLite and on PostgreSQL.

Two comparisons:
- what optional Sentry costs (the default): renders the "no" and "yes" variants, and serves
  five setups at once ("no", "yes", "yes" with its receiver down, with a black-hole receiver,
  and with 10 % of requests traced instead of the default 5 %); on PostgreSQL the ceiling of
  the item list (tools/bench_ceiling.py) is served beside them;
- `--base REF`: the same variant rendered from an earlier commit of the template ("base") and
  from this checkout ("current"), on the read, create and health routes, the ceiling beside
  them on PostgreSQL.

Each project is installed in its own venv, gets its own database (a SQLite file, or a
PostgreSQL database bench_<setup>_<pid> set up as its README says, the app connecting as a
non-superuser runtime role so that row-level security is in force; both dropped at the end,
whatever happens), is seeded with the same tenants and items, and served under uvicorn as the
generated README runs it in production, one worker pinned to core 0 while wrk (Debian's
package, installed when missing) runs on core 1. The setups are up at once, idle but for the
one being measured, and take turns route by route: in every round each setup serves the route
for a few seconds, the order alternating. This machine's throughput drifts by 15 % within
seconds, so each ratio is taken within a round, between neighbours in time, and the median
over the rounds is reported. It prints figures; it asserts nothing about time.

Each table is printed, and written to build/bench/results.md, as soon as it is measured, and
every single measurement is appended to build/bench/results.jsonl the moment it is taken, so an
interrupted run keeps what it had. Every child (servers, receiver, wrk) is stopped with SIGTERM
to its process group, never SIGINT, so the run stops cleanly however it was started: in a
terminal, as `nohup make bench &`, or under a runner without one.

    .venv/bin/python -m tools.bench [--db sqlite|postgresql|both] [--base REF [--variant no|yes]]
                                    [--rounds 16] [--seconds 2]
"""

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tools.bench_measure import (
    CEILING,
    CONNECTIONS,
    RESULTS,
    RESULTS_JSONL,
    STORM_ROUNDS,
    Report,
    Results,
    Route,
    ceiling_binding,
    ceiling_rows,
    delivery_lines,
    load_rows,
    load_table_head,
    measure_route,
    measure_storm,
    memory_table,
    storm_table,
)
from tools.bench_micro import micro_benchmarks
from tools.bench_projects import (
    LOAD_CORE,
    Databases,
    PostgresDatabases,
    Project,
    Server,
    SqliteDatabases,
    base_source,
    ceiling,
    check_postgres,
    expect,
    progress,
    render,
    server,
)
from tools.processes import CommandError, free_port, run, start, stop, stop_children_on_sigterm

LIST = Route("items", "/api/v1/items?limit=20")
HEALTH = Route("health", "/health")
READY = Route("ready", "/health/ready")  # measured where the app answers 200 there
APP_ROUTES = (  # the base comparison's
    Route("users/me", "/api/v1/users/me"),
    LIST,
    Route("create", "/api/v1/items", method="POST", writer=True),
    HEALTH,
)


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
def receiver(project: Project) -> Iterator[Receiver]:
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


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A port that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        yield f"http://key@127.0.0.1:{listener.getsockname()[1]}/1"


# -- the passes ----------------------------------------------------------------------------------


def _with_ceiling(
    stack: contextlib.ExitStack,
    report: Report,
    databases: Databases,
    project: Project,
    token_from: Server,
) -> Server | None:
    """On PostgreSQL, the ceiling on `project`'s database, signed in as its reader."""
    if not isinstance(databases, PostgresDatabases):
        return None
    served = stack.enter_context(ceiling(project, databases.dsn(project), CONNECTIONS))
    report.context["ceiling_binding"] = ceiling_binding()
    served.token = token_from.token
    # The same work means the same answer: compared once, as JSON, before anything is measured.
    # For both tenants' callers: each sees its own tenant's items only.
    for token in (token_from.token, token_from.writer_token):
        ours, theirs = token_from.call(LIST.path, token=token), served.call(LIST.path, token=token)
        expect(ours[0] == theirs[0] == 200, f"the list answered {ours[0]}, the ceiling {theirs[0]}")
        expect(
            ours[1] == theirs[1], f"the ceiling's list differs from the app's:\n{ours}\n{theirs}"
        )
    expect(served.call(LIST.path, token="")[0] == 401, "the ceiling served a caller without token")
    progress(f"the ceiling answers {LIST.path} exactly as {token_from.name} does")
    return served


def _ready(servers: dict[str, Server]) -> dict[str, Server]:
    return {name: each for name, each in servers.items() if each.call(READY.path)[0] == 200}


def _measure_routes(
    results: Results,
    report: Report,
    plan: list[tuple[Route, dict[str, Server]]],
    reference: str,
    rounds: int,
    seconds: float,
) -> dict[str, dict[str, int]]:
    """Route after route, its table rows published as soon as it is measured, then the
    ceiling's table; returns the requests each setup was sent, per route."""
    report.publish(load_table_head(rounds, seconds, reference))
    sent = {}
    for route, servers in plan:
        progress(f"{route.method} {route.path}: {rounds} rounds, {', '.join(servers)}")
        sent[route.name] = measure_route(results, report, servers, route, rounds, seconds)
        report.publish(load_rows(results, route, reference))
    for route, _ in plan:
        lines = ceiling_rows(results, route)
        if lines:
            report.publish(lines)
    return sent


def sentry_pass(
    projects: dict[str, Project], databases: Databases, report: Report, rounds: int, seconds: int
) -> None:
    """What Sentry costs: every measurement but the micro-benchmarks, on one database."""
    report.context = {"mode": "sentry", "database": databases.name}
    for project in projects.values():
        databases.prepare(project)
    no, yes = projects["no"], projects["yes"]
    error = Route("error", no.error_route[0], failing=True)
    results = Results()
    failing = 0
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(receiver(yes))
        dsns = {
            "yes": up.dsn,
            "yes, receiver down": f"http://key@127.0.0.1:{free_port()}/1",  # nothing listens
            "yes, black-hole receiver": stack.enter_context(black_hole()),
        }
        servers = {"no": stack.enter_context(server("no", no, databases.url(no)))}
        for setup, dsn in dsns.items():
            servers[setup] = stack.enter_context(
                server(setup, yes, databases.url(yes), SENTRY_DSN=dsn)
            )
        # The default rate before issue 5, for comparison: 10 % of requests traced.
        servers["yes, traces 10 %"] = stack.enter_context(
            server(
                "yes, traces 10 %",
                yes,
                databases.url(yes),
                SENTRY_DSN=up.dsn,
                SENTRY_TRACES_SAMPLE_RATE="0.1",
            )
        )
        for running in servers.values():
            running.sign_in()
        top = _with_ceiling(stack, report, databases, no, servers["no"])
        memory_at_start = {setup: running.rss_kib() for setup, running in servers.items()}
        both = {setup: servers[setup] for setup in ("no", "yes")}
        plan = [(HEALTH, servers)]
        if ready := _ready(servers):
            plan.append((READY, ready))
        plan += [(LIST, servers | ({CEILING: top} if top else {})), (error, both)]
        report.publish(["", f"## What Sentry costs, on {databases.name} ({no.source})", ""])
        sent = _measure_routes(results, report, plan, "no", rounds, seconds)
        failing += sent["error"]["yes"]
        progress(f"error storms: {STORM_ROUNDS} rounds")
        for number in range(STORM_ROUNDS):
            for setup in ("no", "yes") if number % 2 == 0 else ("yes", "no"):
                flooded = measure_storm(results, report, setup, servers[setup], error.path, seconds)
                failing += flooded if setup == "yes" else 0
        report.publish(storm_table(results))
        for setup, running in servers.items():
            end = running.rss_kib()
            results.memory[setup] = [(memory_at_start[setup], end)]
            report.record("rss", setup=setup, start_kib=memory_at_start[setup], end_kib=end)
    results.delivered.append((failing, up.events))  # the receiver has stopped and counted
    report.record("delivery", failing_requests=failing, events=up.events)
    report.publish(delivery_lines(results) + memory_table(results))
    progress("micro-benchmarks: scrubbing, start-up")
    lines, figures = micro_benchmarks(projects, databases, repetitions=3)
    report.record("micro", **figures)
    report.publish(lines)


def base_pass(
    projects: dict[str, Project], databases: Databases, report: Report, rounds: int, seconds: int
) -> None:
    """This checkout against an earlier commit of the template, the same variant."""
    base, current = projects["base"], projects["current"]
    report.context = {
        "mode": "base",
        "database": databases.name,
        "base": base.source,
        "variant": current.variant,
    }
    for project in projects.values():
        databases.prepare(project)
    results = Results()
    with contextlib.ExitStack() as stack:
        sentry = {}
        if current.variant == "yes":  # both send to one receiver, this checkout's
            sentry["SENTRY_DSN"] = stack.enter_context(receiver(current)).dsn
        servers = {
            label: stack.enter_context(server(label, project, databases.url(project), **sentry))
            for label, project in projects.items()
        }
        for running in servers.values():
            running.sign_in()
        top = _with_ceiling(stack, report, databases, current, servers["current"])
        plan = [
            (route, servers | ({CEILING: top} if top and route is LIST else {}))
            for route in APP_ROUTES
        ]
        if ready := _ready(servers):
            plan.append((READY, ready))
        report.publish(
            [
                "",
                f'## This checkout ("current": {current.source.split(", ")[-1]}) against '
                f'{base.source} ("base"), variant "{current.variant}", on {databases.name}',
                "",
            ]
        )
        _measure_routes(results, report, plan, "base", rounds, seconds)


# -- the plan ------------------------------------------------------------------------------------


def estimate_minutes(base: bool, passes: list[str], rounds: int, seconds: int) -> float:
    """Rough: each wrk run costs its seconds and about half a second around them."""
    total = 0.0
    for database in passes:
        ceiling = 1 if database == "postgresql" else 0
        if base:
            runs = [2, 2 + ceiling, 2, 2, 2]  # users/me, list, create, health, ready
            extra = 60.0
        else:
            runs = [5, 5, 5 + ceiling, 2]  # health, ready, list, error
            extra = STORM_ROUNDS * 2 * (2 * seconds + 6) + 60.0  # storms, micro-benchmarks
        total += sum(n * (rounds * (seconds + 0.5) + 1.5) for n in runs) + extra
    return total / 60


def announce(args: argparse.Namespace, passes: list[str]) -> None:
    if args.base:
        what = (
            f'variant "{args.variant}" of this checkout against {args.base}: GET /api/v1/users/me, '
            "GET /api/v1/items?limit=20, POST /api/v1/items, GET /health (and /health/ready "
            "where it answers 200)"
        )
    else:
        what = (
            'what Sentry costs, "yes" against "no" in 5 setups: GET /health (and /health/ready '
            "where it answers 200), GET /api/v1/items?limit=20, the error route; error storms, "
            "RSS, scrubbing and start-up micro-benchmarks"
        )
    ceiling_note = ", the ceiling beside the list on PostgreSQL" if "postgresql" in passes else ""
    minutes = estimate_minutes(bool(args.base), passes, args.rounds, args.seconds)
    progress(
        f"make bench: {what}{ceiling_note}; on {' then '.join(passes)}; {args.rounds} rounds "
        f"of {args.seconds} s per setup and route. About {minutes:.0f} min of measuring, after "
        f"rendering and installing 2 projects (1 to 3 min each, less with uv's cache). "
        f"Tables go to {RESULTS}, every measurement to {RESULTS_JSONL}, as they are taken."
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgresql", "both"],
        help="sqlite (the default), postgresql (127.0.0.1:5432, superuser postgres, trust), or "
        "both one after the other; with --base the default is postgresql",
    )
    parser.add_argument("--base", metavar="REF", help="compare with this git ref's template")
    parser.add_argument("--variant", choices=["no", "yes"], help='with --base; default "no"')
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the report gives the middle half of them)")
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    if args.variant and not args.base:
        parser.error("--variant goes with --base (without it both variants are measured)")
    args.variant = args.variant or "no"
    db = args.db or ("postgresql" if args.base else "sqlite")
    passes = ["sqlite", "postgresql"] if db == "both" else [db]
    stop_children_on_sigterm()
    try:
        ensure_tools()
        if "postgresql" in passes:
            check_postgres(PostgresDatabases())
        announce(args, passes)
        report = Report(run_id=f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        report.start()
        if args.base:
            progress(f"rendering {args.base} and this checkout ...")
            source = base_source(args.base)
            projects = {
                "base": render("base", args.variant, source, source=args.base),
                "current": render("current", args.variant),
            }
        else:
            progress("rendering and installing both variants ...")
            projects = {variant: render(variant, variant) for variant in ("no", "yes")}
        for database in passes:
            databases = SqliteDatabases() if database == "sqlite" else PostgresDatabases()
            with databases.dropped():
                if args.base:
                    base_pass(projects, databases, report, args.rounds, args.seconds)
                else:
                    sentry_pass(projects, databases, report, args.rounds, args.seconds)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        print(f"what was measured is in {RESULTS} and {RESULTS_JSONL}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: every child has been stopped on the way
        print(
            f"interrupted; what was measured is in {RESULTS} and {RESULTS_JSONL}", file=sys.stderr
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
