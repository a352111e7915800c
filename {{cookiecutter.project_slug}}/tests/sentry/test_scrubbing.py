"""The callbacks that shape every event, tested directly: an exception inside one of them
would make the SDK drop the event silently, so each rule is pinned here as well as on the
wire (tests/sentry/test_wire.py)."""

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import (
    sentry,
    sentry_integration,
    sentry_queries,
    sentry_repeats,
    sentry_sampling,
    sentry_scrubbing,
)
from app.sentry_scrubbing import FILTERED

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdef123456", f"Authorization: {FILTERED}"),
        ("sent bearer abcdef123456 upstream", f"sent bearer {FILTERED} upstream"),
        (f"token {JWT} refused", f"token {FILTERED} refused"),
        ("password=hunter2&page=2", f"password={FILTERED}&page=2"),
        ("Form(user='ada', passwd='hunter 2')", f"Form(user='ada', passwd='{FILTERED}')"),
        ('{"client_secret": "s3cr3t value"}', '{"client_secret": "' + FILTERED + '"}'),
        ("apiKey: abc123, next", f"apiKey: {FILTERED}, next"),
        ("postgresql://app:pa55@db:5432/app", f"postgresql://{FILTERED}@db:5432/app"),
        # Written unencoded, a password may hold any URL-reserved character: up to the last @.
        (
            "upstream https://svc:Q9/?#:%+@é@db.internal/x failed",
            f"upstream https://{FILTERED}@db.internal/x failed",
        ),
        ("clone https://ghp_Q9token@github.com/o/r", f"clone https://{FILTERED}@github.com/o/r"),
        ("http://testserver/api/v1/items?next=/x", "http://testserver/api/v1/items?next=/x"),
        ("card 4111 1111 1111 1111 declined", f"card {FILTERED} declined"),
        ("card 4111-1111-1111-1111", f"card {FILTERED}"),
        ("order 4111111111111112 (Luhn fails)", "order 4111111111111112 (Luhn fails)"),
        # A UUID's leading digits ("22962468-1422-4") pass the Luhn check one time in ten.
        ("user 22962468-1422-4e7a-b8fd-97572f6e3f44", "user 22962468-1422-4e7a-b8fd-97572f6e3f44"),
        ("id 00000000-0000-0000-0000-000000000000", "id 00000000-0000-0000-0000-000000000000"),
        (
            "tenant abcdefab-4111-1111-1111-1111abcdefab",  # digit groups of an id, Luhn-valid
            "tenant abcdefab-4111-1111-1111-1111abcdefab",
        ),
        ("mail ada@example.com now", f"mail {FILTERED} now"),
        ("from 203.0.113.7:4321", f"from {FILTERED}:4321"),
        ("from 2001:db8::1 at 14:16:33", f"from {FILTERED} at 14:16:33"),
        ("version 1.2.3 of 999.1.1.1", "version 1.2.3 of 999.1.1.1"),
        ("author=Ada tenant_id=42", "author=Ada tenant_id=42"),
        ("already token=[Filtered]", "already token=[Filtered]"),
        ("Authorization: Token abc123def", f"Authorization: {FILTERED}"),
        ("the api key: k-123 expired", f"the api key: {FILTERED} expired"),
        ("Form(password='a\\'b\"c-tail')", f"Form(password='{FILTERED}')"),
        ('b\'{"password":"x\\"TAIL"}\'', 'b\'{"password":"' + FILTERED + "\"}'"),
        ("chef@café.example signed up", f"{FILTERED} signed up"),
        ("release acme_backend@0.1.0+4f2a9c1d3e5b", "release acme_backend@0.1.0+4f2a9c1d3e5b"),
        ("write to ops@mail.example.co.uk today", f"write to {FILTERED} today"),
        (
            "GET /cb?next=%2Fx%3Ftoken%3DSECRET&email=ann%40example.com",
            f"GET /cb?next=/x?token={FILTERED}&email={FILTERED}",
        ),
        ("client 2001:db8::7:51234 connected", f"client {FILTERED}:51234 connected"),
        ("no secret in 100%", "no secret in 100%"),
        # Keys chained before a value are masked with it: none leaves its value behind.
        ("dsn: password: hunter2", f"dsn: {FILTERED}"),
        ('note-dsn: {"token": "a b"}', f"note-dsn: {FILTERED}}}"),
        ("secret=password=hunter2", f"secret={FILTERED}"),
        ("password=hunter2: retried", f"password={FILTERED} retried"),
        ("password=Q9pass_codeQ9x:tail rest", f"password={FILTERED} rest"),
    ],
)
def test_secrets_are_recognised_by_their_shape(text: str, expected: str) -> None:
    assert sentry_scrubbing.scrub_text(text) == expected


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Passwd",
        "new_password",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "client_secret",
        "refresh_token",
        "access-token",
        "Authorization",
        "Cookie",
        "sessionid",
        "csrftoken",
        "ssn",
        "card_number",
        "cardNumber",
        "cvv",
        "iban",
        "private_key",
        "SENTRY_DSN",
        "passcode",
        "otp",
        "otp_code",
        "totp",
        "mfa_code",
        "pin",
        # The SDK's own exact names (2.x applied them before our pass; 3.x has none).
        "email",
        "X-Forwarded-For",
        "remote_addr",
        "PHPSESSID",
    ],
)
def test_sensitive_keys_in_any_case_and_spelling(key: str) -> None:
    assert sentry_scrubbing.is_sensitive_key(key)


@pytest.mark.parametrize(
    "key", ["author", "tenant_id", "user_id", "title", "page", "emails", "footprint", "shipping"]
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not sentry_scrubbing.is_sensitive_key(key)


def test_query_strings_keep_their_shape() -> None:
    scrubbed = sentry_scrubbing.scrub_query_string("page=2&api_key=abc&q=ada%40example.com&token=")
    assert scrubbed == f"page=2&api_key={FILTERED}&q={FILTERED}&token={FILTERED}"


def _every_pass(text: str) -> str:
    """scrub_text without the cheap tests that let most strings skip most passes."""
    module = sentry_scrubbing
    text = module._URL_CREDENTIALS.sub(f"{FILTERED}@", text)
    text = module._AUTH_SCHEME.sub(lambda match: f"{match.group(1)} {FILTERED}", text)
    text = module._JWT.sub(FILTERED, text)
    text = module._SECRET_PAIR.sub(module._mask_pair, text)
    text = module._CARD_CANDIDATE.sub(module._mask_card, text)
    text = module._IPV4_CANDIDATE.sub(module._mask_ip, text)
    text = module._IPV6_CANDIDATE.sub(module._mask_ip, text)
    return module._EMAIL.sub(FILTERED, text)


def _every_pass_decoded_too(text: str) -> str:
    scrubbed = _every_pass(text)
    if "%" in scrubbed:
        decoded = unquote(scrubbed)
        if (rescrubbed := _every_pass(decoded)) != decoded:
            return rescrubbed
    return scrubbed


# Pieces of what the passes look for, in the spellings the tests that skip them must not miss:
# any case, the letters (?i) takes for ASCII ones, separators inside words.
_PIECES = st.sampled_from(
    [
        *("password", "PASSWORD", "pa\u017f\u017fword", "pass word", "api key", "ap\u0131_key"),
        *("api\u3000key", "credent\u0130al", "auth", "author", "Bearer ", "basic ", "token"),
        *("eyJhbGciOiJI.eyJzdWIi.c2ln", "=", ": ", '"', "'", "{", "[", ",", "&", " ", "\t", "-"),
        *("4111 1111 1111 1111", "4111111111111111", "1", "10.0.0.7", "2001:db8::1", "::"),
        *(":5432", "ada@example.com", "@", "https://", "user:pw@", "%40", "%3D", "%", "\u212a"),
        *("x", "dsn", "cvv", "session", "[Filtered]", "k-123", "digest ", "\n", "_", "."),
    ]
)


@given(st.lists(_PIECES, max_size=12).map("".join) | st.text(max_size=60))
def test_the_cheap_tests_never_change_what_is_scrubbed(text: str) -> None:
    # Most strings skip most passes (and known clean ones all of them): that may only ever save
    # time, never let a secret through.
    assert sentry_scrubbing.scrub_text(text) == _every_pass_decoded_too(text)
    assert sentry_scrubbing.scrub_text(text) == _every_pass_decoded_too(text)  # remembered


def test_the_fold_keeps_every_spelling_the_sensitive_words_match() -> None:
    # The words are looked for in a folded copy: every character that (?i) takes for an ASCII
    # letter folds to that letter, and every separator a word may hold folds away.
    letter = re.compile("(?i)[a-z]")
    separator = re.compile(r"[\s_.\-]")
    for code in range(0x110000):
        char = chr(code)
        if letter.fullmatch(char):
            folded = char.translate(sentry_scrubbing._FOLD)
            assert folded in "abcdefghijklmnopqrstuvwxyz", hex(code)
            assert re.fullmatch(f"(?i){folded}", char), hex(code)
        elif separator.fullmatch(char):
            assert char.translate(sentry_scrubbing._FOLD) == "", hex(code)


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "0" * 32,
        "level": "error",
        "release": "acme@1.0+4111111111111111",
        "transaction": "app.api.routes.items.create_item",
        "user": {"id": "u-1", "email": "ada@example.com"},
        "tags": {"tenant_id": "t-1", "api_key": "tag-secret"},
        "contexts": {"tenant": {"id": "t-1"}, "payment": {"card_number": "4111111111111111"}},
        "request": {
            "url": "http://testserver/api/v1/items",
            "query_string": "token=abc&page=2",
            "headers": {"X-Auth-Token": "hdr-secret", "Accept": "application/json"},
            "data": {"nested": [{"Password": "body-secret"}], "title": "ok"},
        },
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": "bad credentials: password=exc-secret",
                    "stacktrace": {
                        "frames": [{"function": "f", "vars": {"api_secret": "'var-secret'"}}]
                    },
                }
            ]
        },
        "breadcrumbs": {"values": [{"message": "GET /x?token=crumb-secret", "data": {}}]},
        "logentry": {"message": "login %s", "params": ["Bearer param-secret-123"]},
    }
    return event | overrides


def test_an_event_loses_its_secrets_and_keeps_what_debugging_needs() -> None:
    scrubbed = sentry_scrubbing.scrub_event(_event())
    flat = repr(scrubbed)
    for secret in (
        "tag-secret",
        "hdr-secret",
        "body-secret",
        "exc-secret",
        "var-secret",
        "crumb-secret",
        "param-secret",
        "ada@example.com",
    ):
        assert secret not in flat
    assert scrubbed["contexts"]["payment"]["card_number"] == FILTERED
    assert scrubbed["request"]["query_string"] == f"token={FILTERED}&page=2"
    assert scrubbed["request"]["headers"]["Accept"] == "application/json"
    assert scrubbed["request"]["data"]["title"] == "ok"
    assert scrubbed["user"] == {"id": "u-1"}
    assert scrubbed["tags"]["tenant_id"] == "t-1"
    assert scrubbed["exception"]["values"][0]["type"] == "ValueError"
    # Identifiers the scrubber must not garble, however they look.
    assert scrubbed["event_id"] == "0" * 32
    assert scrubbed["release"] == "acme@1.0+4111111111111111"


# Drawn as hex text rather than st.uuids(): uniformly random ids rarely hold the long digit runs
# that look like card numbers; text draws favour them (all zeros, repeated digits).
uuids = st.text("0123456789abcdef", min_size=32, max_size=32).map(uuid.UUID)


@given(user_id=uuids, tenant_id=uuids, item_id=uuids)
def test_ids_survive_scrubbing_whatever_their_digits(
    user_id: uuid.UUID, tenant_id: uuid.UUID, item_id: uuid.UUID
) -> None:
    event = {
        "user": {"id": str(user_id)},
        "tags": {"tenant_id": str(tenant_id)},
        "contexts": {"tenant": {"id": str(tenant_id)}},
        "request": {"url": f"http://testserver/api/v1/items/{item_id}"},
        "message": f"item {item_id} of tenant {tenant_id} not found",
    }
    assert sentry_scrubbing.scrub_event(event) == event


def test_the_user_email_survives_only_when_opted_in() -> None:
    event = _event(logentry={"message": "invited bob@example.com", "params": []})
    scrubbed = sentry_scrubbing.scrub_event(event, keep_user_email=True)
    assert scrubbed["user"] == {"id": "u-1", "email": "ada@example.com"}
    assert scrubbed["logentry"]["message"] == f"invited {FILTERED}"  # only the user's own stays


def test_a_log_records_arguments_are_not_sent_beside_its_message() -> None:
    # The logging integration sends record.args as logentry.params: "password=%s" % pw
    # arrives formatted and masked, and pw itself must not ride along.
    event = {
        "logentry": {
            "message": "login retried with password=%s",
            "params": ["hunter2-Q9"],
            "formatted": "login retried with password=hunter2-Q9",
        }
    }
    assert sentry_scrubbing.scrub_event(event)["logentry"] == {
        "message": f"login retried with password={FILTERED}",  # a placeholder looks a value
        "formatted": f"login retried with password={FILTERED}",
    }


def test_the_user_is_reduced_to_its_id() -> None:
    user = {"id": "u-1", "username": "ada", "name": "Ada L", "ip_address": "203.0.113.7"}
    assert sentry_scrubbing.scrub_event({"user": user})["user"] == {"id": "u-1"}


def test_keys_are_scrubbed_too_and_meta_follows_them() -> None:
    # The SDK's _meta mirrors the event's keys down to what it trimmed: a user-supplied key
    # (an e-mail used as a JSON key) would otherwise leave through _meta.
    event = {
        "extra": {"ada@example.com": "x", "note": "kept"},
        "_meta": {"extra": {"ada@example.com": {"": {"len": 3000}}}},
    }
    assert sentry_scrubbing.scrub_event(event) == {
        "extra": {FILTERED: "x", "note": "kept"},
        "_meta": {"extra": {FILTERED: {"": {"len": 3000}}}},
    }


def test_a_callers_baggage_keeps_only_scrubbed_sampling_fields() -> None:
    trace = "771a43a4192642f0b136d5159a501700-b7ad6b7169203331-1"
    scope = {
        "headers": [
            (b"sentry-trace", trace.encode()),
            (
                b"baggage",
                b"sentry-trace_id=771a43a4192642f0b136d5159a501700,sentry-user_id=Q9user,"
                b"sentry-transaction=GET%20/u/ada%40example.com,vendor=keep-Q9",
            ),
            (b"authorization", b"Bearer Q9Q9Q9Q9Q9"),
        ]
    }
    assert sentry_integration._trace_headers(scope) == {
        "sentry-trace": trace,
        "baggage": "sentry-trace_id=771a43a4192642f0b136d5159a501700,"
        f"sentry-transaction=GET%20%2Fu%2F{FILTERED.replace('[', '%5B').replace(']', '%5D')},"
        "vendor=keep-Q9",
    }


def test_a_sentry_log_loses_its_template_arguments() -> None:
    log = {
        "body": "retry with password=Q9pw",
        "attributes": {
            "sentry.message.template": "retry with password={pw}",
            "sentry.message.parameter.pw": "Q9pw",
            "tier": "gold",
        },
    }
    assert sentry_integration.before_send_telemetry(log, {}) == {
        "body": f"retry with password={FILTERED}",
        # The placeholder looks like a value too (up to its "}").
        "attributes": {
            "sentry.message.template": f"retry with password={FILTERED}}}",
            "tier": "gold",
        },
    }


def test_the_sampling_context_keeps_only_its_fields() -> None:
    dsc = {"trace_id": "771a43a4192642f0b136d5159a501700", "user_id": "Q9", "segment": "vip"}
    event = {"contexts": {"trace": {"dynamic_sampling_context": dsc}}}
    assert sentry_scrubbing.scrub_event(event)["contexts"]["trace"]["dynamic_sampling_context"] == {
        "trace_id": "771a43a4192642f0b136d5159a501700"
    }


def test_a_metrics_attributes_are_scrubbed() -> None:
    metric = {
        "name": "orders.placed",
        "type": "counter",
        "value": 1.0,
        "trace_id": "771a43a4192642f0b136d5159a501700",
        "attributes": {"api_key": "Q9key", "note": "sent to ada@example.com", "tier": "gold"},
    }
    scrubbed = sentry_integration.before_send_telemetry(metric, {})
    assert scrubbed["attributes"] == {
        "api_key": FILTERED,
        "note": f"sent to {FILTERED}",
        "tier": "gold",
    }
    assert scrubbed["trace_id"] == metric["trace_id"]


class _Unscrubbable(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("cannot walk this")


@pytest.mark.parametrize(
    "hook",
    [
        sentry_integration.before_send,
        sentry_integration.before_send_transaction,
        sentry_integration.before_send_telemetry,
    ],
)
def test_what_cannot_be_scrubbed_is_dropped_not_sent(hook: Any) -> None:
    assert hook(_event(extra=_Unscrubbable(secret="x")), {}) is None


def test_a_domain_error_brings_its_own_fingerprint() -> None:
    class QuotaExceededError(Exception):
        sentry_fingerprint = sentry.fingerprint("quota-exceeded", 42)

    error = QuotaExceededError()
    event = sentry_integration.before_send(_event(), {"exc_info": (type(error), error, None)})
    assert event is not None
    assert event["fingerprint"] == ["quota-exceeded", "42"]


@pytest.mark.parametrize(
    ("path", "rate"),
    [
        ("/health", 0.0),
        ("/health/ready", 0.0),
        ("/api/v1/auth/token", 1.0),
        ("/api/v1/tenants", 1.0),
        ("/api/v1/items", 0.25),
        ("/health/deep", 0.25),
    ],
)
def test_trace_rates_come_from_the_table(path: str, rate: float) -> None:
    assert sentry_sampling.trace_rate(path, default_rate=0.25) == rate


def test_reads_no_rule_names_are_traced_at_a_fifth_of_the_rate() -> None:
    rate = sentry_sampling.trace_rate
    assert rate("/api/v1/items", 0.25, "GET") == rate("/api/v1/items", 0.25, "HEAD") == 0.05
    assert rate("/api/v1/items", 0.25, "POST") == rate("/api/v1/items/1", 0.25, "DELETE") == 0.25
    assert rate("/api/v1/items", 1.0, "GET") == 1.0  # 1 traces everything
    assert rate("/api/v1/auth/token", 0.25, "GET") == 1.0  # the table first
    assert rate("/health", 0.25, "HEAD") == 0.0
    sampler = sentry_integration.traces_sampler(0.25)
    read = {"path": "/api/v1/items", "method": "GET"}
    assert sampler({"asgi_scope": read}) == 0.05
    assert sampler({"asgi_scope": read, "parent_sampled": True}) == 1.0  # the trace stays whole


def test_a_distributed_trace_keeps_its_parent_decision_except_for_table_rates() -> None:
    sampler = sentry_integration.traces_sampler(0.25)
    assert sampler({"asgi_scope": {"path": "/api/v1/items"}, "parent_sampled": True}) == 1.0
    assert sampler({"asgi_scope": {"path": "/api/v1/items"}, "parent_sampled": False}) == 0.0
    assert sampler({"asgi_scope": {"path": "/health"}, "parent_sampled": True}) == 0.0
    assert sampler({"asgi_scope": {"path": "/api/v1/items"}}) == 0.25


def _http_scope(path: str, sentry_trace: str | None = None) -> dict[str, Any]:
    headers = [(b"sentry-trace", sentry_trace.encode())] if sentry_trace else []
    return {"type": "http", "method": "GET", "path": path, "headers": headers}


def test_the_request_middleware_follows_the_callers_sampling_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SentryRequestContext decides before it builds anything; the table's 0 and 1 still win.
    monkeypatch.setattr(sentry_integration.state, "traces_sample_rate", 0.25)
    trace = "771a43a4192642f0b136d5159a501700-b3e5d7e3d1f2a4c6"
    assert sentry_integration._sampled(_http_scope("/api/v1/items", f"{trace}-1"))
    assert not sentry_integration._sampled(_http_scope("/api/v1/items", f"{trace}-0"))
    assert not sentry_integration._sampled(_http_scope("/health", f"{trace}-1"))
    assert sentry_integration._sampled(_http_scope("/api/v1/auth/token", f"{trace}-0"))


@pytest.mark.parametrize(
    "crumb",
    [
        {"category": "uvicorn.access", "message": '1.2.3.4:5 - "GET /items HTTP/1.1" 200'},
        {"category": "app.probe", "message": "probe GET /health answered"},
        {"category": "httplib", "data": {"url": "http://10.0.0.2:8000/health?deep=1"}},
    ],
)
def test_breadcrumbs_about_probes_are_dropped(crumb: dict[str, Any]) -> None:
    assert sentry_integration.before_breadcrumb(crumb, {}) is None


def test_other_breadcrumbs_are_kept() -> None:
    crumb = {"category": "app.records", "message": "read /api/v1/health-records"}
    assert sentry_integration.before_breadcrumb(crumb, {}) == crumb


def test_helpers_are_harmless_while_sentry_is_off() -> None:
    assert not sentry_integration.state.enabled
    sentry.set_user_context("u", "t", email="ada@example.com")
    sentry.add_breadcrumb("step", answer=42)
    sentry.set_tag("k", "v")
    sentry.set_context("c", {"k": "v"})
    assert sentry.capture_exception(ValueError("x")) is None
    assert sentry.capture_message("x", "warning") is None


def test_a_repeated_error_spends_its_budget_then_answers_with_the_last_event() -> None:
    budget = sentry_repeats.RepeatBudget(burst=3, per_minute=60)
    kind = ("BoomError", "kaboom", "app.py", 1)
    for number in range(3):
        assert budget.last_event_if_over_budget(kind, now=100.0) is None
        budget.sent(kind, f"event-{number}")
    assert budget.last_event_if_over_budget(kind, now=100.0) == "event-2"
    assert budget.last_event_if_over_budget(("Other", "", "app.py", 2), now=100.0) is None
    assert budget.last_event_if_over_budget(kind, now=101.0) is None  # one a second comes back


def test_the_repeat_budget_forgets_the_least_recently_seen_kind_first() -> None:
    budget = sentry_repeats.RepeatBudget(burst=1, per_minute=0, kinds=2)
    storm, quiet, newcomer = ("Storm", "", "a.py", 1), ("Quiet", "", "b.py", 2), ("New", "", "c", 3)
    for kind in (storm, quiet):
        assert budget.last_event_if_over_budget(kind, now=0.0) is None
        budget.sent(kind, f"{kind[0]}-1")
    assert budget.last_event_if_over_budget(storm, now=1.0) == "Storm-1"  # seen again
    assert budget.last_event_if_over_budget(newcomer, now=2.0) is None  # one kind too many
    assert budget.last_event_if_over_budget(storm, now=3.0) == "Storm-1"  # still limited
    assert budget.last_event_if_over_budget(quiet, now=4.0) is None  # forgotten: a fresh budget


def test_noted_queries_become_the_sdks_breadcrumbs_in_time_order_as_many_as_it_keeps() -> None:
    most = sentry_queries.MAX_BREADCRUMBS
    log = sentry_queries.QueryLog()
    for number in range(most + 5):
        log.note(f"SELECT {number}", many=number == most + 4)
    early = {"message": "start", "category": "app", "timestamp": datetime(2000, 1, 1, tzinfo=UTC)}
    event: dict[str, Any] = {"breadcrumbs": {"values": [early]}}
    log.add_to(event)
    crumbs = event["breadcrumbs"]["values"]
    assert len(crumbs) == most
    assert [crumb["message"] for crumb in crumbs] == [f"SELECT {n}" for n in range(5, most + 5)]
    assert crumbs[-1]["data"] == {"db.executemany": True}
    assert crumbs[0] == {
        "message": "SELECT 5",
        "category": "query",
        "data": {},
        "timestamp": crumbs[0]["timestamp"],
        "type": "default",
    }
    assert [crumb["timestamp"] for crumb in crumbs] == sorted(c["timestamp"] for c in crumbs)


def test_a_noted_query_about_a_probe_is_noise_as_before_breadcrumb_says() -> None:
    log = sentry_queries.QueryLog()
    log.note("SELECT '/health' AS probe", many=False)
    log.note("SELECT 1", many=False)
    event: dict[str, Any] = {}
    log.add_to(event)
    assert [crumb["message"] for crumb in event["breadcrumbs"]["values"]] == ["SELECT 1"]


@pytest.mark.parametrize("key", ["url", "url.full", "http.url"])
def test_a_full_urls_query_and_fragment_are_read_as_query_strings(key: str) -> None:
    # sentry-sdk 3 puts an outgoing call's whole URL in its breadcrumb: "+" is a space there,
    # so "bearer+<token>" is a bearer token, as it is under http.query.
    url = "https://api.example.com/v1/search?q=shoes&comment=bearer+Zq9xY8wV7u&page=2#t=a+b"
    scrubbed = sentry_scrubbing.scrub_event({"breadcrumbs": {"values": [{"data": {key: url}}]}})
    sent = scrubbed["breadcrumbs"]["values"][0]["data"][key]
    assert "Zq9xY8wV7u" not in sent
    assert sent.startswith("https://api.example.com/v1/search?q=shoes&comment=bearer+")
    assert sent.endswith("&page=2#t=a+b")


def test_a_breadcrumb_whose_url_does_not_parse_is_kept() -> None:
    # sentry-sdk 3 masks a URL's credentials as "[Filtered]:[Filtered]@", which urlsplit takes
    # for a bracketed IPv6 host and refuses: the breadcrumb was dropped with an SDK error.
    crumb = {"category": "httplib", "data": {"url": "http://[Filtered]:[Filtered]@db:5/x?q=1"}}
    assert sentry_integration.before_breadcrumb(crumb, {}) is crumb
