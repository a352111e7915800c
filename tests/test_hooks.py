"""Every answer the pre-gen hook refuses: one readable line, exit 1, nothing left behind."""

import ast
import json
import re
import sys
import tomllib
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from tests.rendering import UNSUPPORTED, Combination, generated_files
from tools.processes import BIN_DIR, run
from tools.template import (
    DECLARED,
    TEMPLATE_DIR,
    check_answer_keys,
    hook_answers,
    render_hook,
    run_cookiecutter,
)

REJECTED = [
    # (answers, what the error line must say)
    ({"project_slug": "my-project"}, "project_slug 'my-project' is not a valid Python identifier"),
    ({"project_slug": "1password"}, "project_slug '1password' is not a valid Python identifier"),
    ({"project_slug": "café"}, "project_slug 'café' is not a valid Python identifier"),
    ({"project_slug": "has space"}, "project_slug 'has space' is not a valid Python identifier"),
    ({"project_slug": "class"}, "project_slug 'class' is a Python keyword"),
    ({"project_slug": "match"}, "project_slug 'match' is a Python keyword"),
    ({"project_slug": "json"}, "project_slug 'json' is the name of a standard-library module"),
    ({"project_slug": "asyncio"}, "project_slug 'asyncio' is the name of a standard-library"),
    ({"project_slug": "app"}, "project_slug 'app' is the name of the generated package"),
    ({"project_slug": "_private"}, "project_slug '_private' must start with a letter"),
    ({"project_slug": "trailing_"}, "project_slug 'trailing_' must start with a letter"),
    ({"project_slug": "fastapi"}, "project_slug 'fastapi' is the name of a package the project"),
    ({"project_slug": "pydantic_settings"}, "'pydantic_settings' is the name of a package"),
    (
        {"project_name": "Email"},
        "project_slug 'email' (derived from project_name 'Email'; give project_slug explicitly)"
        " is the name of a standard-library module",
    ),
    ({"project_name": "1st API"}, "project_slug '1st_api' (derived from project_name '1st API'"),
    ({"project_name": "N" * 71}, "is too long (71 columns); keep it within 70"),
    ({"project_name": "名" * 36, "project_slug": "cjk"}, "is too long (72 columns)"),
    ({"author_email": "not-an-email"}, "author_email 'not-an-email' is not an e-mail address"),
    ({"author_email": "jane@localhost"}, "author_email 'jane@localhost' is not an e-mail address"),
    ({"author_email": "jane doe@example.com"}, "author_email 'jane doe@example.com' is not"),
    ({"author_email": "jane@example.com\n"}, "author_email 'jane@example.com\\n' contains control"),
    ({"version": "latest"}, "version 'latest' is not a PEP 440 version"),
    ({"version": "1.0.0.final"}, "version '1.0.0.final' is not a PEP 440 version"),
    ({"version": "1 .0"}, "version '1 .0' is not a PEP 440 version"),
    ({"version": "0.1.0\n"}, "version '0.1.0\\n' is not a PEP 440 version"),
    ({"description": "  "}, "description is empty"),
    ({"author_name": " Jane"}, "author_name ' Jane' has leading or trailing spaces"),
    ({"author_name": "Jane\tDoe"}, "author_name 'Jane\\tDoe' contains control characters"),
    ({"description": "one\u2028two"}, "description 'one\\u2028two' contains control characters"),
    ({"description": "bell\x85"}, "description 'bell\\x85' contains control characters"),
]


def _ids(case: tuple[dict[str, str], str]) -> str:
    answers = case[0]
    return "-".join(f"{k}={v!r}" for k, v in answers.items())


@pytest.mark.parametrize("case", REJECTED, ids=[_ids(c) for c in REJECTED])
def test_bad_answers_fail_with_one_line_and_leave_nothing(
    output_dir: Path, case: tuple[dict[str, str], str]
) -> None:
    answers, message = case
    result = run_cookiecutter(output_dir, answers=answers)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines() if line.startswith("Invalid answer: ")]
    assert len(ours) == 1, output
    assert message in ours[0]
    # cookiecutter's own notice follows ours (it also logs the hook's exit as a traceback).
    assert "Stopping generation because pre_gen_project hook" in output
    assert list(output_dir.iterdir()) == []


@pytest.mark.parametrize(
    "version", ["0.1.0", "1.0", "2024.10.1", "1.0.0rc1", "1.0.0-beta.1", "1.0.post2", "1!2.0"]
)
def test_pep440_versions_are_accepted(output_dir: Path, version: str) -> None:
    result = run_cookiecutter(output_dir, answers={"version": version})
    assert result.returncode == 0, result.stderr
    assert f'version = "{version}"' in (output_dir / "acme_backend/pyproject.toml").read_text()


@pytest.mark.parametrize("combination", UNSUPPORTED, ids=lambda c: c.id)
def test_cookiecutter_itself_refuses_an_unlisted_choice_on_the_cli(
    output_dir: Path, combination: Combination
) -> None:
    variable, value = combination.unlisted
    result = run_cookiecutter(output_dir, answers=combination.answers)
    assert result.returncode != 0
    assert f"{value} provided for choice variable {variable}, but the choices are" in (
        result.stdout + result.stderr
    )
    assert list(output_dir.iterdir()) == []


def _replay_file(tmp_path: Path, **changes: object) -> Path:
    """A replay file as cookiecutter writes it, with some answers changed: the Python API
    takes these without checking them against cookiecutter.json."""
    answers: dict[str, Any] = {
        k: (v[0] if isinstance(v, list) else v) for k, v in DECLARED.items() if k[0] != "_"
    }
    answers["project_slug"] = "acme_backend"
    answers.update(check_answer_keys(changes))
    answers["_template"] = str(TEMPLATE_DIR)
    answers["_repo_dir"] = str(TEMPLATE_DIR)
    answers["_output_dir"] = str(tmp_path)
    answers["_copy_without_render"] = DECLARED["_copy_without_render"]
    path = tmp_path / "replay.json"
    path.write_text(json.dumps({"cookiecutter": answers}))
    return path


@pytest.mark.parametrize("combination", UNSUPPORTED, ids=lambda c: c.id)
def test_hook_refuses_an_unlisted_choice_from_the_python_api(
    tmp_path: Path, output_dir: Path, capfd: pytest.CaptureFixture[str], combination: Combination
) -> None:
    variable, value = combination.unlisted
    replay = _replay_file(tmp_path, **combination.answers)
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(output_dir))
    options = ", ".join(repr(option) for option in DECLARED[variable])
    expected = f"Invalid answer: {variable} {value!r} is not one of the options: {options}"
    assert expected in capfd.readouterr().err
    assert list(output_dir.iterdir()) == []


def test_renders_from_a_relative_template_path(output_dir: Path) -> None:
    # What `make demo` does: `cookiecutter .` from the template's own directory.
    result = run_cookiecutter(output_dir, template=".", cwd=TEMPLATE_DIR)
    assert result.returncode == 0, result.stderr
    assert (output_dir / "acme_backend/app/main.py").is_file()


def test_a_slug_with_a_slash_is_refused_and_only_an_empty_parent_remains(
    output_dir: Path,
) -> None:
    # cookiecutter creates out/a/b from the directory name before any hook runs, and on the
    # hook's refusal removes out/a/b but not the parent it made: a cookiecutter limit the
    # template cannot reach (docs/adr/0001). No file is written.
    result = run_cookiecutter(output_dir, answers={"project_slug": "a/b"})
    assert result.returncode == 1
    assert "Invalid answer: project_slug 'a/b' is not a valid Python identifier" in result.stderr
    assert [p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*")] == ["a"]


def test_a_valid_replay_renders(tmp_path: Path, output_dir: Path) -> None:
    replay = _replay_file(tmp_path, include_sentry="yes")
    cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(output_dir))
    assert (output_dir / "acme_backend/app/main.py").is_file()


def test_an_empty_slug_is_refused_before_anything_is_written(output_dir: Path) -> None:
    # Without -f cookiecutter itself stops: the empty name points at the output directory.
    plain = run_cookiecutter(output_dir, answers={"project_slug": ""})
    assert plain.returncode != 0
    assert "already exists" in plain.stdout + plain.stderr
    # With -f it would render into the output directory itself: the hook stops that.
    forced = run_cookiecutter(output_dir, "--overwrite-if-exists", answers={"project_slug": ""})
    assert forced.returncode == 1
    assert "Invalid answer: project_slug is empty" in forced.stderr
    assert list(output_dir.iterdir()) == []


AWKWARD_TEXT = [
    pytest.param('O\'Brien "Bob" \\ """ \\u0041 é', id="quotes-and-backslashes"),
    pytest.param("Rocket 🚀 launch", id="emoji"),
    pytest.param("顧客管理システムのバックエンド", id="cjk"),
    pytest.param("Бэкенд для клиентов", id="cyrillic"),
    pytest.param("{% raw %}{{ x }}{% endraw %} & <b>#[x]</b>", id="jinja-and-markup"),
    pytest.param("N" * 70, id="longest-name"),
]


@pytest.mark.parametrize("text", AWKWARD_TEXT)
def test_awkward_text_survives_into_every_file(output_dir: Path, text: str) -> None:
    answers = {"project_name": text, "project_slug": "awkward", "author_name": text}
    result = run_cookiecutter(output_dir, answers=answers | {"description": text})
    assert result.returncode == 0, result.stdout + result.stderr
    project = output_dir / "awkward"
    expected = text.replace("{% raw %}", "").replace("{% endraw %}", "")  # cookiecutter renders
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == expected
    assert pyproject["project"]["authors"][0]["name"] == expected
    package = ast.parse((project / "app/__init__.py").read_text())
    constants = {
        target.id: node.value
        for node in ast.walk(package)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert ast.literal_eval(constants["PROJECT_NAME"]) == expected
    for source in project.rglob("*.py"):
        compile(source.read_text(), str(source), "exec")
    for command in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        run([str(BIN_DIR / "ruff"), *command], cwd=project)


NOT_TEXT = [
    ("description", ["a", "b"], "description must be text, not list ['a', 'b']"),
    ("project_name", 42, "project_name must be text, not int 42"),
    ("version", 1.1, "version 1.1 is not a PEP 440 version"),
]


@pytest.mark.parametrize(("variable", "value", "message"), NOT_TEXT)
def test_replayed_answers_that_are_not_text_are_refused(
    tmp_path: Path,
    output_dir: Path,
    capfd: pytest.CaptureFixture[str],
    variable: str,
    value: object,
    message: str,
) -> None:
    replay = _replay_file(tmp_path, **{variable: value})
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE_DIR), replay=str(replay), output_dir=str(output_dir))
    assert f"Invalid answer: {message}" in capfd.readouterr().err
    assert list(output_dir.iterdir()) == []


def test_a_typo_in_test_answers_is_caught(cookies: Any) -> None:
    with pytest.raises(KeyError, match="include_sentri"):
        check_answer_keys({"include_sentri": "yes"})
    with pytest.raises(KeyError, match="project_slugg"):  # pytest-cookies' bake, too
        cookies.bake(extra_context={"project_slugg": "x"})


def _pre_gen_constant(name: str) -> Any:
    tree = ast.parse((TEMPLATE_DIR / "hooks/pre_gen_project.py").read_text())
    for node in ast.walk(tree):
        target: ast.expr | None = None
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        if isinstance(target, ast.Name) and target.id == name:
            if isinstance(value, ast.Call):  # frozenset({...})
                value = value.args[0]
            assert value is not None
            return ast.literal_eval(value)
    raise LookupError(name)


def test_the_hook_knows_every_choice_as_cookiecutter_json_lists_it() -> None:
    choices = _pre_gen_constant("CHOICES")
    assert choices == {k: v for k, v in DECLARED.items() if isinstance(v, list) and k[0] != "_"}


def test_the_hook_knows_every_dependency_a_slug_could_clash_with(output_dir: Path) -> None:
    assert run_cookiecutter(output_dir).returncode == 0
    project = tomllib.loads((output_dir / "acme_backend/pyproject.toml").read_text())
    requirements = [
        *project["project"]["dependencies"],
        *project["dependency-groups"]["dev"],
        *project["build-system"]["requires"],
    ]
    names = {re.split(r"[\[<>=!~ ;]", requirement)[0].lower() for requirement in requirements}
    assert names <= _pre_gen_constant("DEPENDENCY_NAMES")


def test_every_variable_has_a_readable_prompt() -> None:
    variables = {k for k in DECLARED if not k.startswith("_")}
    assert set(DECLARED["__prompts__"]) == variables


def _load_hook(name: str, answers: dict[str, Any]) -> dict[str, Any]:
    """A hook as cookiecutter would run it (rendered with the answers), imported instead of
    executed; its line numbers are the source file's (the answers render on one line)."""
    namespace: dict[str, Any] = {"__name__": name}
    code = render_hook(name, answers)
    exec(compile(code, f"{name}.py", "exec"), namespace)  # noqa: S102 - our own hook
    return namespace


def _load_post_gen_hook(answers: dict[str, Any]) -> dict[str, Any]:
    return _load_hook("post_gen_project", answers)


def _refusal_lines() -> set[int]:
    """The line of every `raise InvalidAnswerError(...)` in the pre-gen hook."""
    tree = ast.parse((TEMPLATE_DIR / "hooks/pre_gen_project.py").read_text())
    return {
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id == "InvalidAnswerError"
    }


def _lines_run_refusing(answers: dict[str, Any]) -> set[int]:
    hook = _load_hook("pre_gen_project", hook_answers(**answers))
    seen: set[int] = set()

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename != "pre_gen_project.py":
            return None
        if event == "line":
            seen.add(frame.f_lineno)
        return trace

    sys.settrace(trace)
    try:
        status = hook["main"]()
    finally:
        sys.settrace(None)
    assert status == 1, f"{answers} was accepted"
    return seen


def test_every_refusal_in_the_pre_gen_hook_has_a_test(capsys: pytest.CaptureFixture[str]) -> None:
    cases: list[dict[str, Any]] = [
        *(answers for answers, _ in REJECTED),
        *({variable: value} for variable, value, _ in NOT_TEXT),
        *(combination.answers for combination in UNSUPPORTED),
        {"project_slug": ""},
        {"project_slug": "a/b"},
    ]
    reached = set().union(*(_lines_run_refusing(answers) for answers in cases))
    source = (TEMPLATE_DIR / "hooks/pre_gen_project.py").read_text().splitlines()
    missed = {line: source[line - 1].strip() for line in sorted(_refusal_lines() - reached)}
    assert not missed, f"refusals no test reaches: {missed}"
    assert capsys.readouterr().err.count("Invalid answer: ") == len(cases)


def _tree(project: Path) -> dict[str, bytes]:
    return {p.relative_to(project).as_posix(): p.read_bytes() for p in generated_files(project)}


@pytest.mark.parametrize("include_sentry", DECLARED["include_sentry"])
def test_the_post_gen_hook_run_again_on_a_real_project_changes_nothing(
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    include_sentry: str,
) -> None:
    # What cruft update and `cookiecutter --replay -f` do: the hook runs over a tree it has
    # already pruned.
    result = run_cookiecutter(output_dir, answers={"include_sentry": include_sentry})
    assert result.returncode == 0, result.stderr
    project = output_dir / "acme_backend"
    before = _tree(project)
    monkeypatch.chdir(project)
    assert _load_post_gen_hook(hook_answers(include_sentry=include_sentry))["main"]() == 0
    assert _tree(project) == before
    assert f"Created {project}" in capsys.readouterr().out


def test_post_gen_prunes_the_paths_of_unchosen_options_and_is_idempotent(
    tmp_path: Path,
) -> None:
    hook = _load_post_gen_hook({"include_sentry": "no"})
    table = {"include_sentry": {"yes": ["app/extra.py", "docs/extra"]}}
    hook["CONDITIONAL_PATHS"].clear()
    hook["CONDITIONAL_PATHS"].update(table)
    (tmp_path / "app").mkdir()
    (tmp_path / "app/extra.py").write_text("x = 1\n")
    (tmp_path / "app/kept.py").write_text("y = 2\n")
    (tmp_path / "docs/extra").mkdir(parents=True)
    (tmp_path / "docs/extra/page.md").write_text("# page\n")

    doomed = hook["paths_to_prune"]({"include_sentry": "no"})
    assert doomed == ["app/extra.py", "docs/extra"]
    assert hook["paths_to_prune"]({"include_sentry": "yes"}) == []
    for _ in range(2):  # a second run (cruft update) finds nothing left to do, and no error
        hook["prune"](tmp_path, doomed)
        assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
            "app",
            "app/kept.py",
            "docs",
        ]


def test_every_conditional_path_exists_in_the_template() -> None:
    hook = _load_post_gen_hook({"include_sentry": "no"})
    project_template = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
    for option, owners in hook["CONDITIONAL_PATHS"].items():
        assert option in DECLARED
        for value, paths in owners.items():
            assert value in DECLARED[option]
            for relative in paths:
                assert (project_template / relative).exists(), relative
