"""Schemathesis against the real server: every operation of the OpenAPI schema gets generated
valid and invalid requests (its coverage cases, then Hypothesis fuzzing), mostly as a real
tenant owner, now and then with no token or a forged one. No answer may be a 5xx, or anything
the schema does not document (status, content type, body, headers), and the schema must tell
exactly what is taken: a request it allows is not refused as malformed, one it forbids is."""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import requests
import schemathesis
from httpx import AsyncClient
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app.core.config import Settings, load_settings
from app.core.security import create_access_token
from app.main import create_app
from tests.support.databases import BACKEND
from tests.support.helpers import sign_up
from tests.support.live_server import LiveServer, fresh_database

# Built from the app factory at collection (schemathesis makes one test per operation of it);
# the `live_api` fixture checks that the running server serves exactly this schema.
SCHEMA = schemathesis.openapi.from_dict(create_app(load_settings(environment="test")).openapi())
Case = schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,  # a request the schema forbids must get a 4xx
    positive_data_acceptance,  # ...and one it allows no 400 or 422: the schema tells it all
    unsupported_method,  # a method the path does not serve gets a 405 with `Allow`...
    allow_header_conformance,  # ...naming every method the path documents
    ignored_auth,  # a 2xx to a secured operation is retried without and with a bad token
]

# Each example is a real HTTP exchange, and a valid sign-up or invitation an argon2 hash as
# well, on top of schemathesis's ~330 coverage cases: a third of the profile's examples per
# operation keeps the default run under 20 s on each backend; `make test-long` sends 333.
EXAMPLES_PER_OPERATION = max(10, hypothesis_settings().max_examples // 3)
# Without a valid token nearly every request stops at the 401: a few examples tell as much.
EXAMPLES_WITHOUT_A_VALID_TOKEN = max(5, hypothesis_settings().max_examples // 12)

OWNER, ANONYMOUS, FORGED = "owner", "anonymous", "forged"


class LiveAPI:
    """The running server, a connection to it kept alive between requests, and the headers
    each kind of caller sends."""

    def __init__(
        self, url: str, http: requests.Session, headers: dict[str, str], forged_token: str
    ) -> None:
        self.url = url
        self.http = http
        self.headers_of = {
            OWNER: headers,
            ANONYMOUS: {},
            FORGED: {"Authorization": f"Bearer {forged_token}"},
        }

    def send(self, case: Case, caller: str) -> None:
        case.call_and_validate(
            base_url=self.url, session=self.http, headers=self.headers_of[caller], checks=CHECKS
        )

    def new_item_id(self) -> str:
        """A new item of the owner's."""
        response = self.http.post(
            f"{self.url}/api/v1/items", json={"title": "fuzzed"}, headers=self.headers_of[OWNER]
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Under pytest 9.2, schemathesis (4.32) names an unparametrized item after the test
    # function alone, so every operation would share one node id (and --lf, the progress
    # counter and reports would mix them up). Parametrizing the server by its database backend
    # gives each its own: test_...[GET /health][sqlite].
    if "live_api" in metafunc.fixturenames:
        metafunc.parametrize("live_api", [BACKEND], indirect=True, scope="module")


@pytest.fixture(scope="module")
async def live_api(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveAPI]:
    async with fresh_database(tmp_path_factory.mktemp("fuzz")) as database_url:
        app = create_app(settings.model_copy(update={"database_url": database_url}))
        with LiveServer(app) as server:
            async with AsyncClient(base_url=server.url) as http:
                served = await http.get("/openapi.json")
                assert served.json() == SCHEMA.raw_schema
                owner = await sign_up(http)
            # The owner's own ids, signed with a key the server does not have.
            forged = create_access_token(
                owner.user_id, owner.tenant_id, uuid.uuid4().hex * 2, timedelta(minutes=5)
            )
            with requests.Session() as session:
                yield LiveAPI(server.url, session, owner.headers, forged)


@SCHEMA.parametrize()
@hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION)
def test_no_request_of_the_owner_gets_a_server_error_or_an_undocumented_answer(
    case: Case, live_api: LiveAPI
) -> None:
    if _is_valid_item_request(case):
        # A generated id would only ever get the 404 (tests/test_items.py covers that one).
        case.path_parameters["item_id"] = live_api.new_item_id()
    live_api.send(case, OWNER)


@SCHEMA.given(caller=st.sampled_from([ANONYMOUS, FORGED]))
@SCHEMA.parametrize()
@hypothesis_settings(max_examples=EXAMPLES_WITHOUT_A_VALID_TOKEN)
def test_no_request_without_a_valid_token_gets_a_server_error_or_an_undocumented_answer(
    case: Case, caller: str, live_api: LiveAPI
) -> None:
    live_api.send(case, caller)


def _is_valid_item_request(case: Case) -> bool:
    # Only in a request meant to be valid: an invalid one may owe its 4xx to the id itself.
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    return positive and "item_id" in (case.path_parameters or {})
