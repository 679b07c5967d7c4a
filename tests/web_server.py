"""A loopback web server for URL tests: pages, redirects, errors, huge and slow bodies, PDFs.

Routes (GET): /pages/<file> (tests/data/pages), /redirect/<n> (n hops, then a page),
/404, /huge (50 MB, no Content-Length), /huge-declared (Content-Length: 50 MB),
/image (image/png), /slow (answers after 3 s), /latin1 (ISO-8859-1 HTML declared in the
header), /pdf (a PDF with a text layer), /to-loopback (redirects to /pages/...), and the ENCODED
pages: gzip/deflate bodies (one a decompression bomb, one cut short), and undeclared or mislabelled
legacy encodings. ``hosts`` keeps every request's Host header.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PAGES = Path(__file__).parent / "data" / "pages"


def make_pdf(lines: list[str] | None) -> bytes:
    """A one-page PDF whose text layer holds ``lines`` (None: a page with no text at all, like a scan)."""
    if lines is None:
        stream = b"0 0 1 rg 10 10 100 100 re f"
    else:
        parts = [b"BT /F1 12 Tf 40 760 Td 14 TL"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            parts.append(b"(" + escaped.encode("latin-1") + b") Tj T*")
        parts.append(b"ET")
        stream = b"\n".join(parts)
    return pdf_with_contents(stream)


def pdf_with_contents(stream: bytes, filter: str | None = None) -> bytes:
    """A one-page PDF whose content stream is ``stream`` as written, declared encoded with ``filter``."""
    declared = b" /Filter /" + filter.encode() if filter else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + declared + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def hostile_pdf(kind: str) -> bytes:
    """PDFs that make pypdf raise: ``flate-bomb`` (170 KB that inflate to 120 MB, past pypdf's 75 MB
    limit: LimitReachedError), ``jbig2`` (a JBIG2 stream; without jbig2dec: DependencyError),
    ``brotli`` (a Brotli stream; without the brotli package: DependencyError), ``truncated`` (cut mid-object)."""
    if kind == "flate-bomb":
        import zlib

        packer = zlib.compressobj(9)
        bomb = b"".join(packer.compress(b"BT ET " * 10_000_000) for _ in range(2)) + packer.flush()
        return pdf_with_contents(bomb, "FlateDecode")
    if kind == "jbig2":
        return pdf_with_contents(b"\x00\x00\x00\x01 not a real JBIG2 segment", "JBIG2Decode")
    if kind == "brotli":
        return pdf_with_contents(b"\x0b\x02\x80not brotli", "BrotliDecode")
    if kind == "truncated":
        return make_pdf(PDF_LINES)[:300]
    raise ValueError(kind)


PDF_LINES = ["The city council approved the new budget on Thursday.",
             "Mayor Ana Costa said the plan adds 40 buses to the fleet."]


LIEGE = ("<html><head><title>Li\u00e8ge tram opens</title></head><body><article><p>The new tram line in Li\u00e8ge "
         "opened on Saturday after four years of works, the city\u2019s mayor Willy Demeyer said, and "
         "\u201cit will change the centre\u201d.</p></article></body></html>")
PAGE = (PAGES / "daily-courier-quake.html").read_bytes() if (PAGES / "daily-courier-quake.html").is_file() else b""


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def _bomb() -> bytes:
    """A gzip body of 20 KB that inflates to 64 MiB of one repeated paragraph."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"<p>" + b"boom " * 13106 + b"</p>"  # 65,537 bytes
    return b"".join(packer.compress(chunk) for _ in range(1024)) + packer.flush()


ENCODED = {  # path -> (body, headers): pages sent compressed or in legacy encodings
    "/gzip": lambda: (_gzip(PAGE), {"content-encoding": "gzip"}),
    "/gzip-twice": lambda: (_gzip(_gzip(PAGE)), {"content-encoding": "gzip, gzip"}),
    "/deflate": lambda: (__import__("zlib").compress(PAGE), {"content-encoding": "deflate"}),
    "/deflate-raw": lambda: (__import__("zlib").compress(PAGE)[2:-4], {"content-encoding": "deflate"}),
    "/gzip-bomb": lambda: (_bomb(), {"content-encoding": "gzip"}),
    "/gzip-cut": lambda: (_gzip(PAGE)[:400], {"content-encoding": "gzip"}),
    "/gzip-garbage": lambda: (b"\x1f\x8b not gzip at all", {"content-encoding": "gzip"}),
    "/brotli": lambda: (b"\x0b\x02\x80 pretend brotli", {"content-encoding": "br"}),
    # undeclared: no charset in the header, none in the page (browsers: windows-1252)
    "/latin1-undeclared": lambda: (LIEGE.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
                                   .encode("latin-1"), {"content-type": "text/html"}),
    "/cp1252-undeclared": lambda: (LIEGE.encode("cp1252"), {"content-type": "text/html"}),
    # declared latin-1, holding windows-1252 quotes (as most "ISO-8859-1" pages do)
    "/latin1-label-cp1252": lambda: (LIEGE.encode("cp1252"), {"content-type": "text/html; charset=iso-8859-1"}),
    "/meta-charset": lambda: (LIEGE.replace("<head>", '<head><meta http-equiv="Content-Type" '
                                            'content="text/html; charset=windows-1250">').replace(
                                                "\u00e8", "\u010d").encode("cp1250"), {"content-type": "text/html"}),
    "/utf8-bom-wrong-header": lambda: (b"\xef\xbb\xbf" + LIEGE.encode("utf-8"),
                                       {"content-type": "text/html; charset=iso-8859-1"}),
    "/gzip-latin1": lambda: (_gzip(LIEGE.encode("cp1252")), {"content-encoding": "gzip", "content-type": "text/html"}),
}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.server.hosts.append(self.headers.get("host"))  # type: ignore[attr-defined]
        path = self.path
        if path in ENCODED:
            body, headers = ENCODED[path]()
            return self._send(200, body, content_type=headers.pop("content-type", "text/html"), headers=headers)
        if path.startswith("/pages/"):
            file = PAGES / path.removeprefix("/pages/")
            if file.is_file():
                return self._send(200, file.read_bytes())
            return self._send(404, b"<h1>Not found</h1>")
        if path.startswith("/redirect/"):
            hops = int(path.rsplit("/", 1)[1])
            target = "/pages/daily-courier-quake.html" if hops <= 1 else f"/redirect/{hops - 1}"
            return self._send(302, b"", headers={"location": target})
        if path == "/to-loopback":
            return self._send(302, b"", headers={"location": "/pages/daily-courier-quake.html"})
        if path == "/404":
            return self._send(404, b"<h1>Not found</h1>")
        if path == "/image":
            return self._send(200, b"\x89PNG\r\n\x1a\n", content_type="image/png")
        if path == "/latin1":
            body = ("<html><head><title>Caf\u00e9 reopens</title></head><body><article><p>The caf\u00e9 on the "
                    "main square reopened on Saturday after a fire in January, its owner Jos\u00e9 Mart\u00ednez "
                    "said.</p></article></body></html>").encode("latin-1")
            return self._send(200, body, content_type="text/html; charset=ISO-8859-1")
        if path == "/pdf":
            return self._send(200, make_pdf(PDF_LINES), content_type="application/pdf")
        if path == "/slow":
            time.sleep(3)
            return self._send(200, b"<p>late</p>")
        if path in ("/huge", "/huge-declared"):
            self.send_response(200)
            self.send_header("content-type", "text/html")
            if path == "/huge-declared":
                self.send_header("content-length", str(50 * 1024 * 1024))
            self.end_headers()
            chunk = b"<p>" + b"x" * 65530 + b"</p>"
            try:
                for _ in range(50 * 16):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        return self._send(404, b"no such route")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up early (a refused bomb, a cap reached) is expected, not news


class WebServer:
    def __init__(self) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.httpd.hosts = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests  # type: ignore[attr-defined, no-any-return]

    @property
    def hosts(self) -> list[str]:
        """The Host header of every request, in order."""
        return self.httpd.hosts  # type: ignore[attr-defined, no-any-return]

    def start(self) -> WebServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
