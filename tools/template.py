"""The template as its tests and tools see it: where it is, what it declares, and rendering it
(a whole project through the real CLI, or one hook the way cookiecutter renders it)."""

import json
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

from tools.processes import BIN_DIR, run

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
HOOKS_DIR = TEMPLATE_DIR / "hooks"
HOOKS = ("pre_gen_project", "post_gen_project")
DECLARED: dict[str, Any] = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())


def check_answer_keys(answers: dict[str, Any]) -> dict[str, Any]:
    """cookiecutter silently drops extra_context keys it does not declare, so a typo would
    render the defaults and pass. Every answer a test or tool gives goes through here first."""
    unknown = sorted(set(answers) - {k for k in DECLARED if not k.startswith("_")})
    if unknown:
        raise KeyError(f"not declared in cookiecutter.json: {', '.join(unknown)}")
    return answers


def run_cookiecutter(
    output_dir: Path,
    *args: str,
    answers: dict[str, str] | None = None,
    template: str = str(TEMPLATE_DIR),
    cwd: Path | None = None,
) -> CompletedProcess[str]:
    """The real CLI, as a user runs it, with answers given on the command line; its exit
    status is the caller's to check."""
    pairs = [f"{k}={v}" for k, v in check_answer_keys(answers or {}).items()]
    command = [str(BIN_DIR / "cookiecutter"), "--no-input", "--output-dir", str(output_dir)]
    return run([*command, *args, template, *pairs], cwd=cwd, timeout=120, check=False)


def hook_answers(**given: object) -> dict[str, Any]:
    """Every answer as cookiecutter hands them to the hooks: the defaults rendered (so the
    slug is derived from the name), with the given ones in place; values the CLI would refuse
    (an unlisted choice, a list) are put in afterwards, as a replay file would."""
    choices = {k for k, v in DECLARED.items() if isinstance(v, list) and not k.startswith("_")}
    text = {k: v for k, v in given.items() if isinstance(v, str) and k not in choices}
    context = generate_context(str(TEMPLATE_DIR / "cookiecutter.json"), extra_context=text)
    answers: dict[str, Any] = prompt_for_config(context, no_input=True)
    return answers | given


def render_hook(name: str, answers: dict[str, Any]) -> str:
    """A hook's source as cookiecutter runs it: rendered by cookiecutter's own strict Jinja
    environment, trailing newline kept. The answers render on one line, so line numbers are
    the source file's."""
    source = (HOOKS_DIR / f"{name}.py").read_text(encoding="utf-8")
    context = {"cookiecutter": answers}
    environment = StrictEnvironment(context=context, keep_trailing_newline=True)
    return str(environment.from_string(source).render(**context))
