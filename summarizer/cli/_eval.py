"""`summarizer eval`: the offline eval gate (or --live / --record against an endpoint)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..errors import UsageError

if TYPE_CHECKING:  # imported where a command needs them: `summarizer --help` stays fast
    from ..client import Summarizer
from ._common import (
    _endpoint_values, _exit_codes, _out, app, endpoint_options,
)


@app.command("eval", short_help="Score prompts and validation on the offline eval set.")
@endpoint_options
def eval_(
    case: Annotated[Optional[list[str]], typer.Option("--case", metavar="NAME",
                                                      help="Run only this case (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scorecard and checks as JSON.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Score the configured endpoint instead of the recordings.")] = False,
    record: Annotated[bool, typer.Option(
        "--record", help="Call the configured endpoint and save its answers as the recordings.")] = False,
    evals_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="The eval set [default: ./evals if it exists, else the set shipped with summarizer].")] = None,
    *, endpoint: dict[str, Any],
) -> None:
    """Score prompts, parsing and validation on the offline eval set (recorded responses).

    Exit 0 when every deliberate flaw was caught and every threshold held, 1 otherwise;
    --live/--record: 4 when the endpoint cannot be reached (or keeps failing), 3 when it refuses the key.
    """
    from ..evaluation import default_evals_dir, run_eval
    from ..progress import print_scorecard

    with _exit_codes():
        given = {k: v for k, v in endpoint.items() if v not in (None, False)}
        if given and not (live or record):
            raise UsageError(f"{', '.join('--' + k.replace('_', '-') for k in given)} only apply with --live or --record")
        factory = functools.partial(_eval_summarizer, endpoint) if live or record else None
        report = run_eval(evals_dir or default_evals_dir(), names=case, live=live, record=record,
                          summarizer_factory=factory)
    if as_json:
        _out(json.dumps(report.as_dict(), indent=2))
    else:
        print_scorecard(report)
    raise typer.Exit(0 if report.passed else 1)


def _eval_summarizer(endpoint: dict[str, Any], **case_settings: Any) -> Summarizer:
    from ..client import Summarizer

    settings = _endpoint_values(endpoint)
    settings["server_grammar"] = settings["server_grammar"] or None
    return Summarizer(**{**settings, **{k: v for k, v in case_settings.items() if v is not None}})
