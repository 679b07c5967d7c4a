"""The brief task: one paragraph of plain prose, grounded against the source.

Its answer is plain text (it streams); validation holds it to one paragraph in
the word range with no preamble, and flags names and numbers the source lacks
(errors with ``strict``). Grammar-bound decoders get a grammar that opens on a
name from the text and counts words.
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
    # A grammar decoder must open on a name from the text (no preamble) and keep
    # to the word range: the grammar counts words, so the bound holds on every
    # path (single, bulk, re-ask, combine). A character bound did not: short
    # words fit more than MAX words into MAX × 6 characters.
    from .grounding import lead_names

    low, high = context.options.words
    # The grammar counts space-separated words; validation counts "45,000" and "U.S." as two and a
    # lone dash as none: keep a tenth of the range (at least a word) clear at each end.
    margin = max(1, (high - low) // 10)
    min_more, max_more = min(low - 1 + margin, high - 1), max(high - 1 - margin, low - 1)
    parts = context.parts
    return OutputSpec(grammar=context.template.grammar, grammar_values={
        "lead_words": lead_names(parts[0].text if parts else context.text), "min_more": min_more,
        "max_more": max_more,
        "min_chars": low * 6, "max_chars": high * 6,  # for custom templates written for the character bound
    })


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
