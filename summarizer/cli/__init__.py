"""The ``summarizer`` command: parse flags, call the library, print, map errors to exit codes.

Exit codes: 0 ok · 1 some bulk items failed (or the eval gate, or ``check`` found an
unsupported sentence) · 2 bad input, usage or unwritable output · 3 configuration ·
4 provider failing · 5 model output invalid after re-asks · 6 ``--fail-on-warnings``
and content the source does not back. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from .._version import __version__

# Each module registers its commands on ``app`` as it is imported; this order is the order of --help.
from . import _run, _bulk, _eval, _service, _check, _export, _schema, _prompts  # noqa: F401  (isort: skip)
from ._common import _err, app
from ._run import _TASKS_PROBLEM

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"summarizer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Grounded one-paragraph briefs and structured event reports from documents."""
    _refuse_broken_tasks()
    # pypdf logs every repair it makes to a damaged file ("incorrect startxref pointer"): not a reader's business.
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def _refuse_broken_tasks() -> None:
    """A task plugin that cannot load is one line and exit 3 for every command (never a task silently missing)."""
    if _TASKS_PROBLEM:
        _err(f"error: {_TASKS_PROBLEM[0]}")
        raise typer.Exit(_TASKS_PROBLEM[0].exit_code)


def main() -> None:
    try:
        _refuse_broken_tasks()  # before --help and --version too: the callback does not run for those
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    app(prog_name="summarizer")
