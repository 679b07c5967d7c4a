"""What a request costs before the document: fixed prompt tokens per task and output mode.

For brief and events, in each structured-output mode, this builds the exact
request body the OpenAI backend would send (no network) and prints the tokens
of the fixed part (system + user frame + whatever response_format carries),
and of the seed article itself. Tokens are estimated (summarizer's estimator:
~4 bytes a token); with the `local` extra installed, the SmolLM2 tokenizer's
count of the messages is printed too.

    python benchmarks/prompt_tokens.py                    # the shipped prompts
    python benchmarks/prompt_tokens.py --prompts-dir DIR  # e.g. an older version, to compare
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from summarizer import Document, OpenAIBackend, OutputMode, TaskOptions  # noqa: E402
from summarizer.documents import estimate_tokens  # noqa: E402
from summarizer.prompts import PromptLibrary, message_tokens  # noqa: E402
from summarizer.tasks import TaskRun  # noqa: E402

SEED = ROOT / "examples" / "unga-repeated.txt"
MODES = [OutputMode.JSON_SCHEMA, OutputMode.JSON_OBJECT_SCHEMA, OutputMode.JSON_OBJECT, OutputMode.TEXT]


def _tokenizer() -> object | None:
    try:
        from llama_cpp import Llama

        from summarizer.backends.local import bundled_model_path
    except ImportError:
        return None
    path = bundled_model_path()
    return Llama(model_path=str(path), vocab_only=True, verbose=False) if path else None


def _format_tokens(body: dict[str, object]) -> int:
    return estimate_tokens(json.dumps(body.get("response_format") or "", separators=(",", ":"))) \
        if "response_format" in body and isinstance(body["response_format"], dict) and \
        "schema" in json.dumps(body["response_format"]) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts-dir", type=Path, default=None)
    args = parser.parse_args()
    prompts = PromptLibrary(args.prompts_dir)
    seed = Document.from_text(SEED.read_text("utf-8"), id="seed")
    empty = Document(id="empty", paragraphs=("",))
    backend = OpenAIBackend(model="m", base_url="http://unused.invalid/v1")
    tokenizer = _tokenizer()
    print(f"prompts: {prompts.get('brief').id}, {prompts.get('events').id}  (seed article: "
          f"{estimate_tokens(seed.text)} tokens estimated)")
    header = f"{'task':<7} {'mode':<19} {'messages':>9} {'schema in':>10} {'fixed':>6} {'+seed':>6}"
    print(header + ("  smollm2 fixed" if tokenizer else ""))
    for task in ("brief", "events"):
        for mode in MODES if task == "events" else [OutputMode.TEXT]:
            fixed = _request(task, empty, prompts, backend, mode)
            full = _request(task, seed, prompts, backend, mode)
            messages = message_tokens(fixed["messages"])  # type: ignore[arg-type]
            schema = _format_tokens(fixed)
            total = message_tokens(full["messages"]) + _format_tokens(full)  # type: ignore[arg-type]
            line = f"{task:<7} {mode.value:<19} {messages:>9} {schema:>10} {messages + schema:>6} {total:>6}"
            if tokenizer is not None:
                real = sum(len(tokenizer.tokenize(m["content"].encode(), add_bos=False))  # type: ignore[attr-defined]
                           for m in fixed["messages"])  # type: ignore[attr-defined]
                line += f"  {real:>13}"
            print(line)


def _request(task: str, document: Document, prompts: PromptLibrary, backend: OpenAIBackend,
             mode: OutputMode) -> dict[str, object]:
    run = TaskRun(task, document, prompts, TaskOptions())  # type: ignore[arg-type]
    request = run.start()[0]
    return backend.request_body(request.messages, output=request.output, params=request.params, mode=mode)


if __name__ == "__main__":
    main()
