"""Documents: read, decode, extract, normalise, drop repeated paragraphs, chunk.

Every input — a text or Markdown file, a web page (file or URL), a PDF, a
JSONL record, a string — becomes a ``Document`` here, before anything else
sees it: its normalised paragraphs, and what is known about it (title,
publication date, where it came from). Everything downstream (prompts,
grounding, cache keys) sees ``Document.text``, so a quote check and a cache
hit mean the same thing for the same article however it was scraped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .charsets import decode_page
from .errors import InputError
from .extract import html_article, pdf_text
from .fetch import FetchPolicy, Fetched, fetch, is_url

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "NOT_A_WEB_URL",
    "Document",
    "check_web_url",
    "decode_bytes",
    "estimate_tokens",
    "fetch_document",
    "fetched_document",
    "read_bytes",
    "read_document",
    "sentences",
    "split_into_chunks",
    "unicode_problem",
]

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # 16 MiB of text is ~4M tokens: far past any useful brief
# One message for every string that is not a web URL: it never says whether a path exists.
NOT_A_WEB_URL = "url: not an http:// or https:// URL (a document is text, html, or a web URL)"

_HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
_HTML_SNIFF = re.compile(
    r"<!doctype\s+html|<(html|body|p|div|br|article|section|h[1-6]|span|li|table)\b[^>]*>",
    re.IGNORECASE,
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"), None)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_LINE = re.compile(r"\n[ \t\u00a0]*\n")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])\s*")
# Scripts written without spaces between words, where a token is about a character.
_WIDE = re.compile(
    "[\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u2e80-\u9fff"
    "\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]"
)


@dataclass(frozen=True)
class Document:
    """A normalised document: paragraphs in order, each kept once, and what is known about it."""

    id: str
    paragraphs: tuple[str, ...]
    dropped_repeats: int = 0
    source: str | None = None
    title: str | None = None
    published: dt.date | None = None
    notes: tuple[str, ...] = ()  # what reading it had to do that a reader should know (become warnings)
    text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", "\n\n".join(self.paragraphs))

    @classmethod
    def from_text(
        cls, raw: str, *, id: str | None = None, source: str | None = None, html: bool | None = None,
        title: str | None = None, published: dt.date | None = None, url: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> Document:
        """Normalise ``raw`` (plain text or HTML) into a Document.

        ``html=None`` sniffs for markup. HTML goes through main-content extraction,
        which also finds the title and publication date (``title``/``published``
        given here win). The title becomes the first paragraph, as the model should see it.
        """
        found: list[str] = list(notes)
        for what, value in (("text", raw), ("id", id), ("title", title)):
            problem = unicode_problem(value or "")
            if problem is not None:
                raise InputError(f"{source or 'input'}: the {what} is not valid Unicode ({problem})")
        if html is None:
            html = _looks_like_html(raw)
        if html:
            article = html_article(raw, url=url)
            raw = article.text
            title = title or article.title
            published = published or article.published
            if article.fallback:
                found.append("no article found in the page: read all of its text (menus and footers included)")
        paragraphs = _split_paragraphs(_clean(raw))
        if title and paragraphs and _clean_line(title).casefold() != paragraphs[0].casefold():
            paragraphs.insert(0, _clean_line(title))
        unique, dropped = _drop_repeats(paragraphs)
        if not unique:
            raise InputError(f"{source or 'input'}: the document is empty (no text after normalisation)")
        return cls(id=id or _content_id(unique), paragraphs=tuple(unique), dropped_repeats=dropped,
                   source=source, title=title or None, published=published, notes=tuple(found))

    def to_state(self) -> dict[str, Any]:
        """The document as JSON-able data (a batch run keeps it between rounds); ``from_state`` rebuilds it."""
        return {"paragraphs": list(self.paragraphs), "dropped": self.dropped_repeats, "source": self.source,
                "title": self.title, "published": self.published.isoformat() if self.published else None,
                "notes": list(self.notes)}

    @classmethod
    def from_state(cls, doc_id: str, state: dict[str, Any]) -> Document:
        return cls(id=doc_id, paragraphs=tuple(state["paragraphs"]), dropped_repeats=state["dropped"],
                   source=state["source"], title=state["title"], published=date_or_none(state.get("published")),
                   notes=tuple(state["notes"]))

    @property
    def digest(self) -> str:
        """SHA-256 of the normalised text and the publication date: the document part of a cache key."""
        blob = self.text + (f"\n@{self.published.isoformat()}" if self.published else "")
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def date_or_none(value: str | None) -> dt.date | None:
    """An ISO date written by ``to_state`` (or None): the one way saved state carries a publication date."""
    return dt.date.fromisoformat(value) if value else None


def read_document(
    path: str | Path, *, id: str | None = None, published: dt.date | None = None,
    fetch_policy: FetchPolicy | None = None,
) -> Document:
    """Read a URL, a file (text, Markdown, HTML, PDF; a FIFO or ``/dev/stdin`` too), or stdin (``-``)."""
    name = str(path)
    if is_url(name):
        return _read_url(name, id=id, published=published, policy=fetch_policy)
    label = "stdin" if name == "-" else name
    data = read_bytes(path)
    default_id = "stdin" if name == "-" else Path(path).name
    if name != "-" and Path(path).suffix.lower() == ".pdf" or data.startswith(b"%PDF-"):
        return Document.from_text(pdf_text(data, label), id=id or default_id, source=label, html=False,
                                  published=published)
    html = True if name != "-" and Path(path).suffix.lower() in _HTML_SUFFIXES else None
    # A saved web page is decoded as a browser would (its <meta charset>, else UTF-8, else windows-1252).
    text = _decode_web(data, None, True, label) if html else decode_bytes(data, label)
    return Document.from_text(text, id=id or default_id, source=label, html=html, published=published)


def fetch_document(
    url: str, *, id: str | None = None, published: dt.date | None = None, fetch_policy: FetchPolicy | None = None,
) -> Document:
    """The document at an http(s) URL, fetched within ``fetch_policy``.

    Unlike ``read_document`` it never opens a local path, whatever the string: what
    a client of a shared service sends goes here.
    """
    return fetched_document(fetch(check_web_url(url), fetch_policy), id=id or url, published=published, source=url)


def check_web_url(url: str) -> str:
    """``url`` if it is a plain http(s) URL with a host, else InputError(NOT_A_WEB_URL).

    Strict on purpose: no surrounding whitespace, lower-case scheme, no control characters
    or spaces, a host and a valid port — nothing a path, a ``file:``/``gopher:`` URL or
    a URL in disguise could pass for.
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not url.isprintable() \
            or any(c.isspace() for c in url):
        raise InputError(NOT_A_WEB_URL)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise InputError(NOT_A_WEB_URL) from None
    if not parts.hostname:
        raise InputError(NOT_A_WEB_URL)
    return url


def fetched_document(
    fetched: Fetched, *, id: str | None = None, published: dt.date | None = None, source: str | None = None,
) -> Document:
    """What a URL answered (``fetch``), as a Document: PDF, HTML or text. No I/O: parsing only.

    ``source`` (default: the final URL) names the document in messages; ``id`` defaults to it.
    """
    url = source or fetched.url
    if fetched.kind == "pdf":
        return Document.from_text(pdf_text(fetched.content, url), id=id or url, source=url, html=False,
                                  published=published)
    text = _decode_web(fetched.content, fetched.charset, fetched.kind == "html", url)
    return Document.from_text(text, id=id or url, source=url, html=fetched.kind == "html", published=published,
                              url=fetched.url)


def _read_url(url: str, *, id: str | None, published: dt.date | None, policy: FetchPolicy | None) -> Document:
    return fetched_document(fetch(url, policy), id=id or url, published=published, source=url)


def _decode_web(data: bytes, charset: str | None, html: bool, name: str) -> str:
    """A web page's text, its encoding decided as a browser decides it (see charsets.py)."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{name}: looks like a binary file, not text; pass a .txt, .md or .html document")
    return decode_page(data, charset, html=html)[0]


def unicode_problem(text: str) -> str | None:
    """What makes ``text`` impossible to write as UTF-8: a lone surrogate (``"\\ud800"`` in JSON), or None.

    A lone surrogate reaches a str only through an escape (JSON, a decoder told to let errors
    through); it cannot go into a request body, a UTF-8 file, SQLite or Arrow.
    """
    match = _SURROGATE.search(text)
    if match is None:
        return None
    return f"a lone surrogate, U+{ord(match.group()):04X}, at character {match.start() + 1}"


def read_bytes(path: str | Path, *, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of a file or of stdin (``-``), at most ``limit`` of them; InputError otherwise."""
    name = str(path)
    try:
        if name == "-":
            if sys.stdin is None or sys.stdin.closed:
                raise InputError("stdin: standard input is closed; pass a file, or pipe a document in")
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory (use `summarizer bulk` for folders)") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"{'stdin' if name == '-' else name}: cannot read ({reason})") from None
    if len(data) > limit:
        raise InputError(f"{'stdin' if name == '-' else name}: larger than {limit // (1024 * 1024)} MiB; "
                         "split it, or summarise its parts")
    return data


def decode_bytes(data: bytes, name: str = "input") -> str:
    """Decode UTF-8 (with or without BOM) or BOM-marked UTF-16; refuse binary."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{name}: invalid UTF-16 text") from None
    if b"\x00" in data[:8192]:
        raise InputError(f"{name}: looks like a binary file, not text; pass a .txt, .md or .html document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def estimate_tokens(text: str) -> int:
    """Rough token count for servers that expose no tokenizer.

    ~4 UTF-8 bytes a token for alphabetic scripts; about a token per character
    for scripts written without spaces (CJK, Thai, …), where bytes undercount.
    """
    if text.isascii():
        return max(1, (len(text) + 3) // 4)
    wide = len(_WIDE.findall(text))
    rest = len(text.encode("utf-8")) - 3 * wide  # these characters are 3 bytes each in UTF-8
    return max(1, wide + (max(rest, 0) + 3) // 4)


def split_into_chunks(paragraphs: tuple[str, ...] | list[str], max_tokens: int) -> list[str]:
    """Pack paragraphs greedily into chunks of at most ``max_tokens``.

    Chunks break on paragraph boundaries; a paragraph too large on its own is
    cut at sentence ends, a sentence too large at spaces, and a run with no
    spaces (Chinese, Japanese, a URL) between characters. Every piece is a
    verbatim slice of its paragraph.
    """
    pieces = [piece for p in paragraphs for piece in _split_oversized(p, max_tokens)]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        cost = estimate_tokens(piece) + 1
        if current and size + cost > max_tokens:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(piece)
        size += cost
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def sentences(text: str, *, max_chars: int = 400) -> list[str]:
    """The sentences of ``text``, each once, cut at a word boundary to ``max_chars``.

    Every item is a verbatim substring of ``text``: the quotes a grammar-bound
    decoder may choose from.
    """
    found: dict[str, None] = {}
    for paragraph in text.split("\n\n"):
        paragraph = paragraph.strip()
        for sentence in _slices(paragraph, [m.end() for m in _SENTENCE_END.finditer(paragraph)]):
            if len(sentence) > max_chars:
                sentence = sentence[:max_chars].rsplit(" ", 1)[0]
            if sentence:
                found.setdefault(sentence, None)
    return list(found)


def _split_oversized(text: str, max_tokens: int) -> list[str]:
    if estimate_tokens(text) <= max_tokens:
        return [text]
    for boundary in (_SENTENCE_END, _SPACES):
        cuts = [m.end() for m in boundary.finditer(text) if 0 < m.end() < len(text)]
        if cuts:
            return [p for span in _pack(text, cuts, max_tokens) for p in _split_oversized(span, max_tokens)]
    step = max(1, max_tokens if _WIDE.search(text) else max_tokens * 2)  # at most 1 (wide) or 0.5 tokens a char
    return [text[i:i + step] for i in range(0, len(text), step)]


def _pack(text: str, cuts: list[int], limit: int) -> list[str]:
    """Contiguous slices of ``text`` between ``cuts``, each (by the sum of its parts' costs) within ``limit``."""
    bounds = [0, *cuts, len(text)]
    out: list[str] = []
    start, size = 0, 0
    for a, b in zip(bounds, bounds[1:]):
        cost = estimate_tokens(text[a:b])
        if size and size + cost > limit:
            out.append(text[start:a])
            start, size = a, 0
        size += cost
    out.append(text[start:])
    return [piece.strip() for piece in out if piece.strip()]


def _slices(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *(c for c in cuts if 0 < c < len(text)), len(text)]
    return [text[a:b].strip() for a, b in zip(bounds, bounds[1:]) if text[a:b].strip()]


def _looks_like_html(text: str) -> bool:
    return _HTML_SNIFF.search(text[:20000]) is not None


def _clean_line(text: str) -> str:
    return _SPACES.sub(" ", _clean(text)).strip()


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def _split_paragraphs(text: str) -> list[str]:
    # Scraped text either separates paragraphs by blank lines (and may hard-wrap
    # inside them) or puts one paragraph on each line, like the UNGA sample.
    blocks = _BLANK_LINE.split(text) if _BLANK_LINE.search(text) else text.split("\n")
    paragraphs = (_SPACES.sub(" ", block).strip() for block in blocks)
    return [p for p in paragraphs if p]


def _drop_repeats(paragraphs: list[str]) -> tuple[list[str], int]:
    seen: set[str] = set()
    unique: list[str] = []
    for paragraph in paragraphs:
        key = paragraph.casefold()
        if key not in seen:
            seen.add(key)
            unique.append(paragraph)
    return unique, len(paragraphs) - len(unique)


def _content_id(paragraphs: list[str]) -> str:
    return hashlib.sha256("\n\n".join(paragraphs).encode("utf-8")).hexdigest()[:12]
