"""Validate every answer before a single file is written.

On a bad answer: print one line naming the answer and what is allowed, exit 1.
Cookiecutter then removes the directory it created for this run, so nothing is left.
"""

import json
import keyword
import re
import sys

# The answers arrive as JSON escaped into a Python string literal (by Jinja's tojson, with its
# quotes sliced off): no answer can break this script's syntax, whatever characters it holds.
ANSWERS = json.loads("{{ (cookiecutter | jsonify | tojson)[1:-1] }}")

# The options of every choice variable, as cookiecutter.json lists them (a template test keeps
# the two equal). Callers of the Python API (replay files, user configs) can hand the hook
# values the CLI would have refused. cookiecutter.json itself cannot be read from here: the
# hook runs from a temporary copy, and `_repo_dir` may be relative to a directory unknown here.
CHOICES: dict[str, list[str]] = {
    "python_version": ["3.11", "3.12", "3.13"],
    "include_sentry": ["no", "yes"],
}

EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# PEP 440, the canonical pattern from packaging's specification (public versions only).
PEP440 = re.compile(
    r"""^v?(?:(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?
    (?P<post>(?:-[0-9]+)|(?:[-_.]?(?:post|rev|r)[-_.]?[0-9]*))?
    (?P<dev>[-_.]?dev[-_.]?[0-9]*)?)
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$""",
    re.VERBOSE | re.IGNORECASE,
)
FREE_TEXT = ("project_name", "description", "author_name")


class InvalidAnswerError(Exception):
    pass


def check_slug(slug: str) -> None:
    hint = "use lower-case letters, digits and underscores, starting with a letter, e.g. 'acme'"
    if not slug:
        raise InvalidAnswerError(f"project_slug is empty; {hint}")
    if not slug.isidentifier() or not slug.isascii():
        raise InvalidAnswerError(f"project_slug {slug!r} is not a valid Python identifier; {hint}")
    if keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        raise InvalidAnswerError(f"project_slug {slug!r} is a Python keyword; {hint}")
    if slug in sys.stdlib_module_names:
        raise InvalidAnswerError(
            f"project_slug {slug!r} is the name of a standard-library module "
            f"and would shadow it; {hint}"
        )
    if slug == "app":
        raise InvalidAnswerError(f"project_slug 'app' is the name of the generated package; {hint}")


def check_email(email: str) -> None:
    if len(email) > 254 or not EMAIL.match(email):
        raise InvalidAnswerError(
            f"author_email {email!r} is not an e-mail address like 'jane@example.com'"
        )


def check_version(version: str) -> None:
    if not PEP440.match(version):
        raise InvalidAnswerError(
            f"version {version!r} is not a PEP 440 version; "
            "use something like '0.1.0' or '1.0.0rc1'"
        )


def check_free_text(name: str, value: str) -> None:
    if not value.strip():
        raise InvalidAnswerError(f"{name} is empty; give it a value")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidAnswerError(
            f"{name} {value!r} contains control characters; use one plain line of text"
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
        for name in FREE_TEXT:
            check_free_text(name, str(ANSWERS[name]))
        check_slug(str(ANSWERS["project_slug"]))
        check_email(str(ANSWERS["author_email"]))
        check_version(str(ANSWERS["version"]))
        check_choices(ANSWERS)
    except InvalidAnswerError as bad:
        print(f"ERROR: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
