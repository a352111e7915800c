"""Child processes for the template's tests and tools: one way to run a command, one way to
start and stop a server, one way to find a free port.

Stopping never relies on SIGINT. A job started in the background by a non-interactive shell
(`nohup make test &`, a CI runner) inherits SIGINT as *ignored*, and so does everything it
starts: a child stopped with SIGINT would never stop. Children get SIGTERM, sent to the
process group they lead (make and what it runs, taskset and what it execs), and SIGKILL if they
are still there after a grace period. Each child leads a session of its own, so the group is
exactly what it started, and so that our own `finally` blocks decide when it stops: they run
on Ctrl-C, on timeouts, and on SIGTERM once the entry point (pytest's conftest, a tool's
main) has called `stop_children_on_sigterm`.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

BIN_DIR = Path(sys.executable).parent

# What must not leak from this process into a child that runs a generated project: our venv,
# the outer make's state (a generated project's make must run at top level, as a user's
# would) and any Sentry setting of the caller's shell.
INHERITED = {"VIRTUAL_ENV", "PYTHONPATH", "MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a generated project's commands: no venv of ours leaking into it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in INHERITED and not key.startswith("SENTRY_")
    }
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if Path(part) != BIN_DIR
    )
    env.update(extra)
    return env


class CommandError(AssertionError):
    """A command failed or ran out of time. An AssertionError, so a test reports it as a
    failure with the command's output; a tool prints it and exits 1."""


def _tail(text: str, characters: int) -> str:
    return text[-characters:] if len(text) > characters else text


def run(
    command: Sequence[str],
    cwd: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end with its output captured and no standard input. With `check`
    (the default) a non-zero exit raises CommandError carrying the end of its output. On a
    timeout, or if this process is interrupted meanwhile, the command and everything it
    started are stopped (`stop`) before the exception goes on."""
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _stop_group(process)
        raise CommandError(
            f"{' '.join(command)} (in {cwd}) did not finish within {timeout:g} s\n"
            f"{_tail(stdout, 6000)}\n{_tail(stderr, 4000)}"
        ) from None
    except BaseException:
        _stop_group(process)
        raise
    result = subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise CommandError(
            f"{' '.join(command)} failed in {cwd} (exit {result.returncode})\n"
            f"{_tail(stdout, 6000)}\n{_tail(stderr, 4000)}"
        )
    return result


def start(
    command: Sequence[str],
    cwd: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[str] | None = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start a long-running child (a server, a receiver) in a session of its own; `stop` ends
    it. Standard error goes where its output goes."""
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[str], grace: float = 30) -> str:
    """SIGTERM to the child's process group, SIGKILL after `grace` seconds; returns what the
    child wrote to its pipe since it was last read ("" when it writes elsewhere)."""
    return _stop_group(process, grace)[0]


def _stop_group(process: subprocess.Popen[str], grace: float = 30) -> tuple[str, str]:
    _signal_group(process, signal.SIGTERM)
    try:
        return _text(*process.communicate(timeout=grace))
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
    try:
        return _text(*process.communicate(timeout=10))
    except subprocess.TimeoutExpired:  # a grandchild that left the group holds the pipe
        process.wait()
        return "", ""


def _signal_group(process: subprocess.Popen[str], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has gone already
        os.killpg(process.pid, sig)


def _text(stdout: str | None, stderr: str | None) -> tuple[str, str]:
    return stdout or "", stderr or ""


def stop_children_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt in this process, as Ctrl-C does, so that every
    `finally` runs and stops the children before the process exits. Without it SIGTERM (from
    `kill`, or a runner cancelling the job) ends Python at once, and its children, each in a
    session of its own, would outlive it. Call it from the main thread of an entry point."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
