"""Custom spans and metrics (`sentry.span`, `sentry.count`, `sentry.gauge`,
`sentry.distribution`), proven on the wire as the installed SDK sends them: a 2.x span inside
its request's transaction, a 3.x span as an item of a "span" envelope item; a metric as an item
of a "trace_metric" one. `sent_spans` reads both span shapes."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import sentry_sdk
from fastapi import APIRouter, FastAPI
from httpx import AsyncClient

from app import sentry
from app.api.deps import CurrentUser
from app.core.config import Settings
from tests.sentry.helpers import BoomError, failing_app, sentry_env, settle
from tests.support.helpers import Account, running
from tools.sentry_dev.receiver import EnvelopeReceiver

SECRET = f"s3cr3t-{uuid.uuid4().hex}"  # must never arrive, whatever carries it
OTHER_SECRET = f"t0k3n-{uuid.uuid4().hex}"


# -- what arrived -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentSpan:
    """A span as it arrived, in either shape: 2.x sends a request's trace as one transaction
    (its own span in contexts.trace, the others in `spans`, data under `data`); 3.x streams
    each span as an item of a "span" envelope item, its op and data as typed attributes."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    op: str | None
    name: str | None
    status: str | None
    data: dict[str, Any]
    segment_id: str  # the request's own span: a 2.x transaction's, a 3.x segment's

    @property
    def segment(self) -> bool:
        return self.span_id == self.segment_id


def sent_spans(receiver: EnvelopeReceiver) -> list[SentSpan]:
    spans = []
    for transaction in receiver.transactions:  # sentry-sdk 2.x
        trace = transaction["contexts"]["trace"]
        segment_id = trace["span_id"]
        spans.append(_span_2(trace, transaction.get("transaction"), segment_id))
        spans += [
            _span_2(span, span.get("description"), segment_id) for span in transaction["spans"]
        ]
    for batch in receiver.items("span"):  # sentry-sdk 3.x
        for span in batch["items"]:
            data = {key: value["value"] for key, value in span.get("attributes", {}).items()}
            spans.append(
                SentSpan(
                    span["trace_id"],
                    span["span_id"],
                    span.get("parent_span_id"),
                    data.get("sentry.op"),
                    span.get("name"),
                    span.get("status"),
                    data,
                    data.get("sentry.segment.id", span["span_id"]),
                )
            )
    return spans


def _span_2(span: dict[str, Any], name: str | None, segment_id: str) -> SentSpan:
    return SentSpan(
        span["trace_id"],
        span["span_id"],
        span.get("parent_span_id"),
        span.get("op"),
        name,
        span.get("status"),
        span.get("data") or {},
        segment_id,
    )


def the_span(receiver: EnvelopeReceiver, op: str) -> SentSpan:
    [found] = [span for span in sent_spans(receiver) if span.op == op]
    return found


def segment_of(receiver: EnvelopeReceiver, span: SentSpan) -> SentSpan:
    """The request's own span (3.x: the segment; 2.x: the transaction's)."""
    [segment] = [other for other in sent_spans(receiver) if other.span_id == span.segment_id]
    return segment


def sent_metrics(receiver: EnvelopeReceiver) -> list[dict[str, Any]]:
    """Every metric that arrived, its typed attributes read as plain values."""
    return [
        {**metric, "attributes": {k: v["value"] for k, v in metric["attributes"].items()}}
        for batch in receiver.items("trace_metric")
        for metric in batch["items"]
    ]


# -- an app that uses the helpers ---------------------------------------------------------------


@sentry.span("app.sync", "sync helper", kind="function")
def sync_helper(value: int) -> int:
    return value + 1


@sentry.span("app.async", "async helper")
async def async_helper(value: int) -> int:
    return sync_helper(value) * 2


@sentry.span("app.failing", "failing helper")
async def failing_helper() -> None:
    raise BoomError("inside a span")


def telemetry_app(settings: Settings) -> FastAPI:
    app = failing_app(settings)
    router = APIRouter(prefix="/test/telemetry")

    @router.get("/steps")
    async def steps(user: CurrentUser) -> dict[str, int]:
        with sentry.span("app.step", "first step", rows=3, cached=False) as step:
            result = await async_helper(1)
            step.set_data(result=result)
        return {"result": result}

    @router.get("/leaky-step")
    async def leaky_step(user: CurrentUser) -> None:
        with sentry.span(
            "app.leaky", f"step password={SECRET}", api_key=SECRET, note=f"token={OTHER_SECRET}"
        ) as step:
            step.set_data(client_secret=OTHER_SECRET)
        sentry.count("leaky.steps", 1, note=f"password={SECRET}", api_key=OTHER_SECRET)

    @router.get("/failing-step")
    async def failing_step(user: CurrentUser) -> None:
        await failing_helper()

    @router.get("/measured")
    async def measured(user: CurrentUser) -> None:
        sentry.count("jobs.started")
        sentry.gauge("queue.depth", 7, region="eu")
        sentry.distribution("job.duration", 12.5, unit="millisecond", kind="import")

    @router.get("/metric-from-the-sdk")
    async def metric_from_the_sdk(user: CurrentUser) -> None:
        sentry.count("ours.counted")
        sentry_sdk.metrics.count("theirs.counted", 1)

    app.include_router(router)
    return app


@pytest.fixture
def traced(
    settings: Settings, receiver: EnvelopeReceiver, monkeypatch: pytest.MonkeyPatch
) -> FastAPI:
    """Every request traced (the sampling table's zeros and probes aside)."""
    sentry_env(monkeypatch, dsn=receiver.dsn, traces_sample_rate=1.0)
    return telemetry_app(settings)


@pytest.fixture
async def tracing(traced: FastAPI) -> AsyncIterator[AsyncClient]:
    async with running(traced) as http:
        yield http


# -- spans --------------------------------------------------------------------------------------


async def test_a_custom_span_is_a_child_of_its_request_s_span_with_op_name_and_data(
    tracing: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    answer = await tracing.get("/test/telemetry/steps", headers=owner.headers)
    assert answer.json() == {"result": 4}
    settle(receiver)

    step = the_span(receiver, "app.step")
    request = segment_of(receiver, step)
    assert request.name == "tests.sentry.test_telemetry.telemetry_app.<locals>.steps"
    assert step.parent_span_id == request.span_id
    assert step.name == "first step"
    assert step.status in {None, "ok"}  # 2.x leaves a span that ended well without one
    # Data given at the start and data set once the work had run.
    assert {key: step.data.get(key) for key in ("rows", "cached", "result")} == {
        "rows": 3,
        "cached": False,
        "result": 4,
    }
    # The decorators: an async function's span, and inside it a sync function's.
    inner = the_span(receiver, "app.async")
    assert (inner.name, inner.parent_span_id) == ("async helper", step.span_id)
    innermost = the_span(receiver, "app.sync")
    assert (innermost.name, innermost.parent_span_id) == ("sync helper", inner.span_id)
    assert innermost.data["kind"] == "function"


async def test_an_error_inside_a_span_fails_it_and_goes_on(
    tracing: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    answer = await tracing.get("/test/telemetry/failing-step", headers=owner.headers)
    assert answer.status_code == 500
    settle(receiver)
    failed = the_span(receiver, "app.failing")
    assert failed.status in {"internal_error", "error"}  # 2.x's name for it, and 3.x's
    assert failed.parent_span_id == segment_of(receiver, failed).span_id
    event = receiver.wait_for_event(lambda e: e["event_id"] == answer.json()["event_id"])
    assert event["exception"]["values"][-1]["value"] == "inside a span"


async def test_creating_an_item_is_a_span_around_its_insert_and_a_count(
    tracing: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    created = await tracing.post("/api/v1/items", json={"title": "x"}, headers=owner.headers)
    assert created.status_code == 201
    settle(receiver)

    create = the_span(receiver, "item.create")
    assert create.name == "create item"
    request = segment_of(receiver, create)
    assert request.name == "app.api.routes.items.create_item"
    assert create.parent_span_id == request.span_id
    [insert] = [
        span
        for span in sent_spans(receiver)
        if span.op == "db" and (span.name or "").startswith("INSERT INTO items")
    ]
    assert insert.parent_span_id == create.span_id

    [counted] = [metric for metric in sent_metrics(receiver) if metric["name"] == "items.created"]
    assert (counted["type"], counted["value"]) == ("counter", 1.0)
    assert counted["attributes"]["tenant_id"] == str(owner.tenant_id)
    assert counted["attributes"]["user.id"] == str(owner.user_id)
    assert counted["trace_id"] == create.trace_id


async def test_an_unsampled_request_makes_no_span(
    settings: Settings, receiver: EnvelopeReceiver, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentry_env(monkeypatch, dsn=receiver.dsn)  # rate 0: only the table's critical routes
    async with running(telemetry_app(settings)) as http:
        answer = await http.get("/test/telemetry/steps", headers=owner.headers)
        assert answer.json() == {"result": 4}
        created = await http.post("/api/v1/items", json={"title": "x"}, headers=owner.headers)
        assert created.status_code == 201
        settle(receiver)
    made = {"app.step", "app.async", "app.sync", "item.create", "db"}  # by the two requests
    assert [span for span in sent_spans(receiver) if span.op in made] == []
    # Not even a span started and dropped: 3.x reports each unsampled span it drops.
    reports = receiver.items("client_report")
    dropped = [entry for report in reports for entry in report.get("discarded_events", [])]
    assert [entry for entry in dropped if entry.get("category") == "span"] == []
    # The count is not a span's: it is sent whether or not the request is traced.
    assert [metric["name"] for metric in sent_metrics(receiver)] == ["items.created"]


async def test_with_sentry_off_the_helpers_do_nothing_and_get_in_no_way(
    settings: Settings, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentry_env(monkeypatch, dsn="")
    async with running(telemetry_app(settings)) as http:
        answer = await http.get("/test/telemetry/steps", headers=owner.headers)
        assert answer.json() == {"result": 4}
        failed = await http.get("/test/telemetry/failing-step", headers=owner.headers)
        assert failed.json() == {"detail": "Internal Server Error"}
        measured = await http.get("/test/telemetry/measured", headers=owner.headers)
        assert measured.status_code == 200
        created = await http.post("/api/v1/items", json={"title": "x"}, headers=owner.headers)
        assert created.status_code == 201
    with sentry.span("app.step", "outside any request") as step:
        step.set_data(ignored=True)
    assert sync_helper(1) == 2


# -- metrics ------------------------------------------------------------------------------------


async def test_each_kind_of_metric_arrives_with_type_value_unit_and_the_tenant(
    tracing: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    answer = await tracing.get("/test/telemetry/measured", headers=owner.headers)
    assert answer.status_code == 200
    # Outside a request no tenant is known: it is given as an attribute.
    sentry.gauge("tenants.active", 2, tenant_id="outside")
    settle(receiver)

    metrics = {metric["name"]: metric for metric in sent_metrics(receiver)}
    sent = {
        name: (metric["type"], metric["value"], metric.get("unit"))
        for name, metric in metrics.items()
    }
    assert sent == {
        "jobs.started": ("counter", 1.0, None),
        "queue.depth": ("gauge", 7.0, None),
        "job.duration": ("distribution", 12.5, "millisecond"),
        "tenants.active": ("gauge", 2.0, None),
    }
    for name in ("jobs.started", "queue.depth", "job.duration"):
        assert metrics[name]["attributes"]["tenant_id"] == str(owner.tenant_id)
    assert metrics["queue.depth"]["attributes"]["region"] == "eu"
    assert metrics["job.duration"]["attributes"]["kind"] == "import"
    assert metrics["tenants.active"]["attributes"]["tenant_id"] == "outside"
    assert "user.id" not in metrics["tenants.active"]["attributes"]


async def test_with_metrics_off_no_metric_is_sent_even_from_the_sdk_directly(
    settings: Settings, receiver: EnvelopeReceiver, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentry_env(monkeypatch, dsn=receiver.dsn, traces_sample_rate=1.0, enable_metrics="false")
    async with running(telemetry_app(settings)) as http:
        answer = await http.get("/test/telemetry/metric-from-the-sdk", headers=owner.headers)
        assert answer.status_code == 200
        created = await http.post("/api/v1/items", json={"title": "x"}, headers=owner.headers)
        assert created.status_code == 201
        settle(receiver)
    assert receiver.items("trace_metric") == []
    assert the_span(receiver, "item.create").name == "create item"  # spans are not metrics


# -- scrubbing ----------------------------------------------------------------------------------


async def test_no_secret_in_a_span_s_name_or_data_or_a_metric_arrives(
    tracing: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    answer = await tracing.get("/test/telemetry/leaky-step", headers=owner.headers)
    assert answer.status_code == 200
    settle(receiver)

    leaky = the_span(receiver, "app.leaky")
    assert leaky.name == "step password=[Filtered]"
    assert leaky.data["api_key"] == "[Filtered]"
    assert leaky.data["client_secret"] == "[Filtered]"
    assert leaky.data["note"] == "token=[Filtered]"
    [metric] = [metric for metric in sent_metrics(receiver) if metric["name"] == "leaky.steps"]
    assert metric["attributes"]["note"] == "password=[Filtered]"
    assert metric["attributes"]["api_key"] == "[Filtered]"
    for secret in (SECRET, OTHER_SECRET):
        assert secret.encode() not in receiver.raw
