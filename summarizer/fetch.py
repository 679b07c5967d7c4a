"""Fetching a document by URL: bounded in time, size and redirects, and safe to offer as a service.

Every failure is an InputError with one line that says what happened. A page
sent compressed (``Content-Encoding: gzip`` or ``deflate``, the two we ask for)
is inflated here under the size cap, which counts the *decoded* bytes: a
decompression bomb is refused after ``max_bytes`` of output, never held whole.

With ``allow_private=False`` (what the HTTP service uses) a URL whose host
resolves to a loopback, private, link-local (cloud metadata), multicast or
reserved address is refused. The name is resolved once, every address it
gives is checked, and the connection goes to those checked addresses — never
to a second answer of the resolver (DNS rebinding) — while the Host header
and TLS SNI keep the name. An IPv6 address that carries an IPv4 one
(``::ffff:a.b.c.d``, ``::a.b.c.d``, ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``)
is judged by the IPv4 address. Every redirect is checked the same way, and
the address the connection reached is checked again.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from ._version import __version__
from .errors import InputError

if TYPE_CHECKING:
    import httpx

__all__ = ["FetchPolicy", "Fetched", "fetch", "is_url"]

_TYPES = {
    "text/html": "html", "application/xhtml+xml": "html", "text/plain": "text", "text/markdown": "text",
    "application/pdf": "pdf",
}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
Pins = dict[tuple[str, int], list[str]]  # (host, port) -> the checked addresses to connect to


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


@dataclass(frozen=True)
class FetchPolicy:
    """How far a fetch may go."""

    timeout: float = 20.0  # seconds for the whole fetch, redirects included
    max_bytes: int = 10 * 1024 * 1024  # of the body as decoded (after gzip/deflate)
    max_redirects: int = 5
    allow_private: bool = True  # a person's own CLI may read their intranet; a shared service may not
    enabled: bool = True  # a service offers URL input only when its operator says so
    user_agent: str = f"summarizer/{__version__} (document summariser; +https://pypi.org/project/summarizer/)"


@dataclass(frozen=True)
class Fetched:
    """What a URL answered: the body (decoded), its kind (html, text, pdf), its declared charset, the final URL."""

    content: bytes
    kind: str
    charset: str | None
    url: str


def fetch(url: str, policy: FetchPolicy | None = None) -> Fetched:
    """GET ``url`` within ``policy``; InputError (exit 2) for anything that is not a readable document."""
    import httpx

    policy = policy or FetchPolicy()
    if not policy.enabled:
        raise InputError(f"{url}: URL input is off on this server (its operator can turn it on: --allow-urls)")
    deadline = time.monotonic() + policy.timeout
    headers = {"user-agent": policy.user_agent, "accept-encoding": "gzip, deflate",  # what _Inflate bounds
               "accept": "text/html,application/xhtml+xml,application/pdf,text/plain;q=0.9,*/*;q=0.1"}
    pins: Pins = {}
    current = url
    try:
        with _client(policy, headers, pins) as client:
            for _ in range(policy.max_redirects + 1):
                _check_target(current, policy, pins)
                with client.stream("GET", current) as response:
                    _check_peer(current, response, policy, pins)
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    return _read(current, response, policy, deadline)
    except httpx.TimeoutException:
        raise InputError(f"{url}: no answer within {policy.timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise InputError(f"{url}: cannot fetch ({type(exc).__name__}: {exc})") from None
    raise InputError(f"{url}: more than {policy.max_redirects} redirects")


def _client(policy: FetchPolicy, headers: dict[str, str], pins: Pins) -> httpx.Client:
    """An httpx client; under a closed policy, one that connects only to the addresses ``pins`` holds."""
    import httpx

    options: dict[str, Any] = {"timeout": policy.timeout, "follow_redirects": False, "headers": headers}
    if policy.allow_private:
        return httpx.Client(**options)
    # No proxies from the environment: a proxy would resolve the name itself, after our check.
    return httpx.Client(**options, transport=_pinned_transport(pins), trust_env=False)


def _pinned_transport(pins: Pins) -> httpx.HTTPTransport:
    """httpx's own transport, its connection pool given a network backend that connects to pinned addresses.

    httpcore's network backends are public API; httpx 0.28 has no argument to pass one
    (encode/httpx#3749), so the pool is built here with httpx's defaults and set in place.
    """
    import httpcore
    import httpx

    class Pinned(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self.inner = httpcore.SyncBackend()

        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
            addresses = pins.get((host, port))
            if not addresses:
                raise httpcore.ConnectError(f"{host}:{port} was not checked; refused")
            failure: Exception | None = None
            for address in addresses:  # as the system resolver's order gave them, like create_connection
                try:
                    return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    failure = exc
            assert failure is not None
            raise failure

        def connect_unix_socket(self, path: str, timeout: float | None = None,
                                socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
            raise httpcore.ConnectError("unix sockets are not fetched")

        def sleep(self, seconds: float) -> None:
            self.inner.sleep(seconds)

    transport = httpx.HTTPTransport(trust_env=False)
    limits = httpx.Limits()
    transport._pool = httpcore.ConnectionPool(  # noqa: SLF001 - see the docstring
        ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=Pinned(),
    )
    return transport


def _read(url: str, response: httpx.Response, policy: FetchPolicy, deadline: float) -> Fetched:
    if response.status_code >= 400:
        raise InputError(f"{url}: HTTP {response.status_code} {response.reason_phrase}".rstrip())
    message = Message()
    message["content-type"] = response.headers.get("content-type", "application/octet-stream")
    media = message.get_content_type()
    kind = _TYPES.get(media)
    if kind is None:
        raise InputError(f"{url}: not a document (content type {media}); summarizer reads HTML, text and PDF")
    too_large = f"{url}: larger than {policy.max_bytes // (1024 * 1024)} MiB"
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise InputError(too_large)
    decoding = _Decoding(url, response.headers.get("content-encoding", ""),
                         too_large + " once decompressed (a decompression bomb?)")
    body = bytearray()
    for chunk in response.iter_raw():
        body += decoding.feed(chunk, policy.max_bytes - len(body))
        if len(body) > policy.max_bytes:
            raise InputError(too_large)
        if time.monotonic() > deadline:
            raise InputError(f"{url}: no answer within {policy.timeout:g} s")
    decoding.finish()
    charset = message.get_param("charset")
    return Fetched(bytes(body), kind, charset if isinstance(charset, str) else None, str(response.url))


# -- Content-Encoding, inflated under the cap ------------------------------------------------------


class _Decoding:
    """A response's Content-Encoding chain (gzip, deflate), inflated chunk by chunk, never past the room left."""

    def __init__(self, url: str, header: str, too_large: str) -> None:
        self.layers: list[_Inflate] = []
        for name in reversed([part.strip().lower() for part in header.split(",") if part.strip()]):
            if name in ("gzip", "x-gzip", "deflate"):
                self.layers.append(_Inflate(url, "deflate" if name == "deflate" else "gzip", too_large))
            elif name != "identity":
                raise InputError(f"{url}: the page is sent with Content-Encoding {name!r}, which summarizer "
                                 "did not ask for and cannot read (it reads gzip and deflate)")

    def feed(self, data: bytes, room: int) -> bytes:
        for layer in self.layers:
            if not data:
                break
            data = layer.feed(data, room)
        return data

    def finish(self) -> None:
        for layer in self.layers:
            layer.finish()


class _Inflate:
    """One gzip or deflate layer whose output is refused (InputError) past the room it is given."""

    def __init__(self, url: str, encoding: str, too_large: str) -> None:
        self.url, self.encoding, self.too_large = url, encoding, too_large
        # gzip: its header; deflate: zlib-wrapped as the RFC says, or raw as some servers send it.
        self.wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        self.inflater: Any = zlib.decompressobj(self.wbits)
        self.started = False

    def feed(self, data: bytes, room: int) -> bytes:
        try:
            out = self._inflate(data, room)
        except zlib.error:
            if self.encoding != "deflate" or self.started:
                raise InputError(f"{self.url}: the page is not valid {self.encoding} data") from None
            self.wbits = -zlib.MAX_WBITS
            self.inflater = zlib.decompressobj(self.wbits)
            try:
                out = self._inflate(data, room)
            except zlib.error:
                raise InputError(f"{self.url}: the page is not valid deflate data") from None
        self.started = True
        if len(out) > room:
            raise InputError(self.too_large)
        return out

    def _inflate(self, data: bytes, room: int) -> bytes:
        out = self.inflater.decompress(data, room + 1)  # at most one byte past the room: a bomb stops here
        while self.inflater.eof and self.inflater.unused_data and len(out) <= room:  # concatenated gzip members
            rest = self.inflater.unused_data
            self.inflater = zlib.decompressobj(self.wbits)
            out += self.inflater.decompress(rest, room + 1 - len(out))
        return bytes(out)

    def finish(self) -> None:
        if self.started and not self.inflater.eof:
            raise InputError(f"{self.url}: the page's {self.encoding} data is cut short")


# -- where a URL may lead ----------------------------------------------------------------------------


def _check_target(url: str, policy: FetchPolicy, pins: Pins) -> None:
    """Refuse a URL that is not http(s); under a closed policy, resolve its host once and pin what passed."""
    import httpx

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{url}: only http(s) URLs can be fetched")
    if policy.allow_private:
        return
    try:
        target = httpx.URL(url)
        host = target.raw_host.decode("ascii")  # what the connection pool will ask for (IDNA-encoded)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise InputError(f"{url}: not a valid URL ({exc})") from None
    port = target.port or (443 if target.scheme == "https" else 80)
    if (host, port) in pins:
        return  # checked on an earlier hop: the same addresses, never a new answer
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"{url}: cannot resolve {host} ({exc})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        _refuse_private(url, address)
    pins[(host, port)] = addresses


def _check_peer(url: str, response: httpx.Response, policy: FetchPolicy, pins: Pins) -> None:
    """The address the connection reached must be one of those checked (a second line of defence)."""
    if policy.allow_private:
        return
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        raise InputError(f"{url}: cannot tell which address answered; refused")
    _refuse_private(url, str(peer[0]))
    if not any(str(peer[0]) in addresses for addresses in pins.values()):
        raise InputError(f"{url}: refused: the connection reached {peer[0]}, an address that was not checked")


def _refuse_private(url: str, address: str) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    judged = _embedded_ipv4(ip) or ip
    # IPv6 outside 2000::/3 is "reserved" (unallocated): Python 3.11 calls some of it global.
    if not judged.is_global or judged.is_multicast or judged.is_reserved:
        shown = f"{ip}, which carries {judged}" if judged is not ip else str(ip)
        raise InputError(f"{url}: refused: it resolves to a non-public address ({shown})")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, IPv4-compatible, NAT64, 6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
