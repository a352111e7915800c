"""Developer tools, run from the project's root with `python -m tools.<name>`: not part of the
app (the wheel and the Docker image leave them out) and not tests (pytest does not collect
them)."""
