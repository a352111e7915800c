"""Sentry reaches shared files only through seams: ADR 0004 lists every one, and each opens
with the same comment, so a reader of either rendering can find them all."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "{{cookiecutter.project_slug}}"
ADR = ROOT / "docs" / "adr" / "0004-optional-sentry.md"

SEAM_START = re.compile(r"^\{%-? if cookiecutter\.include_sentry == \"yes\" -?%\}$")
ANY_SENTRY_CONDITION = re.compile(r"\{%-?\s*(?:el)?if\b[^%]*include_sentry")
JINJA_ONLY = re.compile(r"^\{%-?\s*(?:raw|endraw)\s*-?%\}$")
TABLE_ROW = re.compile(r"^\s*\| `(?P<path>[^`]+)` \| (?P<count>\d+) \|")


def _template_files() -> list[Path]:
    return [path for path in PROJECT.rglob("*") if path.is_file() and ".git" not in path.parts]


def _seams(path: Path) -> list[int]:
    """Line numbers (1-based) of the seams' opening `{% if %}` lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [number for number, line in enumerate(lines, 1) if SEAM_START.match(line.strip())]


def _listed() -> dict[str, int]:
    rows = (TABLE_ROW.match(line) for line in ADR.read_text(encoding="utf-8").splitlines())
    return {row["path"]: int(row["count"]) for row in rows if row}


def test_the_adr_lists_exactly_the_seams_the_template_has() -> None:
    found = {
        str(path.relative_to(PROJECT)): len(seams)
        for path in _template_files()
        if (seams := _seams(path))
    }
    assert found == _listed()


def test_every_condition_on_the_answer_is_a_seam_of_the_one_form() -> None:
    for path in _template_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        conditions = len(ANY_SENTRY_CONDITION.findall(text))
        assert conditions == len(_seams(path)), f"{path}: a condition that is not a seam"


def test_every_seam_opens_with_a_comment_saying_why() -> None:
    for path in _template_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number in _seams(path):
            following = (line.strip() for line in lines[number:])
            first = next(line for line in following if line and not JINJA_ONLY.match(line))
            assert re.match(r"^(#|<!--) Sentry seam: \S", first), f"{path}:{number}: {first!r}"


def test_the_settings_module_is_one_file_for_both_answers() -> None:
    config = (PROJECT / "app" / "core" / "config.py").read_text(encoding="utf-8")
    assert "{{" not in config
    assert "{%" not in config
