"""The Sentry guide (docs/sentry.md) and the docs beside it are held to the code: every
SENTRY_* setting listed once with its real default and bounds, the sampling table as
TRACE_RULES has it, each number the docs take from the code, the scrubbing examples as the
scrubbers produce them, the reasons Sentry gives for staying off, and every link and file name
pointing to something the project has."""

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import annotated_types
import pytest
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from app.sentry import SentrySettings, load_sentry_settings
from app.sentry_integration import MAX_BODY_BYTES
from app.sentry_repeats import RepeatBudget, error_kind
from app.sentry_sampling import QUIET_PATHS, READ_METHODS, READ_SHARE, TRACE_RULES, trace_rate
from app.sentry_scrubbing import is_sensitive_key, scrub_event, scrub_query_string, scrub_text
from tests.support.helpers import PROJECT_ROOT
from tools.sentry_dev.receiver import FAULTS, PROJECT_ID, PUBLIC_KEY

GUIDE = PROJECT_ROOT / "docs" / "sentry.md"
README = PROJECT_ROOT / "README.md"
DOCS = [README, *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]
ROW = re.compile(r"^\| `(?P<name>SENTRY_[A-Z_]+)` \|(?P<cells>.*)\|$")
CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)

# The class the SENTRY_* settings are read from: moving them elsewhere changes this line only.
SENTRY_SETTINGS = SentrySettings
_PREFIX = str(SENTRY_SETTINGS.model_config.get("env_prefix", ""))
SENTRY_FIELDS = {
    f"{_PREFIX}{name}".upper(): field
    for name, field in SENTRY_SETTINGS.model_fields.items()
    if f"{_PREFIX}{name}".upper().startswith("SENTRY_")
}


def sentry_problems(**env: str) -> list[str]:
    """What start-up reports for these SENTRY_* variables (a bad value turns Sentry off)."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY_")}
    with mock.patch.dict(os.environ, clean | env, clear=True):
        loaded = load_sentry_settings(_env_file=None)
    return loaded if isinstance(loaded, list) else []


def default_of(name: str) -> object:
    default = SENTRY_FIELDS[name].default
    return default.get_secret_value() if isinstance(default, SecretStr) else default


def guide_section(title: str) -> str:
    """The guide's text under the `## ` heading that starts with `title`."""
    sections = re.split(r"^## ", GUIDE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    found = [section for section in sections if section.startswith(title)]
    assert len(found) == 1, f"the guide has no single section {title!r}"
    return found[0]


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of every table in `markdown`, as lists of cells (headers left out)."""
    lines = [line.strip() for line in markdown.splitlines()]
    rows = []
    for at, line in enumerate(lines):
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        if at + 1 < len(lines) and lines[at + 1].startswith("|-"):
            continue  # a header
        rows.append([cell.strip() for cell in line[1:-1].split("|")])
    return rows


def readme_rows() -> dict[str, list[str]]:
    """`SENTRY_X` -> [default, accepted, meaning], from the guide's settings table."""
    rows: dict[str, list[str]] = {}
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            name = match["name"]
            assert name not in rows, f"{name} is listed twice"
            rows[name] = [cell.strip() for cell in match["cells"].split(" | ")]
    return rows


# --- the settings table ------------------------------------------------------------------------


def test_every_sentry_setting_is_in_the_guide_and_nothing_else() -> None:
    assert SENTRY_FIELDS, "no SENTRY_* settings found"
    assert sorted(readme_rows()) == sorted(SENTRY_FIELDS)


@pytest.mark.parametrize("name", sorted(SENTRY_FIELDS))
def test_the_default_is_the_settings_default(name: str) -> None:
    default_cell, _, meaning = readme_rows()[name]
    assert meaning, f"{name} has no meaning"
    default = default_of(name)
    if default == "":
        assert default_cell.startswith("empty"), (name, default_cell)
        return
    written = CODE.findall(default_cell)[0]
    if isinstance(default, bool):
        assert written == str(default).lower(), name
    else:
        assert isinstance(default, int | float)
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
            problems = sentry_problems(**{name: str(value)})
            assert (not problems) is inside, (name, bound, value, problems)
            past = value - 0.001 if bound in {"ge", "gt"} else value + 0.001
            problems = sentry_problems(**{name: str(past)})
            assert problems, (name, bound, past)
            assert problems[0].startswith(f"{name}: "), problems


def test_the_documented_dsn_shape_is_what_the_settings_accept() -> None:
    shape = CODE.findall(readme_rows()["SENTRY_DSN"][1])[0]
    assert shape == "https://PUBLIC_KEY@HOST/PROJECT_ID"
    example = shape.replace("PUBLIC_KEY", "abc123").replace("HOST", "o1.ingest.sentry.io")
    assert sentry_problems(SENTRY_DSN=example.replace("PROJECT_ID", "42")) == []
    refused = sentry_problems(SENTRY_DSN=example.replace("PROJECT_ID", "project"))
    assert refused == ["SENTRY_DSN: must end with the numeric project id: https://KEY@HOST/ID"]


# --- sampling ----------------------------------------------------------------------------------

RATE_WORDS = {"never": 0.0, "always": 1.0}


def test_the_sampling_table_is_trace_rules_in_order() -> None:
    *ruled, reads, other = table_rows(guide_section("Sampling and noise"))
    assert len(ruled) == len(TRACE_RULES), "one row per rule, then reads, then 'any other'"
    for (paths_cell, traced, why), rule in zip(ruled, TRACE_RULES, strict=True):
        paths = CODE.findall(paths_cell)
        assert paths, paths_cell
        for path in paths:  # decided by this rule, not by an earlier one
            assert next(r for r in TRACE_RULES if r.path.fullmatch(path)) is rule, path
        alternatives = rule.path.pattern.split("|")
        literal = [re.sub(r"\\(.)", r"\1", alternative) for alternative in alternatives]
        if [re.escape(path) for path in literal] == alternatives:  # every path the rule takes
            assert sorted(paths) == sorted(literal), rule.path.pattern
        assert RATE_WORDS.get(traced) == rule.rate, (paths, traced)
        assert why == rule.reason
    default = default_of("SENTRY_TRACES_SAMPLE_RATE")
    assert isinstance(default, float)
    assert other[:2] == ["any other", f"`SENTRY_TRACES_SAMPLE_RATE` (default {default:g})"]
    methods = ", ".join(f"`{method}`" for method in sorted(READ_METHODS))
    assert reads[0] == f"any other, read ({methods})"
    assert READ_SHARE == 0.2, "the guide says 'a fifth'"
    read_rate = default * READ_SHARE
    assert reads[1] == f"a fifth of `SENTRY_TRACES_SAMPLE_RATE`: {read_rate:g} by default"
    for method in READ_METHODS:
        assert trace_rate("/api/v1/items", default, method) == read_rate
    assert trace_rate("/api/v1/items", default, "POST") == default


def test_the_paths_said_to_record_nothing_are_the_quiet_paths() -> None:
    paths = r"((?:`/[^`]+`(?:,\s+|\s+and\s+)?)+)"
    said = re.search(paths + r"\s+records?\s+no\s+breadcrumbs", GUIDE.read_text(encoding="utf-8"))
    assert said is not None
    assert set(CODE.findall(said[1])) == QUIET_PATHS


# --- numbers the docs take from the code -------------------------------------------------------


def _makefile_port() -> int:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    return int(re.search(r"^SENTRY_DEV_PORT \?= (\d+)$", makefile, re.MULTILINE)[1])  # type: ignore[index]


def _ci_deploy_environment() -> str:
    ci = (PROJECT_ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    return re.search(r"vars\.SENTRY_ENVIRONMENT \|\| '([^']+)'", ci)[1]  # type: ignore[index]


# A pattern (a space stands for any white space, so a statement may wrap) whose group is a value
# the code decides. Every match in README.md and docs/ must say what the code says, and each
# pattern must match somewhere, so a reworded sentence cannot slip out of the test.
FACTS: dict[str, Callable[[], object]] = {
    r"traces=([\d.]+)": lambda: default_of("SENTRY_TRACES_SAMPLE_RATE"),
    r"`SENTRY_TRACES_SAMPLE_RATE` \(default ([\d.]+)": lambda: default_of(
        "SENTRY_TRACES_SAMPLE_RATE"
    ),
    r"`SENTRY_SHUTDOWN_TIMEOUT` seconds \(default ([\d.]+)\)": lambda: default_of(
        "SENTRY_SHUTDOWN_TIMEOUT"
    ),
    r"([\d,]+) events at once": lambda: RepeatBudget().burst,
    r"refilled at ([\d,]+) a minute": lambda: RepeatBudget().refill_per_second * 60,
    r"the first ([\d,]+) characters of its message": lambda: len(
        error_kind(RuntimeError("x" * 10_000))[1]
    ),
    r"body (?:of )?up to ([\d,]+) kB": lambda: MAX_BODY_BYTES / 1000,
    r"`make test` tries ([\d,]+)": lambda: hypothesis_settings.get_profile("default").max_examples,
    r"`make test-long` (?:tries|runs) ([\d,]+)": lambda: (
        hypothesis_settings.get_profile("long").max_examples
    ),
    r"`SENTRY_DEV_PORT`, (\d+) by default": _makefile_port,
    r"tools\.sentry_dev (\d+)": _makefile_port,
    r"SENTRY_DSN=(http://[^\s`']+)": lambda: (
        f"http://{PUBLIC_KEY}@127.0.0.1:{_makefile_port()}/{PROJECT_ID}"
    ),
    r"the `SENTRY_ENVIRONMENT` variable \(default `([^`]+)`\)": _ci_deploy_environment,
}


@pytest.mark.parametrize("pattern", FACTS)
def test_each_number_the_docs_take_from_the_code_is_the_code_s(pattern: str) -> None:
    expected = FACTS[pattern]()
    found = [
        (doc.relative_to(PROJECT_ROOT).as_posix(), match[1])
        for doc in DOCS
        for match in re.finditer(pattern.replace(" ", r"\s+"), doc.read_text(encoding="utf-8"))
    ]
    assert found, f"no document says {pattern!r}: reword the pattern or drop it"
    for where, written in found:
        if isinstance(expected, int | float):
            assert float(written.replace(",", "")) == expected, (where, written, expected)
        else:
            assert written == expected, (where, written, expected)


def test_the_receiver_faults_named_are_the_receiver_s() -> None:
    named = re.search(r"`--fault (\w+)` \(or ([^)]*)\)", GUIDE.read_text(encoding="utf-8"))
    assert named is not None
    assert {named[1], *CODE.findall(named[2])} == set(FAULTS)


def test_the_card_number_lengths_are_the_scrubber_s() -> None:
    lengths = re.search(r"card numbers \((\d+) to (\d+) digits", guide_section("What is scrubbed"))
    assert lengths is not None
    shortest, longest = int(lengths[1]), int(lengths[2])
    for length, masked in ((shortest - 1, False), (shortest, True), (longest, True)):
        number = _luhn_valid_number(length)
        assert (scrub_text(f"card {number}") == "card [Filtered]") is masked, number
    assert scrub_text(f"card {_luhn_valid_number(longest + 1)}").startswith("card 4")


def _luhn_valid_number(length: int) -> str:
    body = "4" + "1" * (length - 2)
    for check in "0123456789":
        digits = [int(digit) for digit in reversed(body + check)]
        doubled = [d * 2 - 9 if d > 4 else d * 2 for d in digits[1::2]]
        if (sum(digits[::2]) + sum(doubled)) % 10 == 0:
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


# --- scrubbing and troubleshooting -------------------------------------------------------------

EXAMPLE = re.compile(r"`([^`]+)` → `([^`]+)`")


def test_the_scrubbing_examples_are_what_the_scrubbers_send() -> None:
    checked = 0
    for _, where, example in table_rows(guide_section("What is scrubbed")):
        if not (pair := EXAMPLE.fullmatch(example)):
            continue  # "→ not sent" and the like: proven by the wire and property tests
        before, after = pair.groups()
        if before.startswith("{"):
            assert scrub_event({"extra": json.loads(before)})["extra"] == json.loads(after)
        elif where == "query strings":
            assert scrub_query_string(before) == after
        else:
            assert scrub_text(before) == after, before
        checked += 1
    assert checked >= 8, "the examples are no longer `before` → `after` pairs"


def test_the_sensitive_words_named_are_found_inside_keys() -> None:
    listed = re.search(r"\*contains\* a sensitive word \(([^)]*)\)", guide_section("What is"))
    assert listed is not None
    words = [word.strip() for word in listed[1].split(",") if word.strip() not in {"", "…"}]
    assert len(words) >= 10
    for word in words:
        assert is_sensitive_key(f"new_{word}_2"), word


def test_the_reasons_for_staying_off_are_the_ones_the_code_gives() -> None:
    code = "\n".join(
        (PROJECT_ROOT / path).read_text(encoding="utf-8")
        for path in ("app/sentry.py", "app/sentry_integration.py", "app/sentry_sdk_bridge.py")
    )
    produced = [
        *sentry_problems(SENTRY_DSN="not a dsn"),
        *sentry_problems(SENTRY_DSN="https://key@o1.ingest.sentry.io/project"),
        *sentry_problems(SENTRY_DSN="https://key@o1.ingest.sentry.io:99999/1"),
        *sentry_problems(SENTRY_TRACES_SAMPLE_RATE="2"),
        *sentry_problems(SENTRY_DEBUG="maybe"),
    ]
    rows = table_rows(guide_section("Troubleshooting"))
    assert rows
    for reason_cell, _ in rows:
        for reason in CODE.findall(reason_cell):
            if reason in produced:
                continue
            for fragment in re.split(r"<[^>]*>|…", reason):  # placeholders
                assert fragment in code, f"{reason!r}: {fragment!r} is not in the code"


# --- links and file names ----------------------------------------------------------------------


def _anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of a document."""
    headings = re.findall(r"^#+ (.+)$", FENCED.sub("", markdown.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.relative_to(PROJECT_ROOT).as_posix())
def test_every_relative_link_points_to_a_file_that_exists(doc: Path) -> None:
    for target in LINK.findall(FENCED.sub("", doc.read_text(encoding="utf-8"))):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.is_file(), f"{doc.name} links to {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(linked), f"{doc.name} links to {target}: no such heading"


# A file or folder name inside `code`, or a path with a folder in running text: relative to
# the project's root (link targets, relative to their document, are checked above).
FILE_NAME = re.compile(r"[\w.-]+(?:/[\w.-]+)*\.(?:py|md|toml|lock|ini|ya?ml)|(?:[\w.-]+/)+")
PATH_IN_TEXT = re.compile(r"(?<![\w./:-])(?:[\w.-]+/)+[\w.-]+\.(?:py|md|toml|lock|ini|ya?ml)\b")


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.relative_to(PROJECT_ROOT).as_posix())
def test_every_file_the_docs_name_exists(doc: Path) -> None:
    text = re.sub(r"\]\([^)]*\)", "]", FENCED.sub("", doc.read_text(encoding="utf-8")))
    names = {name for name in CODE.findall(text) if FILE_NAME.fullmatch(name)}
    for name in sorted(names | set(PATH_IN_TEXT.findall(text))):
        assert (PROJECT_ROOT / name).exists(), f"{doc.name} names {name}, which is not here"


def test_the_readme_links_the_guide() -> None:
    assert "docs/sentry.md" in LINK.findall(README.read_text(encoding="utf-8"))
