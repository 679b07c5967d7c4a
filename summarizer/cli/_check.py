"""`summarizer check SOURCE SUMMARY`: the faithfulness checker on any summary."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..errors import InputError, UsageError
from ._common import (
    PublishedOpt, _exit_codes, _out, _parse_date, app,
)


@app.command("check", short_help="Check a summary against its source, sentence by sentence.")
def check_command(
    source: Annotated[str, typer.Argument(
        help="The source: a text, Markdown, HTML or PDF file, an http(s) URL, or - for standard input.",
        show_default=False, metavar="SOURCE")],
    summary: Annotated[str, typer.Argument(
        help="The summary: a text file, or - for standard input.", show_default=False, metavar="SUMMARY")],
    published: PublishedOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the check (and the source text its offsets "
                                                         "point into) as JSON.")] = False,
) -> None:
    """Cite the source sentences behind each summary sentence and name what they do not back.

    Exit 0 when every sentence is supported or partial, 1 when any is unsupported, 2 for bad input.
    """
    from ..faithfulness import check
    from ..documents import decode_bytes, read_bytes

    with _exit_codes():
        if source == "-" and summary == "-":
            raise UsageError("only one of SOURCE and SUMMARY can be - (standard input)")
        from ..documents import read_document

        document = read_document(source, published=_parse_date(published))
        label = "stdin" if summary == "-" else summary
        text = " ".join(decode_bytes(read_bytes(summary), label).split())
        if not text:
            raise InputError(f"{label}: the summary is empty")
        result = check(text, document.text, published=document.published)
        if as_json:
            shown = result.model_dump(mode="json", exclude={"sentences": {"__all__": {"judged", "judge_reason"}}})
            payload = {**shown, "source": {"text": document.text, "digest": document.digest}}
            _out(json.dumps(payload, indent=2, ensure_ascii=False))
        else:
            _out(_render_check(result, document.text))
    raise typer.Exit(1 if result.flagged else 0)


def _render_check(result: Any, source: str) -> str:
    lines = []
    for n, sentence in enumerate(result.sentences, 1):
        lines.append(f"[{n}] {sentence.support.upper()}: {sentence.text}")
        for span in sentence.citations:
            quote = span.of(source)
            quote = quote if len(quote) <= 100 else quote[:97].rstrip() + "..."
            lines.append(f"    cites {span.start}-{span.end}: \"{quote}\"")
        if not sentence.citations:
            lines.append("    cites nothing")
        lines += [f"    {issue.kind}: {issue.detail}" for issue in sentence.issues]
    counts = {k: sum(s.support == k for s in result.sentences) for k in ("supported", "partial", "unsupported")}
    lines.append(f"{len(result.sentences)} sentence(s): " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return "\n".join(lines)
