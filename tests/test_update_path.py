"""The update path of a generated project, run with the real CLIs as a user runs them:
`cruft create` / `cruft check` / `cruft update` against a git copy of this working tree, and
`cookiecutter --replay`. Also: the README links every ADR and names the commands tested here.

cruft needs the template as a git repository and records a commit, so each test copies the
working tree (uncommitted changes included) into a temporary repository and commits it there;
a second commit plays "the template moved on". Nothing is installed and no generated suite
runs: a few seconds per test.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.rendering import generated_files
from tools.processes import BIN_DIR, run
from tools.template import DECLARED, TEMPLATE_DIR

# What the update path is documented with in README.md (a test below keeps the two in step).
CRUFT_CHECK = ["cruft", "check"]
CRUFT_UPDATE = ["cruft", "update", "--skip-apply-ask", "--allow-untracked-files"]

# Not part of the template: the template's own venv, renders and caches, at any depth.
NOT_TEMPLATE = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".ruff_cache"}
NOT_TEMPLATE |= {".mypy_cache", ".hypothesis"}

# The second template commit: a rendered line appended to the project README (every variant
# has it), and a comment appended to a file only "yes" projects have (the post-gen hook
# deletes it from "no" projects, so an update must not bring it back).
README_MARKER = "Updated by the template for {{ cookiecutter.project_name }}.\n"
SENTRY_ONLY_FILE = "app/sentry.py"
SENTRY_MARKER = "# Updated by the template.\n"


def _environment(tmp_path: Path) -> dict[str, str]:
    """No user's git or cookiecutter configuration can change what the CLIs do here."""
    config = tmp_path / "cookiecutter-config.yaml"
    directories = {
        "cookiecutters_dir": tmp_path / "cookiecutters",
        "replay_dir": tmp_path / "replay",
    }
    # YAML reads JSON, and JSON quotes every path whatever it holds.
    config.write_text(json.dumps({k: str(v) for k, v in directories.items()}), encoding="utf-8")
    return {
        "PATH": os.pathsep.join([str(BIN_DIR), os.environ.get("PATH", "")]),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "COOKIECUTTER_CONFIG": str(config),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Template Test",
        "GIT_AUTHOR_EMAIL": "template-test@example.com",
        "GIT_COMMITTER_NAME": "Template Test",
        "GIT_COMMITTER_EMAIL": "template-test@example.com",
    }


def _ok(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    return run(command, cwd, env=env, timeout=120).stdout


def _tree(project: Path) -> dict[str, bytes]:
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in generated_files(project)
        if ".git" not in path.relative_to(project).parts
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return _environment(tmp_path)


@pytest.fixture
def template_repo(tmp_path: Path, env: dict[str, str]) -> Path:
    """This working tree as it is now, committed once in a repository of its own."""
    repo = tmp_path / "template"
    shutil.copytree(TEMPLATE_DIR, repo, ignore=shutil.ignore_patterns(*NOT_TEMPLATE))
    _ok(["git", "init", "--quiet", "--initial-branch=main"], repo, env)
    _ok(["git", "add", "--all"], repo, env)
    _ok(["git", "commit", "--quiet", "--message", "template, first version"], repo, env)
    return repo


def _head(repo: Path, env: dict[str, str]) -> str:
    return _ok(["git", "rev-parse", "HEAD"], repo, env).strip()


def _move_the_template_on(repo: Path, env: dict[str, str]) -> str:
    project_template = repo / "{{cookiecutter.project_slug}}"
    for relative, marker in (("README.md", README_MARKER), (SENTRY_ONLY_FILE, SENTRY_MARKER)):
        path = project_template / relative
        path.write_text(path.read_text(encoding="utf-8") + marker, encoding="utf-8")
    _ok(["git", "commit", "--quiet", "--all", "--message", "template, second version"], repo, env)
    return _head(repo, env)


def _sentry_mentions(project: Path) -> list[str]:
    return [
        f"{relative}: {line.strip()}"
        for relative, content in _tree(project).items()
        for line in content.decode("utf-8").splitlines()
        if "sentry" in f"{relative} {line}".lower()
    ]


@pytest.mark.parametrize("include_sentry", DECLARED["include_sentry"])
def test_cruft_create_check_and_update(
    tmp_path: Path, env: dict[str, str], template_repo: Path, include_sentry: str
) -> None:
    out = tmp_path / "projects"
    first_commit = _head(template_repo, env)
    _ok(
        [
            "cruft",
            "create",
            "--no-input",
            "--output-dir",
            str(out),
            "--extra-context",
            json.dumps({"include_sentry": include_sentry}),
            str(template_repo),
        ],
        tmp_path,
        env,
    )
    project = out / "acme_backend"

    # .cruft.json links the project to the template, the commit and every answer.
    state = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert state["template"] == str(template_repo)
    assert state["commit"] == first_commit
    answers = state["context"]["cookiecutter"]
    assert answers["include_sentry"] == include_sentry
    assert answers["project_slug"] == "acme_backend"
    assert {key for key in DECLARED if not key.startswith("_")} <= set(answers)
    assert answers["_commit"] == first_commit

    # cruft renders exactly what cookiecutter renders from the same answers, plus .cruft.json.
    plain = tmp_path / "plain"
    _ok(
        [
            "cookiecutter",
            "--no-input",
            "--output-dir",
            str(plain),
            str(template_repo),
            f"include_sentry={include_sentry}",
        ],
        tmp_path,
        env,
    )
    before = _tree(project)
    assert {k: v for k, v in before.items() if k != ".cruft.json"} == _tree(plain / "acme_backend")

    # A user keeps the project in git; cruft update refuses to work on a dirty tree.
    _ok(["git", "init", "--quiet", "--initial-branch=main"], project, env)
    _ok(["git", "add", "--all"], project, env)
    _ok(["git", "commit", "--quiet", "--message", "generated"], project, env)
    assert "up to date" in _ok(CRUFT_CHECK, project, env)

    second_commit = _move_the_template_on(template_repo, env)
    stale = run(CRUFT_CHECK, project, env=env, timeout=120, check=False)
    assert stale.returncode == 1
    assert "out of date" in stale.stdout

    _ok(CRUFT_UPDATE, project, env)
    assert "up to date" in _ok(CRUFT_CHECK, project, env)

    after = _tree(project)
    marker = b"Updated by the template for Acme Backend.\n"  # rendered with the stored answers
    assert after["README.md"] == before["README.md"] + marker
    changed = {".cruft.json", "README.md"}
    if include_sentry == "yes":
        assert after[SENTRY_ONLY_FILE] == before[SENTRY_ONLY_FILE] + SENTRY_MARKER.encode()
        changed.add(SENTRY_ONLY_FILE)
    else:
        # The hook pruned both renders cruft diffed, so nothing Sentry came back, and the only
        # mention of it is the answer cruft records.
        assert SENTRY_ONLY_FILE not in after
        assert _sentry_mentions(project) == ['.cruft.json: "include_sentry": "no",']
    # Every other file, and the set of files (no *.rej, nothing resurrected), is unchanged.
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }

    state = json.loads(after[".cruft.json"])
    assert state["commit"] == second_commit
    assert state["context"]["cookiecutter"]["include_sentry"] == include_sentry


@pytest.mark.parametrize("include_sentry", DECLARED["include_sentry"])
def test_cookiecutter_replay_reproduces_the_same_tree(
    tmp_path: Path, env: dict[str, str], include_sentry: str
) -> None:
    answers = {
        "project_name": "Replay Check",
        "python_version": "3.12",
        "include_sentry": include_sentry,
    }
    first, second = tmp_path / "first", tmp_path / "second"
    pairs = [f"{key}={value}" for key, value in answers.items()]
    template = str(TEMPLATE_DIR)
    _ok(["cookiecutter", "--no-input", "--output-dir", str(first), template, *pairs], tmp_path, env)

    # cookiecutter writes the answers to replay_dir/<template directory name>.json ...
    replay = tmp_path / "replay" / f"{TEMPLATE_DIR.name}.json"
    recorded = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    assert {key: recorded[key] for key in answers} == answers
    assert recorded["project_slug"] == "replay_check"

    # ... and --replay renders from them, with no prompt and no answer on the command line.
    _ok(["cookiecutter", "--replay", "--output-dir", str(second), template], tmp_path, env)
    rendered = _tree(first / "replay_check")
    assert rendered
    assert _tree(second / "replay_check") == rendered


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_links_every_adr_and_every_link_resolves() -> None:
    readme = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    targets = {target.split("#")[0] for target in LINK.findall(readme)}
    local = {target for target in targets if target and "://" not in target}
    missing = sorted(target for target in local if not (TEMPLATE_DIR / target).exists())
    assert not missing, f"README links to files that do not exist: {missing}"
    adrs = {adr.relative_to(TEMPLATE_DIR).as_posix() for adr in TEMPLATE_DIR.glob("docs/adr/*.md")}
    assert adrs
    assert not adrs - local, f"ADRs the README does not link: {sorted(adrs - local)}"


def test_the_readme_gives_the_update_commands_tested_here() -> None:
    readme = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    for command in (CRUFT_CHECK, CRUFT_UPDATE, ["cruft", "create"], ["cookiecutter", "--replay"]):
        assert " ".join(command) in readme, " ".join(command)
