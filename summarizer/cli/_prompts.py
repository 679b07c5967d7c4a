"""`summarizer prompts list|show`: the prompt templates and their versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import (
    _exit_codes, _out, prompts_app,
)


PromptsDirOpt = Annotated[Optional[Path], typer.Option(
    metavar="DIR", help="Directory whose <name>.toml override the built-in prompts.")]


@prompts_app.command("list", short_help="List the prompt templates.")
def prompts_list(prompts_dir: PromptsDirOpt = None) -> None:
    """List the prompt templates with their versions."""
    with _exit_codes():
        from ..prompts import PromptLibrary

        lines = [f"{t.id:<24} {t.description}  [{t.origin}]" for t in PromptLibrary(prompts_dir).all()]
        _out("\n".join(lines))


@prompts_app.command("show", short_help="Show one prompt template.")
def prompts_show(
    name: Annotated[str, typer.Argument(help="Template name, e.g. brief.", metavar="NAME")],
    prompts_dir: PromptsDirOpt = None,
) -> None:
    """Show one template: version, parameters, system, user and re-ask text."""
    with _exit_codes():
        from ..prompts import PromptLibrary

        t = PromptLibrary(prompts_dir).get(name)
        params = ", ".join(f"{k}={v}" for k, v in t.params.items())
        sections = [f"# {t.id} — {t.description}", f"# from: {t.origin}", f"# params: {params}",
                    "", "## system", t.system.strip(), "", "## user", t.user.strip(), "", "## reask", t.reask.strip()]
        _out("\n".join(sections))
