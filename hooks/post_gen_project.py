"""Prune what the chosen options do not use, then say what to run next.

Idempotent and offline on purpose: cruft re-runs this hook on every update, so it installs
nothing, calls no network and does not `git init`.
"""

import json
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
            "app/sentry_integration.py",
            "app/sentry_repeats.py",
            "app/sentry_sampling.py",
            "app/sentry_scrubbing.py",
            "docs/adr/0002-optional-sentry.md",
            "docs/sentry.md",
            "tests/sentry",
            # tools/ holds only tools/sentry_dev (`make sentry-dev`) today: list that folder
            # instead when another tool joins it.
            "tools",
        ],
    },
}


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
    print(
        f"\nCreated {project_dir}\n\nNext:\n"
        f"  cd {project_dir.name}\n"
        "  make run    # create .venv, migrate SQLite, serve on http://127.0.0.1:8000\n"
        "  make test   # run the test suite\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
