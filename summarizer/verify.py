"""``--verify``: the configured model judges each claim against the source text cited for it.

A task that can be verified says what its claims are (``TaskSpec.claims``): a
brief's sentences with the source sentences they cite, an event's participants,
place and time with its evidence quotes. One request per document asks the model
MiniCheck's question for each — is every piece of information in the claim
supported by its excerpt? — and gets JSON verdicts back. A malformed answer is
sent back like any invalid answer; after the re-asks it becomes a warning,
never a failure of the document. Unsupported claims are warnings naming them;
with ``strict`` the answer is asked again with those claims named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .backends.base import OutputSpec

__all__ = ["VERDICT_SCHEMA", "Claim", "Verdict", "claims_text", "judge_output", "parse_verdicts"]

_MAX_EXCERPT = 1500  # characters of source text a claim is judged against


@dataclass(frozen=True)
class Claim:
    """One thing an answer says, and the source text that should back it."""

    label: str  # how a warning or a re-ask names it: "sentence 2", "events[0] participants"
    text: str
    excerpt: str


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim: int = Field(ge=1)
    supported: bool
    reason: str = Field(max_length=400)  # the schema asks for it short; a wordy judge's verdict still counts

    @field_validator("reason", mode="before")
    @classmethod
    def _cut(cls, value: Any) -> Any:
        return value[:399] + "…" if isinstance(value, str) and len(value) > 400 else value


class _Verdicts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdicts: list[Verdict]


VERDICT_SCHEMA: dict[str, Any] = _Verdicts.model_json_schema()


def claims_text(claims: list[Claim]) -> str:
    """The judge's user message: each claim, numbered, with its excerpt."""
    blocks = [f"Claim {n}: {claim.text}\nDocument excerpt {n}: {claim.excerpt[:_MAX_EXCERPT]}"
              for n, claim in enumerate(claims, 1)]
    return "\n\n".join(blocks)


def judge_output() -> OutputSpec:
    return OutputSpec(json_schema=VERDICT_SCHEMA, name="verdicts")


def parse_verdicts(raw: str, count: int) -> list[Verdict]:
    """One verdict per claim, in claim order; Invalid (what to fix) otherwise."""
    from .validation import Invalid, extract_json, pydantic_errors

    try:
        data = extract_json(raw)
    except ValueError as exc:
        raise Invalid([str(exc)]) from None
    try:
        verdicts = _Verdicts.model_validate(data).verdicts
    except ValidationError as exc:
        raise Invalid(pydantic_errors(exc)) from None
    by_claim: dict[int, Verdict] = {}
    problems = []
    for verdict in verdicts:
        if verdict.claim > count:
            problems.append(f"there is no claim {verdict.claim}: judge claims 1 to {count}")
        elif verdict.claim in by_claim:
            problems.append(f"claim {verdict.claim} is judged twice")
        by_claim.setdefault(verdict.claim, verdict)
    missing = [str(n) for n in range(1, count + 1) if n not in by_claim]
    if missing:
        problems.append(f"no verdict for claim(s) {', '.join(missing)}")
    if problems:
        raise Invalid(problems)
    return [by_claim[n] for n in range(1, count + 1)]
