"""The web page in a real headless Chromium (Debian's package), driven by Playwright.

Skips, saying why, only when no browser or no Playwright is installed; CI installs both.
Set WEB_PAGE_SCREENSHOT=path.png to keep a screenshot of the event report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import UNGA
from fake_server import FakeServer
from test_serve import TOKEN, Service, start

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")]
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the dev extra)")

TEXT = UNGA.read_text("utf-8")
# What the probe of this machine found Chromium needs here: no sandbox as root, no background networking.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


_FAKES: dict[int, FakeServer] = {}


def page_service_fake(service: Service) -> FakeServer:
    """The fake model behind the page's service (to script an answer)."""
    return _FAKES[id(service)]


@pytest.fixture(scope="module")
def page_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    fake = FakeServer().start()
    svc = start(fake, tmp_path_factory.mktemp("browser"))
    _FAKES[id(svc)] = fake
    yield svc
    svc.stop()
    fake.stop()


@pytest.fixture
def page(page_service: Service) -> Iterator[object]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        refused: list[str] = []
        tab.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        tab.goto(page_service.url + "/")
        yield tab
        browser.close()
        assert refused == []  # the page runs under its own CSP: no inline script or style was refused


def test_docs_render_offline_under_their_csp(page_service: Service) -> None:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        tab = browser.new_page()
        elsewhere: list[str] = []
        refused: list[str] = []

        def only_this_server(route: object) -> None:
            url = route.request.url  # type: ignore[attr-defined]
            if url.startswith(page_service.url):
                route.continue_()  # type: ignore[attr-defined]
            else:
                elsewhere.append(url)
                route.abort()  # type: ignore[attr-defined]

        tab.route("**/*", only_this_server)
        tab.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        tab.goto(page_service.url + "/docs")
        tab.locator(".opblock-summary-path", has_text="/v1/brief").first.wait_for()
        assert tab.locator("button.authorize").count() == 1  # the bearer scheme is declared
        browser.close()
    assert elsewhere == [] and refused == []


def test_brief_streams_into_the_page(page: object) -> None:
    tab = page  # a playwright Page
    tab.fill("#text", TEXT)  # type: ignore[attr-defined]
    tab.fill("#token", TOKEN)  # type: ignore[attr-defined]
    tab.click("#run")  # type: ignore[attr-defined]
    tab.locator("#status", has_text="words").wait_for()  # type: ignore[attr-defined]  # (no eval: the page's CSP forbids it)
    brief = tab.inner_text("#brief-output")  # type: ignore[attr-defined]
    assert brief.startswith("Russian Foreign Minister Sergei Lavrov") and "\n" not in brief.strip()
    assert "dropped 8 repeated paragraph(s)" in tab.inner_text("#warnings")  # type: ignore[attr-defined]


def test_event_report_table_highlights_the_evidence(page: object) -> None:
    tab = page
    tab.fill("#text", TEXT)  # type: ignore[attr-defined]
    tab.fill("#token", TOKEN)  # type: ignore[attr-defined]
    tab.check("#task-events")  # type: ignore[attr-defined]
    tab.click("#run")  # type: ignore[attr-defined]
    tab.wait_for_selector("#events-table tbody tr")  # type: ignore[attr-defined]
    rows = tab.query_selector_all("#events-table tbody tr")  # type: ignore[attr-defined]
    assert len(rows) >= 1 and rows[0].inner_text().startswith("other")
    marks = tab.query_selector_all("#source mark")  # type: ignore[attr-defined]
    assert marks and all(m.inner_text().strip() in TEXT for m in marks)
    assert "Sergei Lavrov discussed interaction" in marks[0].inner_text()
    source = tab.inner_text("#source")  # type: ignore[attr-defined]
    assert source.count("Then COVID interfered") == 1  # what the model read: the repeats dropped
    assert "8 repeated paragraph(s)" in tab.inner_text("#source-note")  # type: ignore[attr-defined]
    rows[0].hover()
    assert tab.query_selector_all("#source mark.active")  # type: ignore[attr-defined]
    shot = os.environ.get("WEB_PAGE_SCREENSHOT")
    if shot:
        tab.screenshot(path=str(Path(shot)), full_page=True)  # type: ignore[attr-defined]


def test_a_wrong_token_says_so_in_the_page(page: object) -> None:
    tab = page
    tab.fill("#text", TEXT)  # type: ignore[attr-defined]
    tab.fill("#token", "tok-wrong-0000000000000000")  # type: ignore[attr-defined]
    tab.click("#run")  # type: ignore[attr-defined]
    tab.wait_for_selector("#status.error")  # type: ignore[attr-defined]
    assert "401 unauthorized" in tab.inner_text("#status")  # type: ignore[attr-defined]


def test_clicking_a_brief_sentence_lights_up_its_citations(page: object) -> None:
    tab = page
    tab.fill("#text", TEXT)  # type: ignore[attr-defined]
    tab.fill("#token", TOKEN)  # type: ignore[attr-defined]
    tab.click("#run")  # type: ignore[attr-defined]
    tab.locator("#status", has_text="words").wait_for()  # type: ignore[attr-defined]
    sentences = tab.query_selector_all("#brief-output .sentence")  # type: ignore[attr-defined]
    assert len(sentences) >= 3 and all("supported" in s.get_attribute("class") for s in sentences)
    assert not tab.query_selector_all("#source mark.active")  # type: ignore[attr-defined]
    second = sentences[2]
    second.click()
    active = tab.query_selector_all("#source mark.active")  # type: ignore[attr-defined]
    assert len(active) >= 1 and "active" in second.get_attribute("class")
    said, cited = second.inner_text().strip(), " ".join(m.inner_text() for m in active)
    assert said.rstrip(".")[:30] in cited  # the fake model answers with extracts: the sentence cites itself
    sentences[0].click()
    now = tab.query_selector_all("#source mark.active")  # type: ignore[attr-defined]
    assert now and "Russian Foreign Minister Sergei Lavrov" in now[0].inner_text() and cited not in now[0].inner_text()


def test_an_unsupported_sentence_is_marked(page_service: Service, page: object) -> None:
    tab = page
    text = "About 2,000 dockers walked out on Monday in Antwerp, the union said. The strike will last two days."
    fake_answer = "Some 40 dockers walked out on Monday in Antwerp, the union said. The strike will last two days."
    page_service_fake(page_service).script.extend(["content:" + fake_answer])
    tab.fill("#text", text)  # type: ignore[attr-defined]
    tab.fill("#token", TOKEN)  # type: ignore[attr-defined]
    tab.click("#run")  # type: ignore[attr-defined]
    tab.locator("#status", has_text="words").wait_for()  # type: ignore[attr-defined]
    first = tab.query_selector("#brief-output .sentence")  # type: ignore[attr-defined]
    assert "unsupported" in first.get_attribute("class") and "number “40”" in first.get_attribute("title")


def test_marks_land_on_their_text_past_characters_outside_the_bmp(page: object) -> None:
    tab = page
    text = ("🌊🌊 Floods hit the river town of Ghent on Monday, the mayor said. "
            "🚒 Firefighters rescued 40 people from their homes on Tuesday, officials said. "
            "𝒜 third sentence closes the report on the floods in Ghent.")
    tab.fill("#text", text)  # type: ignore[attr-defined]
    tab.fill("#token", TOKEN)  # type: ignore[attr-defined]
    tab.click("#run")  # type: ignore[attr-defined]
    tab.locator("#status", has_text="words").wait_for()  # type: ignore[attr-defined]
    sentences = tab.query_selector_all("#brief-output .sentence")  # type: ignore[attr-defined]
    assert len(sentences) >= 2
    for sentence in sentences:
        sentence.click()
        active = tab.query_selector_all("#source mark.active")  # type: ignore[attr-defined]
        cited = " ".join(m.inner_text() for m in active)
        # Offsets count code points (Python); JavaScript strings count UTF-16 units: each emoji shifted the marks.
        assert cited.strip() == sentence.inner_text().strip(), (cited, sentence.inner_text())
