"""Prune what the chosen options do not use, then say what to run next.

Idempotent and offline on purpose: cruft re-runs this hook on every update, so it installs
nothing, calls no network and does not `git init`.
"""

import json
import re
import shutil
import sys
from pathlib import Path

ANSWERS = json.loads("{{ (cookiecutter | jsonify | tojson)[1:-1] }}")

# Paths (relative to the generated project) that belong to one value of an option; they are
# deleted when the answer is anything else. One table, so a review (and a test) sees every
# conditional file at a glance.
CONDITIONAL_PATHS: dict[str, dict[str, list[str]]] = {
    "include_sentry": {
        "yes": [
            "app/sentry.py",
            "app/sentry_telemetry.py",
            "app/sentry_check.py",
            "app/sentry_integration.py",
            "app/sentry_queries.py",
            "app/sentry_repeats.py",
            "app/sentry_sampling.py",
            "app/sentry_scrubbing.py",
            "app/sentry_sdk_bridge.py",
            "docs/adr/0002-optional-sentry.md",
            "docs/sentry.md",
            "tests/sentry",
            # tools/ holds only tools/sentry_dev (`make sentry-dev`) today: list that folder
            # instead when another tool joins it.
            "tools",
        ],
    },
}


# uv.lock pins every package for one variant: its dependencies (with or without Sentry) and its
# Python floor (requires-python) both shape it. The template holds one lock per variant, made by
# `make locks` at the template root (tools/locks.py); this hook keeps the one the answers name,
# as uv.lock, with the project's own name and version, and drops the rest.
LOCKS_DIR = "locks"


def lock_name(answers: dict[str, object]) -> str:
    return f"py{answers['python_version']}-sentry-{answers['include_sentry']}.lock"


# The project's own entry in uv.lock: the only one whose source is the project directory.
ROOT_PACKAGE = re.compile(
    r'^\[\[package\]\]\nname = "[^"\n]*"\nversion = "[^"\n]*"\nsource = \{ editable = "\." \}$',
    re.MULTILINE,
)
# PEP 440 as packaging parses it (the pre-gen hook has already accepted the version).
VERSION = re.compile(
    r"""v?(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?""",
    re.VERBOSE,
)
PRE_RELEASE = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "pre": "rc"}


def normalized_name(name: str) -> str:
    """PEP 503, as uv writes a package's name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def normalized_version(version: str) -> str:
    """PEP 440's normal form, as uv writes a version (packaging's str(Version(...)))."""
    match = VERSION.fullmatch(version.strip().lower())
    if match is None:
        raise ValueError(f"not a PEP 440 version: {version!r}")
    text = f"{match['epoch']}!" if match["epoch"] and int(match["epoch"]) else ""
    text += ".".join(str(int(part)) for part in match["release"].split("."))
    if match["pre_l"]:
        text += PRE_RELEASE.get(match["pre_l"], "rc") + str(int(match["pre_n"] or 0))
    if match["post_n1"] or match["post_l"]:
        text += f".post{int(match['post_n1'] or match['post_n2'] or 0)}"
    if match["dev_l"]:
        text += f".dev{int(match['dev_n'] or 0)}"
    if match["local"]:
        parts = re.split(r"[-_.]", match["local"])
        text += "+" + ".".join(str(int(p)) if p.isdigit() else p for p in parts)
    return text


def choose_lock(project_dir: Path, answers: dict[str, object]) -> None:
    """Keep the variant's lock as uv.lock, named for this project; idempotent."""
    locks = project_dir / LOCKS_DIR
    if not locks.is_dir():
        return  # already chosen (cruft update runs this hook again)
    chosen = locks / lock_name(answers)
    if not chosen.exists():
        # A variant the template has no lock for yet (tools/locks.py needs each floor's Python):
        # `make install` then locks on first use (the Makefile's uv.lock rule).
        print("Note: no uv.lock for this variant yet; `make install` creates it (uv lock).")
        shutil.rmtree(locks)
        return
    text = chosen.read_text(encoding="utf-8")
    root = (
        f'[[package]]\nname = "{normalized_name(str(answers["project_slug"]))}"\n'
        f'version = "{normalized_version(str(answers["version"]))}"\n'
        'source = { editable = "." }'
    )
    text, found = ROOT_PACKAGE.subn(lambda _: root, text)
    if found != 1:
        raise RuntimeError(f"{LOCKS_DIR}/{lock_name(answers)}: no single entry for the project")
    (project_dir / "uv.lock").write_text(text, encoding="utf-8")
    shutil.rmtree(locks)


def paths_to_prune(answers: dict[str, object]) -> list[str]:
    doomed = []
    for option, owners in CONDITIONAL_PATHS.items():
        for value, paths in owners.items():
            if answers[option] != value:
                doomed.extend(paths)
    return doomed


def prune(project_dir: Path, relative_paths: list[str]) -> None:
    for relative in relative_paths:
        path = project_dir / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def main() -> int:
    project_dir = Path.cwd()
    prune(project_dir, paths_to_prune(ANSWERS))
    choose_lock(project_dir, ANSWERS)
    print(
        f"\nCreated {project_dir}\n\nNext:\n"
        f"  cd {project_dir.name}\n"
        "  make run    # create .venv, migrate SQLite, serve on http://127.0.0.1:8000\n"
        "  make test   # run the test suite\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
