"""Real-world input: news pages, URLs, PDFs, publication dates, CJK text, the events prompt diet."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import UNGA
from fake_server import FakeServer
from typer.testing import CliRunner
from web_server import LIEGE, PDF_LINES, PAGES, WebServer, hostile_pdf, make_pdf

from summarizer import ConfigError, InputError, Summarizer, read_document
from summarizer.cli import app
from summarizer.dates import candidates, resolve
from summarizer.documents import estimate_tokens, split_into_chunks
from summarizer.fetch import FetchPolicy, fetch
from summarizer.grounding import SourceIndex, date_supported, event_warnings
from summarizer.prompts import message_tokens
from summarizer.schemas import ReportAnswer

runner = CliRunner()


def endpoint(fake: FakeServer) -> list[str]:
    return ["--base-url", fake.base_url, "--model", "m"]


def user_text(fake: FakeServer, n: int = 0) -> str:
    return fake.requests[n]["messages"][1]["content"]


# -- pages --------------------------------------------------------------------------------------

PAGE_CASES = {
    "daily-courier-quake.html": (
        dt.date(2025, 3, 4),
        ["A magnitude 7.1 earthquake struck off the coast of northern Chile on Monday",
         "President Gabriel Boric said on Tuesday that the government would send emergency teams"],
        ["We use cookies", "Accept all cookies", "Subscribe for 1 euro a month", "Share on Facebook",
         "Advertisement", "Related stories", "Volcano erupts in Iceland", "Thoughts and prayers",
         "All rights reserved", "Privacy policy", "Get the morning briefing"]),
    "metro-herald-strike.html": (
        dt.date(2024, 11, 12),
        ["Cabin crew at Skyway Airlines will walk out for 48 hours from Friday",
         "rejected an offer of a 4 per cent rise this year"],
        ["This site uses cookies", "Log in", "Email this article", "The ten cheapest airlines",
         "Most read", "Rail fares to rise", "Join the discussion", "Registered in England"]),
    "el-diario-inundaciones.html": (
        dt.date(2024, 10, 30),
        ["Las lluvias torrenciales caídas el martes en la provincia de Valencia",
         "El presidente autonómico anunció ayer"],
        ["Utilizamos cookies", "Portada", "Compartir en Facebook", "Noticias relacionadas",
         "Qué es una DANA", "Aviso legal"]),
    "tech-wire-merger.html": (
        dt.date(2025, 1, 21),
        ["Northwind Industries said on Tuesday it had agreed to buy warehouse-automation startup",
         "a complete automation stack"],
        ["Your privacy choices", "812 partners", "Startups · AI", "Tweet", "Robotics startups raised",
         "Tags: acquisitions", "Leave a reply", "The best laptops", "Ethics policy"]),
    "la-gazette-greve.html": (
        dt.date(2024, 6, 14),
        ["L'Assemblée nationale a adopté vendredi en seconde lecture",
         "Cette réforme est nécessaire pour garantir l'avenir"],
        ["vous acceptez l'utilisation de cookies", "Abonnez-vous", "Partager sur Facebook", "À lire aussi",
         "Encore une réforme injuste", "Mentions légales"]),
}


@pytest.mark.parametrize("page", sorted(PAGE_CASES))
def test_news_pages_reach_the_model_without_boilerplate(page: str, fake: FakeServer) -> None:
    published, article, boilerplate = PAGE_CASES[page]
    result = runner.invoke(app, ["events", str(PAGES / page), "--json", *endpoint(fake)])
    assert result.exit_code == 0, result.output
    sent = user_text(fake)
    assert all(sentence in sent for sentence in article)
    assert [line for line in boilerplate if line in sent] == []
    assert f"published on {published.isoformat()}" in fake.requests[0]["messages"][0]["content"]
    title = read_document(PAGES / page).title
    assert title and sent.split("<document>\n", 1)[1].startswith(title)  # the title leads the document


def test_a_page_without_an_article_is_read_whole_and_says_so(tmp_path: Path) -> None:
    page = tmp_path / "links.html"
    page.write_text("<html><body><ul><li><a href=/a>Weather</a></li><li><a href=/b>Sport results</a></li>"
                    "</ul><p>Short.</p></body></html>")
    document = read_document(page)
    assert "Sport results" in document.text
    assert any("no article found" in note for note in document.notes)


# -- URLs -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web() -> Iterator[WebServer]:
    server = WebServer().start()
    yield server
    server.stop()


def test_brief_of_a_url(web: WebServer, fake: FakeServer) -> None:
    result = runner.invoke(app, ["brief", f"{web.url}/pages/daily-courier-quake.html", "--json", *endpoint(fake)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == f"{web.url}/pages/daily-courier-quake.html"
    assert "A magnitude 7.1 earthquake struck" in user_text(fake) and "Accept all cookies" not in user_text(fake)


@pytest.mark.parametrize(("route", "says"), [
    ("/redirect/6", "more than 5 redirects"),
    ("/404", "HTTP 404"),
    ("/huge", "larger than 10 MiB"),
    ("/huge-declared", "larger than 10 MiB"),
    ("/image", "not a document (content type image/png)"),
    ("/nowhere", "HTTP 404"),
])
def test_url_failures_are_one_line_and_exit_2(web: WebServer, fake: FakeServer, route: str, says: str) -> None:
    result = runner.invoke(app, ["brief", web.url + route, *endpoint(fake)])
    assert result.exit_code == 2 and fake.requests == []
    assert result.stderr.strip().splitlines() == [f"summarizer: error: {web.url}{route}: " + result.stderr.split(
        f"{web.url}{route}: ", 1)[1].strip()]
    assert says in result.stderr


def test_five_redirects_are_followed(web: WebServer) -> None:
    document = read_document(f"{web.url}/redirect/5")
    assert document.title == "Magnitude 7.1 earthquake strikes northern Chile, killing four"


def test_a_slow_server_times_out(web: WebServer) -> None:
    with pytest.raises(InputError, match="no answer within 0.5 s"):
        fetch(f"{web.url}/slow", FetchPolicy(timeout=0.5))


def test_charsets_and_pdfs_by_url(web: WebServer) -> None:
    assert "José Martínez" in read_document(f"{web.url}/latin1").text
    assert read_document(f"{web.url}/pdf").text == "\n\n".join([" ".join(PDF_LINES)]) or \
        all(line in read_document(f"{web.url}/pdf").text for line in PDF_LINES)


def test_bulk_records_with_urls_html_and_dates(web: WebServer, fake: FakeServer, tmp_path: Path) -> None:
    html = (PAGES / "metro-herald-strike.html").read_text()
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "by-url", "url": f"{web.url}/pages/tech-wire-merger.html"},
        {"id": "gone", "url": f"{web.url}/404"},
        {"id": "by-html", "html": html},
        {"id": "dated", "text": UNGA.read_text(), "published": "2024-09-28"},
        {"id": "bad-date", "text": UNGA.read_text(), "published": "last week"},
        {"id": "not-a-url", "url": "file:///etc/passwd"},
    ]))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["bulk", str(source), "--out", str(out), "--task", "events", "-q", *endpoint(fake)])
    assert result.exit_code == 1
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {k: r["status"] for k, r in records.items()} == {
        "by-url": "ok", "gone": "error", "by-html": "ok", "dated": "ok", "bad-date": "ok", "not-a-url": "error"}
    assert records["gone"]["error"]["code"] == "input_error" and "HTTP 404" in records["gone"]["error"]["message"]
    assert any("not a YYYY-MM-DD date" in w for w in records["bad-date"]["warnings"])
    systems = [r["messages"][0]["content"] for r in fake.requests]
    assert sum("published on 2024-09-28 (a Saturday)" in s for s in systems) == 1
    assert sum("published on 2025-01-21" in s for s in systems) == 1  # the page's own date


def test_the_service_policy_refuses_private_addresses(web: WebServer) -> None:
    closed, before = FetchPolicy(allow_private=False), len(web.requests)
    for url in (f"{web.url}/pages/daily-courier-quake.html", "http://169.254.169.254/latest/meta-data/",
                "http://[::1]:8080/", "http://10.0.0.7/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
                "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::]/", "http://[::127.0.0.1]/"):
        with pytest.raises(InputError, match="non-public address"):
            fetch(url, closed)
    assert len(web.requests) == before


def _resolver(monkeypatch: pytest.MonkeyPatch, answers: list[str], port: int) -> list[str]:
    """news.example resolves to each of ``answers`` in turn (the last one for good); returns the names asked."""
    real, asked = socket.getaddrinfo, []

    def resolve(host: str, *args: object, **kwargs: object) -> list:
        if host == "news.example":
            asked.append(host)
            address = answers[min(len(asked), len(answers)) - 1]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return asked


def test_dns_rebinding_never_reaches_the_private_address(web: WebServer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = web.httpd.server_address[1]
    asked = _resolver(monkeypatch, ["93.184.216.34", "127.0.0.1"], port)  # public for the check, then loopback
    real_connect, connected = socket.create_connection, []

    def connect(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        connected.append(address[0])
        if address[0] == "93.184.216.34":  # no network here: the public address does not answer
            raise ConnectionRefusedError(111, "Connection refused")
        return real_connect(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", connect)
    before = len(web.requests)
    with pytest.raises(InputError, match="cannot fetch"):
        fetch(f"http://news.example:{port}/pages/daily-courier-quake.html", FetchPolicy(allow_private=False))
    assert asked == ["news.example"] and connected == ["93.184.216.34"]  # resolved once, connected to what passed
    assert len(web.requests) == before  # the loopback server never heard of it


def test_the_checked_address_is_used_for_every_hop_with_the_name_in_the_host_header(
        web: WebServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import summarizer.fetch as fetching

    port = web.httpd.server_address[1]
    asked = _resolver(monkeypatch, ["127.0.0.1", "10.66.66.66"], port)  # a second answer would go elsewhere
    strict = fetching._refuse_private
    monkeypatch.setattr(fetching, "_refuse_private",  # let this one loopback server stand for a public site
                        lambda url, address: None if address == "127.0.0.1" else strict(url, address))
    before = len(web.requests)
    fetched = fetch(f"http://news.example:{port}/redirect/3", FetchPolicy(allow_private=False))
    assert b"Magnitude 7.1 earthquake" in fetched.content
    assert asked == ["news.example"]  # four requests, one resolution
    assert web.hosts[before:] == [f"news.example:{port}"] * 4 and len(web.requests) == before + 4


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:c0a8:101::1",
                                     "::ffff:0:a00:1", "64:ff9b:1::a00:1"])
def test_ipv6_forms_of_private_ipv4_addresses_are_refused(address: str, web: WebServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _resolver(monkeypatch, [address], 80)
    with pytest.raises(InputError, match="refused: it resolves to a non-public address"):
        fetch("http://news.example/", FetchPolicy(allow_private=False))


# -- compressed pages and legacy encodings ----------------------------------------------------------


@pytest.mark.parametrize("route", ["/gzip", "/gzip-twice", "/deflate", "/deflate-raw"])
def test_compressed_pages_are_inflated(route: str, web: WebServer, fake: FakeServer) -> None:
    result = runner.invoke(app, ["brief", web.url + route, *endpoint(fake)])
    assert result.exit_code == 0, result.output
    assert "A magnitude 7.1 earthquake struck" in user_text(fake) and "Accept all cookies" not in user_text(fake)


@pytest.mark.parametrize(("route", "says"), [
    ("/gzip-bomb", "larger than 10 MiB once decompressed (a decompression bomb?)"),
    ("/gzip-cut", "gzip data is cut short"),
    ("/gzip-garbage", "not valid gzip data"),
    ("/brotli", "Content-Encoding 'br', which summarizer did not ask for"),
])
def test_bad_compressed_pages_are_one_line_and_exit_2(route: str, says: str, web: WebServer, fake: FakeServer) -> None:
    result = runner.invoke(app, ["brief", web.url + route, *endpoint(fake)])
    assert result.exit_code == 2 and fake.requests == []
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"summarizer: error: {web.url}{route}: ") and says in lines[0]


def test_a_bomb_is_refused_without_inflating_it_whole(web: WebServer) -> None:
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(InputError, match="decompression bomb"):
        fetch(f"{web.url}/gzip-bomb", FetchPolicy(max_bytes=1024 * 1024))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 1024 * 1024  # 64 MiB inflated would be; the cap is 1 MiB


@pytest.mark.parametrize(("route", "text"), [
    ("/latin1-undeclared", "The new tram line in Liège opened on Saturday"),
    ("/cp1252-undeclared", "the city’s mayor Willy Demeyer said, and “it will change the centre”"),
    ("/latin1-label-cp1252", "the city’s mayor Willy Demeyer said, and “it will change the centre”"),
    ("/meta-charset", "The new tram line in Ličge opened"),  # the page says windows-1250: it is believed
    ("/utf8-bom-wrong-header", "The new tram line in Liège opened"),  # a BOM outranks the header
    ("/gzip-latin1", "The new tram line in Liège opened"),
])
def test_pages_are_decoded_as_browsers_decode_them(route: str, text: str, web: WebServer) -> None:
    assert text in read_document(web.url + route).text


def test_a_saved_page_with_a_meta_charset_is_read(tmp_path: Path) -> None:
    page = tmp_path / "saved.html"
    page.write_bytes(LIEGE.replace("<head>", '<head><meta charset="iso-8859-1">').encode("cp1252"))
    assert "the city’s mayor" in read_document(page).text


# -- PDFs -----------------------------------------------------------------------------------------


def test_pdf_files(tmp_path: Path, fake: FakeServer) -> None:
    (tmp_path / "minutes.pdf").write_bytes(make_pdf(PDF_LINES))
    (tmp_path / "scan.pdf").write_bytes(make_pdf(None))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    ok = runner.invoke(app, ["brief", str(tmp_path / "minutes.pdf"), *endpoint(fake)])
    assert ok.exit_code == 0 and all(line in user_text(fake) for line in PDF_LINES)
    scan = runner.invoke(app, ["brief", str(tmp_path / "scan.pdf"), *endpoint(fake)])
    assert scan.exit_code == 2 and "no text layer" in scan.stderr
    broken = runner.invoke(app, ["brief", str(tmp_path / "broken.pdf"), *endpoint(fake)])
    assert broken.exit_code == 2 and "not a readable PDF" in broken.stderr


HOSTILE_PDFS = {"flate-bomb": "inflates past pypdf's size limit", "jbig2": "needs a decoder that is not installed",
                "brotli": "PDF", "truncated": "not a readable PDF"}


@pytest.mark.parametrize("kind", sorted(HOSTILE_PDFS))
def test_a_pdf_pypdf_cannot_read_is_one_line_and_exit_2(kind: str, tmp_path: Path, fake: FakeServer) -> None:
    (tmp_path / f"{kind}.pdf").write_bytes(hostile_pdf(kind))
    result = runner.invoke(app, ["brief", str(tmp_path / f"{kind}.pdf"), *endpoint(fake)])
    assert result.exit_code == 2 and fake.requests == [], result.output
    assert result.stderr.startswith(f"summarizer: error: {tmp_path / kind}.pdf: ")
    assert len(result.stderr.strip().splitlines()) == 1 and HOSTILE_PDFS[kind] in result.stderr


def test_a_folder_with_hostile_pdfs_still_gives_every_record(tmp_path: Path, fake: FakeServer) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for kind in HOSTILE_PDFS:
        (corpus / f"{kind}.pdf").write_bytes(hostile_pdf(kind))
    (corpus / "minutes.pdf").write_bytes(make_pdf(PDF_LINES))
    (corpus / "note.txt").write_text(UNGA.read_text())
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["bulk", str(corpus), "--out", str(out), "--task", "brief", "-q", *endpoint(fake)])
    assert result.exit_code == 1, result.output
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {k: r["status"] for k, r in records.items()} == {
        **{f"{kind}.pdf": "error" for kind in HOSTILE_PDFS}, "minutes.pdf": "ok", "note.txt": "ok"}
    assert all(records[f"{kind}.pdf"]["error"]["code"] == "input_error" for kind in HOSTILE_PDFS)
    assert "inflates past" in records["flate-bomb.pdf"]["error"]["message"]


# -- publication dates ------------------------------------------------------------------------------

SAT = dt.date(2024, 9, 28)  # a Saturday
DATE_CASES = [
    (SAT, "on Friday", "2024-09-27"), (SAT, "Friday", "2024-09-27"), (SAT, "on Friday night", "2024-09-27"),
    (SAT, "last Friday", "2024-09-27"), (SAT, "next Friday", "2024-10-04"), (SAT, "this Friday", "2024-09-27"),
    (SAT, "on Saturday", "2024-09-28"), (SAT, "last Saturday", "2024-09-21"), (SAT, "on Monday", "2024-09-23"),
    (SAT, "yesterday", "2024-09-27"), (SAT, "today", "2024-09-28"), (SAT, "tomorrow", "2024-09-29"),
    (SAT, "last night", "2024-09-27"), (SAT, "the day before yesterday", "2024-09-26"),
    (SAT, "on September 3", "2024-09-03"), (SAT, "Sept. 3", "2024-09-03"), (SAT, "3 October", "2024-10-03"),
    (SAT, "on March 3", "2024-03-03"), (SAT, "in March", "2024-03"), (SAT, "in December", "2024-12"), (SAT, "in August", "2024-08"),
    (SAT, "last month", "2024-08"), (SAT, "this month", "2024-09"), (SAT, "next month", "2024-10"),
    (SAT, "last year", "2023"), (SAT, "this year", "2024"),
    (dt.date(2025, 1, 2), "on December 30", "2024-12-30"), (dt.date(2025, 1, 2), "last month", "2024-12"),
    (dt.date(2024, 3, 1), "on February 29", "2024-02-29"),
    (SAT, "el viernes", "2024-09-27"), (SAT, "ayer", "2024-09-27"), (SAT, "el 3 de septiembre", "2024-09-03"),
    (SAT, "vendredi", "2024-09-27"), (SAT, "hier soir", "2024-09-27"), (SAT, "jeudi prochain", "2024-10-03"),
    (SAT, "am Freitag", "2024-09-27"), (SAT, "gestern", "2024-09-27"), (SAT, "heute Morgen", "2024-09-28"),
]


@pytest.mark.parametrize(("published", "text", "date"), DATE_CASES, ids=[f"{p}:{t}" for p, t, _ in DATE_CASES])
def test_relative_dates_resolve_from_the_publication_date(published: dt.date, text: str, date: str) -> None:
    resolved = resolve(text, published)
    assert resolved is not None and resolved[0] == date
    assert resolved[1] == {1: "year", 2: "month", 3: "day"}[len(date.split("-"))]
    assert date_supported(date, SourceIndex("No numbers here.", published), text)


@pytest.mark.parametrize(("text", "wrong"), [("on Friday", "2024-09-26"), ("yesterday", "2024-09-28"),
                                             ("last month", "2024-07"), ("on Friday", "2024-09-13")])
def test_a_date_that_does_not_follow_is_not_supported(text: str, wrong: str) -> None:
    assert not date_supported(wrong, SourceIndex("It happened on Friday, officials said in 2024.", SAT), text)


def test_nothing_resolves_without_a_publication_date_or_for_vague_words() -> None:
    assert candidates("on Friday", None) == {} and resolve("last week", SAT) is None
    assert resolve("recently", SAT) is None and resolve("in 2019", SAT) is None


def test_a_wrongly_resolved_date_is_a_warning() -> None:
    report = ReportAnswer.model_validate({
        "schema_version": "1", "headline": "h", "language": "en", "events": [{
            "type": "other", "summary": "s", "participants": [], "where": None, "status": "occurred",
            "when": {"text": "on Friday", "date": "2024-09-26", "precision": "day"}, "evidence": ["It happened"]}]})
    warnings = event_warnings(report, SourceIndex("It happened on Friday.", SAT))
    assert warnings == ["events[0].when.date 2024-09-26 does not follow from 'on Friday' in a document "
                        "published 2024-09-28"]


def test_published_flag_reaches_the_events_prompt_and_the_grounding(fake: FakeServer) -> None:
    result = runner.invoke(app, ["events", str(UNGA), "--published", "2024-09-28", *endpoint(fake)])
    assert result.exit_code == 0
    assert "published on 2024-09-28 (a Saturday)" in fake.requests[0]["messages"][0]["content"]
    bad = runner.invoke(app, ["events", str(UNGA), "--published", "Friday", *endpoint(fake)])
    assert bad.exit_code == 2 and "--published" in bad.stderr


# -- token estimates for every script ---------------------------------------------------------------


def test_chinese_text_is_map_reduced_within_the_context(fake: FakeServer) -> None:
    sentence = "市议会周一在里斯本开会并就预算进行了投票，市长表示这项计划将增加四十辆公共汽车。"
    text = "\n\n".join(f"第{i}段。" + sentence * 40 for i in range(30))  # 30 long paragraphs without a space
    assert estimate_tokens(sentence) >= len(sentence) * 0.9  # about a token a character
    with Summarizer(model="m", base_url=fake.base_url, context_tokens=8192) as s:
        s.events(text)
    documents = [r for r in fake.requests if "<document>" in r["messages"][1]["content"]]
    assert len(documents) > 5
    for body in fake.requests:
        assert message_tokens(body["messages"]) + body.get("max_tokens", 1500) <= 8192
    with Summarizer(model="m", base_url=fake.base_url, context_tokens=2600) as s:  # parts fit; two answers do not
        with pytest.raises(ConfigError, match="cannot combine the parts of this document"):
            s.events(text)
    pieces = split_into_chunks([sentence * 200], 300)
    assert "".join(pieces) == sentence * 200 and all(estimate_tokens(p) <= 300 for p in pieces)


# -- the events prompt diet -------------------------------------------------------------------------


def test_json_schema_mode_sends_no_schema_text_and_other_modes_get_the_guide(fake: FakeServer) -> None:
    runner.invoke(app, ["events", str(UNGA), *endpoint(fake)])
    system = fake.requests[0]["messages"][0]["content"]
    assert fake.requests[0]["response_format"]["type"] == "json_schema"
    assert '"$defs"' not in system and '"schema_version"' not in system
    assert message_tokens(fake.requests[0]["messages"][:1]) < 350
    fake.requests.clear()
    fake.supports = ()
    assert runner.invoke(app, ["events", str(UNGA), *endpoint(fake)]).exit_code == 0
    text_mode = fake.requests[-1]
    assert "response_format" not in text_mode
    assert '"schema_version": "1"' in text_mode["messages"][0]["content"]  # the compact guide, appended
