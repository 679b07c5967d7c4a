"""`summarizer schema TASK`: the JSON Schema of a task's value, or of what a model answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import (
    _exit_codes, _out, _registry, app,
)


@app.command(short_help="Print the JSON Schema of a task's output.")
def schema(
    name: Annotated[str, typer.Argument(help="The task (brief, events, or any registered task).",
                                        metavar="TASK")] = "events",
    answer: Annotated[bool, typer.Option("--answer", help="The schema a model answers in (what structured "
                                         "output is given), not the one results carry.")] = False,
    full: Annotated[bool, typer.Option("--full", help="With --answer: keep the length limits OpenAI strict "
                                       "mode does not accept.")] = False,
    tasks_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="A folder of user-defined tasks. Env: SUMMARIZER_TASKS_DIR.")] = None,
) -> None:
    """Print the JSON Schema of a task's value (what results carry), or with --answer what a model is asked for."""
    from ..schemas import strict_schema

    with _exit_codes():
        spec = _registry(tasks_dir).get(name)
        if answer and spec.schema is not None:
            document = spec.schema if full or not spec.strict_schema else strict_schema(spec.schema)
        elif spec.answer_model is None and spec.schema is not None:
            document = spec.schema  # the answer is the value (a task defined by a JSON Schema)
        else:
            document = spec.value_model.model_json_schema()
        _out(json.dumps(document, indent=2))
