"""A web page's character encoding, decided as browsers decide it (the WHATWG encoding sniffing algorithm).

In order: a byte order mark; the charset the HTTP header declares; a ``<meta charset>`` (or
``http-equiv``) in the page's first kilobytes; else UTF-8 if the bytes are UTF-8, else
windows-1252 — what a browser shows for an undeclared page in a Western locale. Labels are
read as browsers read them: ``iso-8859-1``, ``latin1`` and ``ascii`` mean windows-1252 (its
0x80–0x9F are curly quotes and dashes, not control characters). Statistical detection is
not used: on a short page it guesses (a latin-1 "Liège" read as windows-1250 is "Ličge").
"""

from __future__ import annotations

import codecs
import re

__all__ = ["decode_page"]

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_META = re.compile(
    rb"""<meta\s[^>]*?(?:charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)"""
    rb"""|http-equiv\s*=\s*["']?content-type["']?[^>]*?content\s*=\s*["'][^"']*?charset\s*=\s*([A-Za-z0-9_.:-]+))""",
    re.IGNORECASE,
)
_PRESCAN = 4096  # WHATWG looks at the first 1,024 bytes; pages with long heads put it a little later
_WINDOWS_1252 = "summarizer.windows-1252"
# WHATWG labels whose meaning differs from Python's codec of the same name.
_LABELS = {
    **dict.fromkeys(("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1",
                     "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1",
                     "us-ascii", "windows-1252", "x-cp1252"), _WINDOWS_1252),
    **dict.fromkeys(("utf-16", "utf-16le", "utf-16be", "unicode", "ucs-2"), "utf-8"),  # in a <meta>: means UTF-8
    "unicode-1-1-utf-8": "utf-8", "utf8": "utf-8", "x-unicode20utf8": "utf-8",
}


def _c1(error: UnicodeError) -> tuple[str, int]:
    """The five bytes windows-1252 leaves undefined decode to the C1 controls of the same value (as WHATWG's)."""
    assert isinstance(error, UnicodeDecodeError)
    return "".join(chr(b) for b in error.object[error.start:error.end]), error.end


codecs.register_error(_WINDOWS_1252, _c1)


def decode_page(data: bytes, declared: str | None, *, html: bool) -> tuple[str, str]:
    """``data`` as text, and the encoding used. Undecodable bytes in a declared encoding become U+FFFD."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, "replace"), encoding
    for label in (declared, _meta_charset(data) if html else None):
        found = _encoding(label) if label else None
        if found is not None:
            return _decode(data, found, "replace"), found
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return _decode(data, _WINDOWS_1252, "strict"), "windows-1252"


def _meta_charset(data: bytes) -> str | None:
    match = _META.search(data[:_PRESCAN])
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("ascii", "replace")


def _encoding(label: str) -> str | None:
    """The codec for a charset label, or None for a label no browser knows (then it is ignored)."""
    name = label.strip().strip("\"'").lower()
    if name in _LABELS:
        return _LABELS[name]
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _decode(data: bytes, encoding: str, errors: str) -> str:
    if encoding == _WINDOWS_1252:
        return data.decode("cp1252", _WINDOWS_1252)
    return data.decode(encoding, errors)
