"""`make bench`'s instrument: wrk runs, interleaved rounds, and the report, written as it is
measured: every table to build/bench/results.md as soon as it is complete, and every single
measurement to build/bench/results.jsonl (one JSON object a line) the moment it is taken."""

import json
import os
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tools.bench_projects import BUILD_DIR, LOAD_CORE, Server, expect
from tools.processes import run, start, stop

RESULTS = BUILD_DIR / "results.md"
RESULTS_JSONL = BUILD_DIR / "results.jsonl"
CONNECTIONS = 16
STORM_ROUNDS = 3
CEILING = "ceiling"
CEILING_BINDINGS = {
    "statement": "the tenant's binding, the caller check, the page and its total in one statement",
    "transaction": "BEGIN and the tenant's binding in one message, then the caller check, the "
    "page and its total in one statement, then COMMIT",
}


def ceiling_binding() -> str:
    """How the ceiling binds the tenant: CEILING_BINDING in the environment, which it inherits."""
    return "transaction" if os.environ.get("CEILING_BINDING") == "transaction" else "statement"


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    method: str = "GET"  # POST sends POST_BODY
    writer: bool = False  # with the token of the tenant the create route writes into
    failing: bool = False  # every answer is a 500 (the error route)


POST_BODY = {"title": "bench"}


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)  # wrk's: connect, read, ...


class Report:
    """Where the figures go, as soon as they exist: results.md and results.jsonl in `directory`."""

    def __init__(self, run_id: str, directory: Path = BUILD_DIR) -> None:
        self.run_id = run_id
        self.markdown = directory / RESULTS.name
        self.jsonl = directory / RESULTS_JSONL.name
        self.context: dict[str, object] = {}  # mode, database: on every record

    def start(self) -> None:
        """Both files emptied: this run's figures only."""
        self.markdown.parent.mkdir(parents=True, exist_ok=True)
        self.markdown.write_text("", encoding="utf-8")
        self.jsonl.write_text("", encoding="utf-8")

    def publish(self, lines: list[str]) -> None:
        """A finished piece of the report: printed, and appended to the results file, now."""
        text = "\n".join(lines)
        print(text, flush=True)
        with self.markdown.open("a", encoding="utf-8") as results_file:
            results_file.write(text + "\n")

    def record(self, kind: str, **fields: object) -> None:
        """One measurement, appended as one JSON line the moment it is taken."""
        line = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "run": self.run_id,
            **self.context,
            "kind": kind,
            **fields,
        }
        with self.jsonl.open("a", encoding="utf-8") as jsonl:
            jsonl.write(json.dumps(line) + "\n")


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise SystemExit(f"unreadable latency {text!r}")
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match[2]]


def _script(route: Route) -> tuple[str, ...]:
    if route.method == "GET":
        return ()
    script = BUILD_DIR / f"{route.name}.lua"
    body = json.dumps(POST_BODY)
    script.write_text(
        f"wrk.method = \"{route.method}\"\nwrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return ("-s", str(script))


def wrk(
    url: str,
    token: str,
    seconds: float,
    connections: int = CONNECTIONS,
    script: tuple[str, ...] = (),
) -> Load:
    command = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s",
        "--timeout", "30s", "--latency", "-H", f"Authorization: Bearer {token}", *script, url,
    ]  # fmt: skip
    output = run(command, timeout=seconds + 60).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if not (latency and rate and total):
        raise SystemExit(f"no request completed:\n{output}")
    return Load(
        requests_per_second=float(rate[1]),
        p50_ms=_milliseconds(latency["50"]),
        p99_ms=_milliseconds(latency["99"]),
        requests=int(total[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=dict(
            zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)
        )
        if errors
        else {},
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

    def ratios(self, setup: str, route: str, attribute: str, against: str) -> list[float]:
        """Round by round, this setup's figure over the other's in the same round."""
        pairs = zip(self.loads[(setup, route)], self.loads[(against, route)], strict=True)
        return [getattr(this, attribute) / getattr(other, attribute) for this, other in pairs]


def measure_route(
    results: Results,
    report: Report,
    servers: dict[str, Server],
    route: Route,
    rounds: int,
    seconds: float,
) -> dict[str, int]:
    """Every given setup in turn, round after round, the order alternating; returns how many
    requests each setup was sent (warm-up included)."""
    sent = dict.fromkeys(servers, 0)
    script = _script(route)

    def load(setup: str, duration: float) -> Load:
        running = servers[setup]
        token = running.writer_token if route.writer else running.token
        measured = wrk(running.url + route.path, token, duration, script=script)
        sent[setup] += measured.requests
        return measured

    for setup in servers:  # warm-up
        load(setup, 1)
    order = list(servers)
    for number in range(rounds):
        for setup in order if number % 2 == 0 else order[::-1]:
            measured = load(setup, seconds)
            report.record(
                "load", setup=setup, route=route.name, path=route.path, method=route.method,
                round=number + 1, seconds=seconds, connections=CONNECTIONS, **asdict(measured),
            )  # fmt: skip
            alive = servers[setup].process.poll() is None
            expect(alive, f"{setup} has exited (its log: {servers[setup].log})")
            expect(
                measured.requests > 0 and not measured.socket_errors.get("connect"),
                f"{setup} {route.method} {route.path}: {measured.requests} requests answered, "
                f"socket errors {measured.socket_errors}",
            )
            expected = measured.requests if route.failing else 0
            expect(
                measured.non_2xx == expected,
                f"{setup} {route.method} {route.path}: {measured.non_2xx} non-2xx answers "
                f"of {measured.requests}",
            )
            results.add(setup, route.name, measured)
    return sent


# The storm: 2 connections, each sending a failing request every 20 ms (at most 100 a second,
# about half of what the "no" app can serve on the error route), so /health keeps some room.
STORM_SCRIPT = "function delay()\n  return 20\nend\n"


def measure_storm(
    results: Results, report: Report, setup: str, running: Server, error_path: str, seconds: float
) -> int:
    """/health measured alone, then beside a flood of failing requests; returns their count."""
    health = running.url + "/health"
    time.sleep(2)  # let the server finish what the previous measurement left queued
    calm = wrk(health, running.token, seconds, connections=4)
    script = BUILD_DIR / "storm.lua"
    script.write_text(STORM_SCRIPT)
    flood = start(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c2", f"-d{round(seconds) + 2}s",
         "-s", str(script), "-H", f"Authorization: Bearer {running.token}",
         running.url + error_path],
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
    report.record(
        "storm", setup=setup, calm=asdict(calm), during=asdict(during), failing_requests=failing
    )
    return failing


# -- the tables ----------------------------------------------------------------------------------


def load_table_head(rounds: int, seconds: float, reference: str) -> list[str]:
    return [
        f"{rounds} rounds per route, {seconds:g} s per setup and round, {CONNECTIONS} "
        "connections. req/s, p50 and p99: medians over the rounds. Ratios: medians over the "
        f"rounds of this setup's figure over \"{reference}\"'s in the same round.",
        "",
        "| setup | route | req/s | p50 ms | p99 ms | req/s ratio | middle half of the "
        "rounds' req/s ratios | p99 ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]


def _spread(ratios: list[float]) -> tuple[float, float, float]:
    low, middle, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return low, middle, high


def load_rows(results: Results, route: Route, reference: str) -> list[str]:
    lines = []
    shown = f"{route.method} {route.path}" if route.method != "GET" else route.path
    for setup, measured in results.loads:
        if measured != route.name or setup == CEILING:
            continue
        rps = results.median(setup, route.name, "requests_per_second")
        p99 = results.median(setup, route.name, "p99_ms")
        p50 = results.median(setup, route.name, "p50_ms")
        if (reference, route.name) in results.loads:
            low, rps_ratio, high = _spread(
                results.ratios(setup, route.name, "requests_per_second", reference)
            )
            p99_ratio = statistics.median(results.ratios(setup, route.name, "p99_ms", reference))
            ratios = f"{rps_ratio:.2f} | {low:.2f} to {high:.2f} | {p99_ratio:.2f}"
        else:
            ratios = f"(no {reference}) | | "
        lines.append(f"| {setup} | `{shown}` | {rps:.0f} | {p50:.2f} | {p99:.2f} | {ratios} |")
    return lines


def ceiling_rows(results: Results, route: Route) -> list[str]:
    """Every setup's req/s on the route as a share of the ceiling's, round by round."""
    if (CEILING, route.name) not in results.loads:
        return []
    ceiling_rps = results.median(CEILING, route.name, "requests_per_second")
    lines = [
        "",
        f"`{route.path}` as a share of the ceiling (tools/bench_ceiling.py: Starlette + "
        f"asyncpg, {CEILING_BINDINGS[ceiling_binding()]}; {ceiling_rps:.0f} req/s, p99 "
        f"{results.median(CEILING, route.name, 'p99_ms'):.2f} ms), medians of the rounds' "
        "req/s ratios. Its answers for both seeded tenants' callers were checked equal to "
        "the app's, as JSON, before measuring.",
        "",
        "| setup | share of the ceiling | middle half of the rounds |",
        "|---|---|---|",
    ]
    for setup, measured in results.loads:
        if measured != route.name or setup == CEILING:
            continue
        low, share, high = _spread(
            results.ratios(setup, route.name, "requests_per_second", CEILING)
        )
        lines.append(f"| {setup} | {share:.2f} | {low:.2f} to {high:.2f} |")
    return [*lines, ""]


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
