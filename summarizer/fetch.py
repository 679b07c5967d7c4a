"""Fetching a document by URL: bounded in time, size and redirects, and safe to offer as a service.

Every failure is an InputError with one line that says what happened. With
``allow_private=False`` (what the HTTP service uses) a URL whose host resolves
to a loopback, private, link-local (cloud metadata), multicast or reserved
address is refused — checked on the resolved addresses before connecting, on
every redirect, and on the address the connection actually reached (so a DNS
answer that changes between the check and the connection gains nothing).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

from ._version import __version__
from .errors import InputError

__all__ = ["FetchPolicy", "Fetched", "fetch", "is_url"]

_TYPES = {
    "text/html": "html", "application/xhtml+xml": "html", "text/plain": "text", "text/markdown": "text",
    "application/pdf": "pdf",
}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


@dataclass(frozen=True)
class FetchPolicy:
    """How far a fetch may go."""

    timeout: float = 20.0  # seconds for the whole fetch, redirects included
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    allow_private: bool = True  # a person's own CLI may read their intranet; a shared service may not
    enabled: bool = True  # a service offers URL input only when its operator says so
    user_agent: str = f"summarizer/{__version__} (document summariser; +https://pypi.org/project/summarizer/)"


@dataclass(frozen=True)
class Fetched:
    """What a URL answered: the body, its kind (html, text, pdf), its declared charset, the final URL."""

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
    headers = {"user-agent": policy.user_agent, "accept": "text/html,application/xhtml+xml,application/pdf,"
                                                           "text/plain;q=0.9,*/*;q=0.1"}
    current = url
    try:
        with httpx.Client(timeout=policy.timeout, follow_redirects=False, headers=headers) as client:
            for _ in range(policy.max_redirects + 1):
                _check_target(current, policy)
                with client.stream("GET", current) as response:
                    _check_peer(current, response, policy)
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    return _read(current, response, policy, deadline)
    except httpx.TimeoutException:
        raise InputError(f"{url}: no answer within {policy.timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise InputError(f"{url}: cannot fetch ({type(exc).__name__}: {exc})") from None
    raise InputError(f"{url}: more than {policy.max_redirects} redirects")


def _read(url: str, response: object, policy: FetchPolicy, deadline: float) -> Fetched:
    import httpx

    assert isinstance(response, httpx.Response)
    if response.status_code >= 400:
        raise InputError(f"{url}: HTTP {response.status_code} {response.reason_phrase}".rstrip())
    message = Message()
    message["content-type"] = response.headers.get("content-type", "application/octet-stream")
    media = message.get_content_type()
    kind = _TYPES.get(media)
    if kind is None:
        raise InputError(f"{url}: not a document (content type {media}); summarizer reads HTML, text and PDF")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise InputError(f"{url}: larger than {policy.max_bytes // (1024 * 1024)} MiB")
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > policy.max_bytes:
            raise InputError(f"{url}: larger than {policy.max_bytes // (1024 * 1024)} MiB")
        if time.monotonic() > deadline:
            raise InputError(f"{url}: no answer within {policy.timeout:g} s")
    charset = message.get_param("charset")
    return Fetched(bytes(body), kind, charset if isinstance(charset, str) else None, str(response.url))


def _check_target(url: str, policy: FetchPolicy) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{url}: only http(s) URLs can be fetched")
    if policy.allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"{url}: cannot resolve {parts.hostname} ({exc})") from None
    for info in infos:
        _refuse_private(url, str(info[4][0]))


def _check_peer(url: str, response: object, policy: FetchPolicy) -> None:
    if policy.allow_private:
        return
    stream = getattr(response, "extensions", {}).get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        raise InputError(f"{url}: cannot tell which address answered; refused")
    _refuse_private(url, str(peer[0]))


def _refuse_private(url: str, address: str) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        raise InputError(f"{url}: refused: it resolves to a non-public address ({ip})")
