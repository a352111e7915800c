"""`make round-trips`: what each request costs PostgreSQL in round trips, at several commits.

Renders the "no" variant of each git ref (HEAD is the working tree), installs it, sets up a
database of its own on the machine's PostgreSQL (127.0.0.1:5432, trust, as `.ci/run` has it),
serves it with uvicorn over a pool of one connection, and counts, for each route, the Query
and Sync messages the app sends (each one exchange that waits for the server) through the
protocol-reading proxy of the current render's tests (tests/support/wire.py). Each request is
made twice first, so that prepared statements are cached, and counted the third time.

    .venv/bin/python -m tools.round_trips [REF ...]     (default: 2dde805 HEAD)
"""

import shutil
import subprocess
import sys
from pathlib import Path

from tools.processes import CommandError, clean_env, run, stop_children_on_sigterm
from tools.template import TEMPLATE_DIR, run_cookiecutter

BUILD_DIR = TEMPLATE_DIR / "build" / "round-trips"
PROBE = Path(__file__).with_name("round_trips_probe.py")


def render(ref: str) -> Path:
    """The "no" variant of `ref`, installed; HEAD renders the working tree."""
    output = BUILD_DIR / ref
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    template = TEMPLATE_DIR
    if ref != "HEAD":
        template = output / "template"
        template.mkdir()
        archive = subprocess.run(
            ["git", "archive", ref], cwd=TEMPLATE_DIR, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(template)], input=archive.stdout, check=True)
    rendered = run_cookiecutter(output, answers={"include_sentry": "no"}, template=str(template))
    if rendered.returncode != 0:
        raise CommandError(f"cookiecutter failed for {ref}:\n{rendered.stderr}")
    project = output / "acme_backend"
    run(["make", "install"], cwd=project, timeout=1200)
    return project


def main(argv: list[str]) -> int:
    stop_children_on_sigterm()
    refs = argv or ["2dde805", "HEAD"]
    projects = {ref: render(ref) for ref in refs}
    # The probe runs in the current render's venv, beside its tests/support/wire.py.
    current = render("HEAD") if "HEAD" not in projects else projects["HEAD"]
    python = str(current / ".venv" / "bin" / "python")
    print(f"{'ref':10} {'route':28} round trips", flush=True)
    for ref, project in projects.items():
        probe = run(
            [python, str(PROBE), str(project)],
            env=clean_env(PYTHONPATH=str(current)),
            timeout=600,
        )
        for line in probe.stdout.splitlines():
            print(f"{ref:10} {line}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
