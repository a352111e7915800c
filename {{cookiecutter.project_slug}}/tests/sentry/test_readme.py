"""The README's table of SENTRY_* settings is held to app/core/config.py: every setting listed
once, with its real default and the bounds its validation enforces."""

import re

import annotated_types
import pytest
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from app.core.config import Settings, load_settings
from tests.support.helpers import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
ROW = re.compile(r"^\| `(?P<name>SENTRY_[A-Z_]+)` \|(?P<cells>.*)\|$")
CODE = re.compile(r"`([^`]*)`")

SENTRY_FIELDS = {
    name.upper(): field
    for name, field in Settings.model_fields.items()
    if name.startswith("sentry_")
}


def readme_rows() -> dict[str, list[str]]:
    """`SENTRY_X` -> [default, accepted, meaning], from the table rows that start with it."""
    rows: dict[str, list[str]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            name = match["name"]
            assert name not in rows, f"{name} is listed twice"
            rows[name] = [cell.strip() for cell in match["cells"].split(" | ")]
    return rows


def test_every_sentry_setting_is_in_the_readme_and_nothing_else() -> None:
    assert Settings.model_config.get("env_prefix", "") == ""  # so SENTRY_X is sentry_x
    assert SENTRY_FIELDS, "no sentry_* settings found"
    assert sorted(readme_rows()) == sorted(SENTRY_FIELDS)


@pytest.mark.parametrize("name", sorted(SENTRY_FIELDS))
def test_the_default_is_the_settings_default(name: str) -> None:
    default_cell, _, meaning = readme_rows()[name]
    assert meaning, f"{name} has no meaning"
    default = SENTRY_FIELDS[name].default
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default == "":
        assert default_cell.startswith("empty"), (name, default_cell)
        return
    written = CODE.findall(default_cell)[0]
    if isinstance(default, bool):
        assert written == str(default).lower(), name
    else:
        assert float(written) == default, name


@pytest.mark.parametrize("name", sorted(SENTRY_FIELDS))
def test_the_accepted_values_are_those_the_settings_enforce(name: str) -> None:
    accepted = readme_rows()[name][1]
    field = SENTRY_FIELDS[name]
    if field.annotation is bool:
        assert accepted == "`true` / `false`", name
    elif bounds := _bounds(field):
        assert accepted == bounds, name
    else:
        assert accepted, f"{name} says nothing about what it accepts"


def _bounds(field: FieldInfo) -> str:
    words = []
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            words.append(f"from `{rule.ge:g}`")
        elif isinstance(rule, annotated_types.Gt):
            words.append(f"over `{rule.gt:g}`")
        elif isinstance(rule, annotated_types.Le):
            words.append(f"up to `{rule.le:g}`")
        elif isinstance(rule, annotated_types.Lt):
            words.append(f"below `{rule.lt:g}`")
    return " ".join(words)


@pytest.mark.parametrize("name", sorted(n for n, f in SENTRY_FIELDS.items() if _bounds(f)))
def test_the_documented_bounds_are_accepted_and_just_past_them_refused(name: str) -> None:
    field = SENTRY_FIELDS[name]
    for rule in field.metadata:
        for bound, inside in (("ge", True), ("le", True), ("gt", False), ("lt", False)):
            if (value := getattr(rule, bound, None)) is None:
                continue
            problems = load_settings(**{name.lower(): value}).sentry_problems
            assert (not problems) is inside, (name, bound, value, problems)
            past = value - 0.001 if bound in {"ge", "gt"} else value + 0.001
            problems = load_settings(**{name.lower(): past}).sentry_problems
            assert problems, (name, bound, past)
            assert problems[0].startswith(f"{name}: "), problems


def test_the_documented_dsn_shape_is_what_the_settings_accept() -> None:
    shape = CODE.findall(readme_rows()["SENTRY_DSN"][1])[0]
    assert shape == "https://PUBLIC_KEY@HOST/PROJECT_ID"
    example = shape.replace("PUBLIC_KEY", "abc123").replace("HOST", "o1.ingest.sentry.io")
    assert load_settings(sentry_dsn=example.replace("PROJECT_ID", "42")).sentry_problems == []
    refused = load_settings(sentry_dsn=example.replace("PROJECT_ID", "project")).sentry_problems
    assert refused == ["SENTRY_DSN: must end with the numeric project id: https://KEY@HOST/ID"]
