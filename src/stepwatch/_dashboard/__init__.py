"""The live dashboard's files: a page, its script, stylesheet and icon, shipped in the package.

The page holds no data: it asks the JSON routes and ``/events`` for
everything, with the token the user types (never in a URL). So the three files
are served without a token, the same bytes to everyone, with a strict
Content-Security-Policy: scripts and styles only from these files, requests
only to the server that served them, nothing framed, no inline script.

Every URL the files use is relative: behind a reverse proxy that serves the
Monitor under a prefix, open the page at the prefix with its trailing slash
(``https://host/prefix/``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "asset"]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
"""Sent with each of the files: nothing inline, nothing from elsewhere."""

ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
"""Route -> (file in this package, content type)."""

_AUTH_MARKER = b"{{auth}}"


@cache
def _read(filename: str) -> bytes:
    return resources.files(__name__).joinpath(filename).read_bytes()


def asset(route: str, *, token_required: bool) -> tuple[str, bytes] | None:
    """The content type and bytes served at ``route``, or ``None`` for another route.

    The page says whether the server wants a token (``<meta name="stepwatch-auth">``,
    ``token`` or ``none``), so it asks the user for one before its first request
    instead of after a 401; that is all it says about the server.
    """
    found = ASSETS.get(route)
    if found is None:
        return None
    filename, content_type = found
    body = _read(filename)
    if filename == "index.html":
        body = body.replace(_AUTH_MARKER, b"token" if token_required else b"none")
    return content_type, body
