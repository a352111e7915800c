from pathlib import Path
from typing import Any

import pytest

from tools.processes import stop_children_on_sigterm
from tools.template import check_answer_keys

# The combinations, `Rendered` and the session-scoped renders every test module shares.
pytest_plugins = ("tests.rendering",)


def pytest_configure(config: pytest.Config) -> None:
    # A run cancelled with SIGTERM stops the servers and generated suites it started.
    stop_children_on_sigterm()


class CheckedCookies:
    """pytest-cookies' `cookies`, with every bake's extra_context checked by
    check_answer_keys: no test can render the defaults by misspelling an answer."""

    def __init__(self, cookies: Any) -> None:
        self._cookies = cookies

    def bake(self, extra_context: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self._cookies.bake(extra_context=check_answer_keys(extra_context or {}), **kwargs)


@pytest.fixture
def cookies(cookies: Any) -> CheckedCookies:
    return CheckedCookies(cookies)


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory
