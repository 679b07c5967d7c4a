"""The brief task: one paragraph of plain prose, grounded against the source.

Its answer is plain text (it streams); validation holds it to one paragraph in
the word range with no preamble, and flags names and numbers the source lacks
(errors with ``strict``). Grammar-bound decoders get a grammar that composes
the brief from the document's own sentences, lead first, within the word range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends.base import OutputSpec
from .registry import OutputContext, TaskSpec
from .schemas import Brief
from .verify import Claim

if TYPE_CHECKING:
    from .grounding import SourceIndex
    from .options import TaskOptions
    from .verify import Verdict

__all__ = ["SPEC"]


def _validate(raw: str, finish: str | None, source: SourceIndex, options: TaskOptions) -> tuple[Brief, list[str]]:
    from .validation import validate_brief  # (the checker behind it is imported when a brief is first checked)

    return validate_brief(raw, finish, source, words=options.words, strict=options.strict)


def _output(context: OutputContext[Brief]) -> OutputSpec:
    # A grammar decoder composes the brief from the document's own sentences (or, combining,
    # the part briefs'), the lead first, in the word range on every path: see ``extractive``.
    from .extractive import BRIEF_UNITS, brief_grammar_values, grammar_digest

    chosen = "\n\n".join(part.text for part in context.parts) if context.parts else context.text
    words, text = context.options.words, context.text
    return OutputSpec(grammar=context.template.grammar, grammar_values=lambda: brief_grammar_values(chosen, words),
                      grammar_digest=lambda: grammar_digest(text, of=chosen, limit=BRIEF_UNITS))  # it reads what it may choose


def _claims(brief: Brief, source: str) -> list[Claim]:
    """Each sentence, with the source sentences it cites (the lead when it cites none)."""
    lead = source[:600]
    return [Claim(label=f"sentence {n}", text=sentence.text,
                  excerpt=" ".join(c.of(source) for c in sentence.citations) or lead)
            for n, sentence in enumerate(brief.sentences, 1)]


def _judged(brief: Brief, verdicts: list[Verdict]) -> Brief:
    sentences = [sentence.model_copy(update={"judged": "supported" if v.supported else "unsupported",
                                             "judge_reason": v.reason or None})
                 for sentence, v in zip(brief.sentences, verdicts, strict=True)]
    return brief.model_copy(update={"sentences": sentences})


SPEC: TaskSpec[Brief] = TaskSpec(
    name="brief", value_model=Brief, validate=_validate, output=_output,
    description="Write a one-paragraph brief of a document; names and numbers are checked against it.",
    options=("words", "language", "strict"),
    as_part=lambda value, n: f"Part {n}: {value.text}",
    render=lambda value: value.text,
    claims=_claims, judged=_judged,
)
