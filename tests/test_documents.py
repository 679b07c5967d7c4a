from __future__ import annotations

from pathlib import Path

import pytest
from conftest import UNGA

from summarizer import Document, InputError, read_document
from summarizer.documents import decode_bytes, estimate_tokens, split_into_chunks


def test_repeated_paragraphs_are_kept_once() -> None:
    doc = read_document(UNGA)
    assert len(doc.paragraphs) == 4
    assert doc.dropped_repeats == 8
    assert doc.text.count("Russian Foreign Minister Sergei Lavrov discussed") == 1
    assert doc.paragraphs[1].startswith('"We have been using it')


def test_blank_line_paragraphs_join_hard_wrapped_lines() -> None:
    doc = Document.from_text("First line\nwrapped here.\n\n\nSecond   para.\n")
    assert doc.paragraphs == ("First line wrapped here.", "Second para.")


def test_utf8_bom_and_crlf_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffCafé opened.\r\nIt was busy.\r\n".encode())
    doc = read_document(path)
    assert doc.paragraphs == ("Café opened.", "It was busy.")


def test_utf16_with_bom_is_decoded() -> None:
    assert decode_bytes("Hello".encode("utf-16")) == "Hello"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("Caf\u00e9".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 3)"),
    ],
)
def test_undecodable_input_is_an_input_error(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(InputError, match="bad.txt") as info:
        read_document(path)
    assert fragment in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("text", ["", "   \n\t\n  ", "<html><body><script>x()</script></body></html>"])
def test_empty_documents_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        Document.from_text(text)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_document(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="is a directory"):
        read_document(tmp_path)


def test_html_becomes_paragraphs_without_markup_or_scripts() -> None:
    html = (
        "<!doctype html><html><head><title>T</title><style>p{}</style></head><body>"
        "<h1>Quake hits <b>Chile</b></h1><script>track()</script>"
        "<p>A magnitude 7.1 <a href='#'>earthquake</a> struck on Monday.</p>"
        "<p>Officials said&nbsp;two people died.</p></body></html>"
    )
    doc = Document.from_text(html)
    assert doc.paragraphs == (
        "Quake hits Chile",
        "A magnitude 7.1 earthquake struck on Monday.",
        "Officials said two people died.",
    )


def test_html_file_suffix_forces_html(tmp_path: Path) -> None:
    path = tmp_path / "a.html"
    path.write_text("Plain <em>emphasis</em> only", "utf-8")
    assert read_document(path).text == "Plain emphasis only"


def test_chunks_break_on_paragraph_boundaries_and_fit() -> None:
    paragraphs = [f"Paragraph {i} " + " ".join(["word"] * 50) for i in range(40)]
    chunks = split_into_chunks(paragraphs, 300)
    assert len(chunks) > 1
    assert all(estimate_tokens(c) <= 300 for c in chunks)
    rebuilt = [p for chunk in chunks for p in chunk.split("\n\n")]
    assert rebuilt == paragraphs


def test_oversized_paragraph_is_split_on_sentences() -> None:
    paragraph = " ".join(f"Sentence number {i} is here." for i in range(400))
    chunks = split_into_chunks([paragraph], 200)
    assert len(chunks) > 5
    assert all(estimate_tokens(c) <= 200 for c in chunks)
    assert " ".join(chunks).split() == paragraph.split()
