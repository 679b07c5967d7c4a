"""Documents: read, decode, HTML to text, normalise, drop repeated paragraphs, chunk.

Everything downstream (prompts, grounding, cache keys) sees ``Document.text``,
the normalised form, so a quote check and a cache hit mean the same thing
for the same article however it was scraped.
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "Document",
    "decode_bytes",
    "estimate_tokens",
    "read_bytes",
    "read_document",
    "sentences",
    "split_into_chunks",
]

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # 16 MiB of text is ~4M tokens: far past any useful brief

_HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
_HTML_SNIFF = re.compile(
    r"<!doctype\s+html|<(html|body|p|div|br|article|section|h[1-6]|span|li|table)\b[^>]*>",
    re.IGNORECASE,
)
_DROPPED_TAGS = ("script", "style", "noscript", "template", "svg", "iframe", "head")
_BLOCK_TAGS = (
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "article", "section", "header", "footer", "blockquote", "pre", "tr",
    "table", "figure", "figcaption", "main", "aside", "dd", "dt", "hr",
)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"), None)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_LINE = re.compile(r"\n[ \t\u00a0]*\n")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")


@dataclass(frozen=True)
class Document:
    """A normalised document: paragraphs in order, each kept once."""

    id: str
    paragraphs: tuple[str, ...]
    dropped_repeats: int = 0
    source: str | None = None
    text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", "\n\n".join(self.paragraphs))

    @classmethod
    def from_text(
        cls, raw: str, *, id: str | None = None, source: str | None = None,
        html: bool | None = None,
    ) -> Document:
        """Normalise ``raw`` (plain text or HTML) into a Document.

        ``html=None`` sniffs for markup; pass True/False to decide.
        """
        if html is None:
            html = _looks_like_html(raw)
        if html:
            raw = _html_to_text(raw)
        paragraphs = _split_paragraphs(_clean(raw))
        unique, dropped = _drop_repeats(paragraphs)
        if not unique:
            raise InputError(f"{source or 'input'}: the document is empty (no text after normalisation)")
        return cls(id=id or _content_id(unique), paragraphs=tuple(unique),
                   dropped_repeats=dropped, source=source)

    @property
    def digest(self) -> str:
        """SHA-256 of the normalised text: the document part of a cache key."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def read_document(path: str | Path, *, id: str | None = None) -> Document:
    """Read a file (a regular file, a FIFO, ``/dev/stdin``…), or standard input when ``path`` is ``-``."""
    name = "stdin" if str(path) == "-" else str(path)
    data = read_bytes(path)
    html = True if str(path) != "-" and Path(path).suffix.lower() in _HTML_SUFFIXES else None
    default_id = "stdin" if str(path) == "-" else Path(path).name
    return Document.from_text(decode_bytes(data, name), id=id or default_id, source=name, html=html)


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
    """Rough token count (~4 UTF-8 bytes a token) for servers that expose no tokenizer."""
    return max(1, (len(text.encode("utf-8")) + 3) // 4)


def split_into_chunks(paragraphs: tuple[str, ...] | list[str], max_tokens: int) -> list[str]:
    """Pack paragraphs greedily into chunks of at most ``max_tokens``.

    Chunks break on paragraph boundaries; a paragraph too large on its own is
    split on sentence ends, and a sentence too large on word boundaries.
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
        for sentence in _SENTENCE_END.split(paragraph.strip()):
            if len(sentence) > max_chars:
                sentence = sentence[:max_chars].rsplit(" ", 1)[0]
            if sentence:
                found.setdefault(sentence, None)
    return list(found)


def _split_oversized(paragraph: str, max_tokens: int) -> list[str]:
    if estimate_tokens(paragraph) <= max_tokens:
        return [paragraph]
    out: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        if estimate_tokens(sentence) <= max_tokens:
            out.append(sentence)
            continue
        words, buf = sentence.split(" "), list[str]()
        for word in words:
            if buf and estimate_tokens(" ".join([*buf, word])) > max_tokens:
                out.append(" ".join(buf))
                buf = []
            buf.append(word)
        if buf:
            out.append(" ".join(buf))
    return out


def _looks_like_html(text: str) -> bool:
    return _HTML_SNIFF.search(text[:20000]) is not None


def _html_to_text(markup: str) -> str:
    """The text of ``markup``, a blank line around each block element.

    One pass over the tree with an explicit stack: linear however deeply the
    markup nests (mutating the tree instead is quadratic on deep nesting).
    """
    from bs4 import BeautifulSoup  # imported on demand: most input is plain text
    from bs4.element import NavigableString, Tag

    soup = BeautifulSoup(markup, "html.parser")
    out: list[str] = []
    stack: list[tuple[object, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if type(node) is NavigableString:  # comments, doctypes and CDATA are subclasses: skipped
            out.append(str(node))
        elif isinstance(node, Tag) and node.name not in _DROPPED_TAGS:
            block = node.name in _BLOCK_TAGS
            if block:
                out.append("\n\n")
            if not leaving:
                if block:
                    stack.append((node, True))
                stack.extend((child, False) for child in reversed(node.contents))
    return "".join(out)


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
