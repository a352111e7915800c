"""`make bench`'s micro-benchmarks: the scrubbing callback on a typical error event, and
start-up to the first request served, run in each project's own venv."""

import json
import statistics

from tools.bench_projects import SECRET_KEY, Databases, Project
from tools.processes import clean_env, free_port, run

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
# The callback the SDK is given: app.sentry.before_send now, _before_send in earlier renders.
before_send = getattr(sentry, "before_send", None) or sentry._before_send
for each in events:
    before_send(each, {})
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


def micro_benchmarks(
    projects: dict[str, Project], databases: Databases, repetitions: int
) -> tuple[list[str], dict[str, object]]:
    """The report's lines, and the figures for results.jsonl."""
    yes = projects["yes"]
    scrub = [
        json.loads(run([yes.python, "-c", SCRUB_BENCH], cwd=yes.path).stdout)
        for _ in range(repetitions)
    ]
    scrub_us = statistics.median(each["us_per_event"] for each in scrub)
    lines = [
        "",
        f"Scrubbing callbacks (`before_send` on a typical {scrub[0]['event_bytes']}-byte error "
        f"event, 2,000 events, median of {repetitions}): {scrub_us:.0f} µs per event.",
        "",
        "| variant | start-up to first request served, s (median of 5) |",
        "|---|---|",
    ]
    startups: dict[str, float] = {}
    for variant, project in projects.items():
        env = {
            "DATABASE_URL": databases.url(project),
            "ENVIRONMENT": "staging",
            "SECRET_KEY": SECRET_KEY,
        }
        if variant == "yes":  # a closed port: start-up must not wait for Sentry
            env["SENTRY_DSN"] = f"http://key@127.0.0.1:{free_port()}/1"
        startup = [project.python, "-c", STARTUP_BENCH]
        runs = [
            json.loads(run(startup, cwd=project.path, env=clean_env(**env)).stdout)
            for _ in range(5)
        ]
        startups[variant] = statistics.median(each["seconds"] for each in runs)
        lines.append(f"| {variant} | {startups[variant]:.3f} |")
    return lines, {"scrub_us_per_event": scrub_us, "startup_seconds": startups}
