"""Validate every answer before a single file is written.

On a bad answer: print one line naming the answer and what is allowed, exit 1.
Cookiecutter then removes the directory it created for this run, so nothing is left.
"""

import json
import keyword
import re
import sys
import unicodedata

# The answers arrive as JSON escaped into a Python string literal (by Jinja's tojson, with its
# quotes sliced off): no answer can break this script's syntax, whatever characters it holds.
ANSWERS = json.loads("{{ (cookiecutter | jsonify | tojson)[1:-1] }}")

# The options of every choice variable, as cookiecutter.json lists them (a template test keeps
# the two equal). Callers of the Python API (replay files, user configs) can hand the hook
# values the CLI would have refused. cookiecutter.json itself cannot be read from here: the
# hook runs from a temporary copy, and `_repo_dir` may be relative to a directory unknown here.
CHOICES: dict[str, list[str]] = {
    "python_version": ["3.11", "3.12", "3.13", "3.14"],
    "include_sentry": ["no", "yes"],
}
TEXT_ANSWERS = ("project_name", "project_slug", "description", "author_name", "author_email")

# Distributions the generated project installs: a project of the same name would depend on
# itself and could not be installed (a template test keeps this list complete).
DEPENDENCY_NAMES = frozenset(
    {
        "aiosqlite", "alembic", "annotated-types", "anyio", "argon2-cffi", "argon2-cffi-bindings",
        "asyncpg", "cffi", "click", "dnspython", "email-validator", "fastapi", "greenlet",
        "h11", "hatchling", "httpcore", "httptools", "httpx", "idna", "iniconfig", "mako",
        "markupsafe", "mypy", "mypy-extensions", "packaging", "pathspec", "pluggy",
        "pwdlib", "pycparser", "pydantic", "pydantic-core", "pydantic-settings", "pygments",
        "pyjwt", "pytest", "pytest-asyncio", "python-dotenv", "python-multipart", "pyyaml",
        "ruff", "sniffio", "sqlalchemy", "starlette", "typing-extensions",
        "typing-inspection", "uv", "uvicorn", "uvloop", "watchfiles", "websockets",
        "sentry-sdk", "urllib3", "certifi",
        "annotated-doc", "ast-serialize", "attrs", "charset-normalizer", "graphql-core",
        "harfile", "hypothesis", "hypothesis-graphql", "jsonschema-rs", "librt",
        "markdown-it-py", "mdurl", "opentelemetry-api", "pyrate-limiter", "requests", "rich",
        "schemathesis", "sortedcontainers", "werkzeug",
    }
)  # fmt: skip

# Anchored with fullmatch: `$` would also accept a trailing newline.
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
SLUG = re.compile(r"[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?")
# PEP 440, the canonical pattern from packaging's specification (public versions only).
PEP440 = re.compile(
    r"""v?(?:(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?
    (?P<post>(?:-[0-9]+)|(?:[-_.]?(?:post|rev|r)[-_.]?[0-9]*))?
    (?P<dev>[-_.]?dev[-_.]?[0-9]*)?)
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?""",
    re.VERBOSE | re.IGNORECASE,
)
# The project name is the default of a setting, on one line of Python that must stay within
# ruff's 100 columns: `    project_name: str = "…"`.
MAX_NAME_COLUMNS = 70


class InvalidAnswerError(Exception):
    pass


def derived_slug(name: str) -> str:
    """What cookiecutter.json derives from the name (python-slugify, '_' as separator)."""
    from slugify import slugify  # cookiecutter's own dependency

    return str(slugify(name, separator="_"))


def check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidAnswerError(f"{name} must be text, not {type(value).__name__} {value!r}")
    if not value.strip():
        raise InvalidAnswerError(f"{name} is empty; give it a value")
    if any(unicodedata.category(char) in {"Cc", "Zl", "Zp"} for char in value):
        raise InvalidAnswerError(
            f"{name} {value!r} contains control characters or line breaks; use one line of text"
        )
    if value != value.strip():
        raise InvalidAnswerError(f"{name} {value!r} has leading or trailing spaces; remove them")


def columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def as_string_literal(text: str) -> str:
    """How the templates write free text inside "…" in Python and TOML (both accept this)."""
    return text.replace("\\", "\\\\").replace('"', "\\u0022")


def check_name(name: str) -> None:
    width = columns(as_string_literal(name))
    if width > MAX_NAME_COLUMNS:
        raise InvalidAnswerError(
            f"project_name {name!r} is too long ({width} columns); "
            f"keep it within {MAX_NAME_COLUMNS} and put the rest in the description"
        )


def check_slug(slug: str, project_name: str) -> None:
    origin = (
        f" (derived from project_name {project_name!r}; give project_slug explicitly)"
        if slug == derived_slug(project_name)
        else ""
    )
    hint = "use letters, digits and underscores, starting with a letter, e.g. 'acme_backend'"
    if not slug.isidentifier() or not slug.isascii():
        raise InvalidAnswerError(
            f"project_slug {slug!r}{origin} is not a valid Python identifier; {hint}"
        )
    if keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        raise InvalidAnswerError(f"project_slug {slug!r}{origin} is a Python keyword; {hint}")
    if slug in sys.stdlib_module_names:
        raise InvalidAnswerError(
            f"project_slug {slug!r}{origin} is the name of a standard-library module "
            f"and would shadow it; {hint}"
        )
    if slug == "app":
        raise InvalidAnswerError(f"project_slug 'app' is the name of the generated package; {hint}")
    if not SLUG.fullmatch(slug):
        raise InvalidAnswerError(
            f"project_slug {slug!r}{origin} must start with a letter and end with a letter or "
            "digit (package names cannot start or end with '_')"
        )
    if slug.lower().replace("_", "-") in DEPENDENCY_NAMES:
        raise InvalidAnswerError(
            f"project_slug {slug!r}{origin} is the name of a package the project depends on "
            "and could not be installed; choose another name"
        )


def check_email(email: str) -> None:
    if len(email) > 254 or not EMAIL.fullmatch(email):
        raise InvalidAnswerError(
            f"author_email {email!r} is not an e-mail address like 'jane@example.com'"
        )


def check_version(version: object) -> None:
    if not isinstance(version, str) or not PEP440.fullmatch(version):
        raise InvalidAnswerError(
            f"version {version!r} is not a PEP 440 version; "
            "use something like '0.1.0' or '1.0.0rc1'"
        )


def check_choices(answers: dict[str, object]) -> None:
    for name, options in CHOICES.items():
        if answers[name] not in options:
            allowed = ", ".join(repr(option) for option in options)
            raise InvalidAnswerError(
                f"{name} {answers[name]!r} is not one of the options: {allowed}"
            )


def main() -> int:
    try:
        for name in TEXT_ANSWERS:
            check_text(name, ANSWERS[name])
        check_name(ANSWERS["project_name"])
        check_slug(ANSWERS["project_slug"], ANSWERS["project_name"])
        check_email(ANSWERS["author_email"])
        check_version(ANSWERS["version"])
        check_choices(ANSWERS)
    except InvalidAnswerError as invalid:
        # One line, and a prefix of its own: cookiecutter adds its own "Stopping generation".
        print(f"Invalid answer: {invalid}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
