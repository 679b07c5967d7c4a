"""The web page (``/``), the API docs (``/docs``, Swagger UI served by this server: it works offline), their files."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from ..._version import __version__

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def page() -> HTMLResponse:
    html = (resources.files("summarizer.serve") / "static" / "index.html").read_text("utf-8")
    return HTMLResponse(html.replace("{{version}}", __version__), headers={"Content-Security-Policy": _PAGE_CSP})


@router.get("/docs", response_class=HTMLResponse)
async def docs() -> HTMLResponse:
    """Swagger UI from files this server serves itself: it works offline."""
    body, csp = _docs_html()
    return HTMLResponse(body, headers={"Content-Security-Policy": csp})


@router.get("/static/{name}")
async def static(name: str) -> Response:
    found = _asset(name)
    if found is None:
        raise HTTPException(404, "no such file")
    content, media = found
    return Response(content, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


# No inline script or style anywhere in the page: its code and CSS are files of this server.
_PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
             "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


_ASSETS = {"app.js": "summarizer.serve", "app.css": "summarizer.serve",  # ours; Swagger UI's from its wheel:
           "swagger-ui-bundle.js": "fastapi_offline", "swagger-ui.css": "fastapi_offline",
           "favicon.png": "fastapi_offline"}


def _asset(name: str) -> tuple[bytes, str] | None:
    """A file the page or the docs load (a fixed list: a made-up name never reaches the disk or a cache)."""
    package = _ASSETS.get(name)
    return _load_asset(package, name) if package is not None else None


@functools.cache
def _load_asset(package: str, name: str) -> tuple[bytes, str] | None:
    try:
        return (resources.files(package) / "static" / name).read_bytes(), _TYPES[Path(name).suffix]
    except (ModuleNotFoundError, OSError):
        return None


@functools.cache
def _docs_html() -> tuple[bytes, str]:
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="summarizer — API",
                               swagger_js_url="/static/swagger-ui-bundle.js",
                               swagger_css_url="/static/swagger-ui.css", swagger_favicon_url="/static/favicon.png")
    body = bytes(page.body)
    # Its one inline script (the Swagger UI set-up) is allowed by its hash, and nothing else inline.
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
                      for m in _INLINE_SCRIPT.findall(body.decode()))
    csp = (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'none'; base-uri 'none'; "
           "frame-ancestors 'none'")
    return body, csp


