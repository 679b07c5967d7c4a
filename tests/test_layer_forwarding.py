"""Every backend layer forwards every member of the backend inside it: none silently loses one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from summarizer.backends import Backend, Completion, Delta, Paced, Retrying
from summarizer.backends.base import Capabilities, OutputSpec
from summarizer.backends.layer import Layer, Observed
from summarizer.limits import RateLimiter
from summarizer.schemas import Usage


class Inner(Backend):
    """A backend whose every member is distinctive and records that it was used."""

    model = "inner-model"
    max_concurrency = 3
    provider = "inner-provider"
    server = "http://inner.example/v1"
    capabilities = Capabilities(streaming=True, grammar=True, json_schema=False, batch=True)

    def __init__(self) -> None:
        self.calls: list[str] = []

    @property
    def identity(self) -> str:
        return "inner-identity"

    @property
    def notice(self) -> str | None:
        return "inner-notice"

    def batch_endpoint(self) -> Any:
        self.calls.append("batch_endpoint")
        return "inner-batch"

    async def complete(self, messages: list[dict[str, str]], *, output: OutputSpec = OutputSpec(),
                       params: Mapping[str, Any] | None = None) -> Completion:
        self.calls.append("complete")
        return Completion(text="whole", usage=Usage(requests=1), model=self.model)

    async def stream(self, messages: list[dict[str, str]], *, output: OutputSpec = OutputSpec(),
                     params: Mapping[str, Any] | None = None) -> AsyncIterator[Delta | Completion]:
        self.calls.append("stream")
        yield Delta("str")
        yield Delta("eamed")
        yield Completion(text="streamed", usage=Usage(requests=1), model=self.model)

    async def prime(self) -> None:
        self.calls.append("prime")

    async def aclose(self) -> None:
        self.calls.append("aclose")


LAYERS: dict[str, Callable[[Backend], Layer]] = {
    "Paced": lambda inner: Paced(inner, RateLimiter(None, None)),
    "Retrying": lambda inner: Retrying(inner),
    "Observed": Observed,
    "Layer": Layer,
}
try:
    from summarizer.serve.admission import Gated

    LAYERS["Gated"] = lambda inner: Gated(inner, 4)
except ImportError:  # the serve extra is not installed
    pass

CHECKS: dict[str, Callable[[Backend, Inner], None]] = {
    "model": lambda layer, inner: _equal(layer.model, "inner-model"),
    "max_concurrency": lambda layer, inner: _equal(layer.max_concurrency, 3),
    "provider": lambda layer, inner: _equal(layer.provider, "inner-provider"),
    "server": lambda layer, inner: _equal(layer.server, "http://inner.example/v1"),
    "capabilities": lambda layer, inner: _equal(layer.capabilities, inner.capabilities),
    "identity": lambda layer, inner: _equal(layer.identity, "inner-identity"),
    "notice": lambda layer, inner: _equal(layer.notice, "inner-notice"),
    "batch_endpoint": lambda layer, inner: _equal((layer.batch_endpoint(), inner.calls[-1]),
                                                  ("inner-batch", "batch_endpoint")),
    "complete": lambda layer, inner: _equal((asyncio.run(layer.complete([])).text, inner.calls[-1]),
                                            ("whole", "complete")),
    "stream": lambda layer, inner: _equal((asyncio.run(_streamed(layer)), inner.calls[-1]),
                                          (["str", "eamed", "streamed"], "stream")),
    "prime": lambda layer, inner: _equal((asyncio.run(layer.prime()), inner.calls[-1]), (None, "prime")),
    "aclose": lambda layer, inner: _equal((asyncio.run(layer.aclose()), inner.calls[-1]), (None, "aclose")),
}


def _equal(got: Any, expected: Any) -> None:
    assert got == expected


async def _streamed(layer: Backend) -> list[str]:
    return [event.text for event in [e async for e in layer.stream([])]]


def test_every_public_member_of_a_backend_is_checked() -> None:
    members = {name for name in dir(Backend) if not name.startswith("_")}
    assert members == set(CHECKS), "a new Backend member needs a forwarding check here"


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
@pytest.mark.parametrize("member", sorted(CHECKS))
def test_the_layer_forwards_the_member(layer_name: str, member: str) -> None:
    inner = Inner()
    layer = LAYERS[layer_name](inner)
    CHECKS[member](layer, inner)
    CHECKS[member](LAYERS[layer_name](layer), inner)  # and through a layer on a layer


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
def test_innermost_is_the_backend_under_every_layer(layer_name: str) -> None:
    inner = Inner()
    layer = LAYERS[layer_name](Observed(inner))
    assert isinstance(layer, Layer) and layer.innermost is inner
