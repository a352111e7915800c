"""`python -m tools.locks [--check] [UV_LOCK_ARGS...]` (`make locks`): the generated project's
uv.lock, one per variant, kept in the template.

A uv.lock depends on the dependencies (Sentry's SDK or not) and on requires-python (each
python_version answer drops the wheels and markers of older Pythons), so every combination of
those two answers has its own lock in `{{cookiecutter.project_slug}}/locks/`; the post-gen
hook keeps the one a project's answers name, as uv.lock. For each combination this renders the
project (defaults otherwise, hooks off), starts from the committed lock so that pins move only
when asked (`make locks LOCK_ARGS=--upgrade`), runs `uv lock` and copies the result back.
`--check` runs `uv lock --check` instead and writes nothing: a lock that no longer matches its
pyproject.toml fails.

uv needs an interpreter that satisfies requires-python to lock: a `pythonX.Y` on PATH, one uv
finds, or a pyenv install. A variant with none is reported and fails the run.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from tools.processes import BIN_DIR, CommandError, clean_env, run
from tools.template import DECLARED, PROJECT_TEMPLATE, run_cookiecutter

LOCKS = PROJECT_TEMPLATE / "locks"


def lock_name(python_version: str, include_sentry: str) -> str:
    """The same name as the post-gen hook's `lock_name`."""
    return f"py{python_version}-sentry-{include_sentry}.lock"


# Python floors no lock is committed for: uv locks a floor only with an interpreter of it, and
# none of these could be run where the locks were made (uv cannot download one here). A render
# of such a floor has no uv.lock until its first `make install` locks it (the generated
# Makefile's uv.lock rule, which needs PyPI); the template's GitHub workflow, which runs that
# Python, installs and tests it that way. Run `make locks` where it exists and drop it here.
LOCKED_ON_FIRST_INSTALL = frozenset({"3.14"})


def variants() -> list[tuple[str, str]]:
    """The variants the template holds a lock for."""
    return [
        (p, s)
        for p in DECLARED["python_version"]
        if p not in LOCKED_ON_FIRST_INSTALL
        for s in DECLARED["include_sentry"]
    ]


def interpreter(version: str) -> Path | None:
    """A Python `version` (X.Y) that runs, without downloading one."""
    candidates = [shutil.which(f"python{version}")]
    found = run(
        [str(BIN_DIR / "uv"), "python", "find", "--no-python-downloads", version],
        check=False,
    )
    candidates.append(found.stdout.strip() if found.returncode == 0 else None)
    pyenv = Path.home() / ".pyenv" / "versions"
    candidates += sorted(str(path) for path in pyenv.glob(f"{version}.*/bin/python"))
    for candidate in filter(None, candidates):
        probe = run(
            [candidate, "-c", "import sys; print(*sys.version_info[:2], sep='.')"], check=False
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return Path(candidate)
    return None


def lock_variant(python_version: str, include_sentry: str, *, check: bool, args: list[str]) -> None:
    python = interpreter(python_version)
    if python is None:
        raise CommandError(f"no Python {python_version} here to lock its variants with")
    name = lock_name(python_version, include_sentry)
    with tempfile.TemporaryDirectory() as tmp:
        answers = {"python_version": python_version, "include_sentry": include_sentry}
        rendered = run_cookiecutter(Path(tmp), "--accept-hooks", "no", answers=answers)
        if rendered.returncode != 0:
            raise CommandError(f"rendering {answers} failed:\n{rendered.stderr}")
        (project,) = Path(tmp).iterdir()
        if (LOCKS / name).exists():
            shutil.copyfile(LOCKS / name, project / "uv.lock")
        shutil.rmtree(project / "locks", ignore_errors=True)
        command = [str(BIN_DIR / "uv"), "lock", "--python", str(python)]
        run(
            [*command, *(["--check", "--offline"] if check else args)],
            cwd=project,
            env=clean_env(UV_PYTHON_DOWNLOADS="never"),
        )
        if not check:
            LOCKS.mkdir(exist_ok=True)
            shutil.copyfile(project / "uv.lock", LOCKS / name)
    print(f"{name}: {'up to date' if check else 'locked'}")


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [arg for arg in argv if arg != "--check"]
    try:
        for python_version, include_sentry in variants():
            lock_variant(python_version, include_sentry, check=check, args=args)
    except CommandError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
