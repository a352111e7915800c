"""`python -m tools.render_hooks DIR`: write both hooks into DIR as cookiecutter would run them
with the default answers, for `make lint` to type-check.

Why render rather than check hooks/ as it is: the hooks are Jinja templates, and what runs is
the rendered file. Today the only Jinja in them is the answers' JSON inside a string literal,
so the raw files happen to parse; checking the rendered files keeps that true by construction
(a `{% if %}` or an expression outside a string would fail here, in `make lint`, rather than in
a user's render) and checks exactly the code cookiecutter executes.
"""

import sys
from pathlib import Path

from tools.template import HOOKS, hook_answers, render_hook


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tools.render_hooks DIR", file=sys.stderr)
        return 2
    target = Path(argv[0])
    target.mkdir(parents=True, exist_ok=True)
    answers = hook_answers()
    for name in HOOKS:
        (target / f"{name}.py").write_text(render_hook(name, answers), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
