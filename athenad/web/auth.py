"""Who may act: a bearer token for the API, a cookie from the login form for pages.

Sessions are stateless: the cookie is ``nonce.signature`` signed with the token, and
a form's CSRF token is another signature of the same nonce, so a restarted server
keeps its sessions and a changed token ends them all. Reading never needs either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request

from athenad.web.settings import WebSettings

COOKIE = "athena_session"


def _same(given: object, expected: str) -> bool:
    """Compare a secret in constant time, as bytes: anything a client sends (non-ASCII
    text, a file field) is just unequal, never an error."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def _sign(token: str, purpose: str, nonce: str) -> str:
    return hmac.new(token.encode(), f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()


def new_session(web: WebSettings) -> str:
    """A cookie value for a new session."""
    nonce = secrets.token_hex(16)
    return f"{nonce}.{_sign(web.token, 'session', nonce)}"


def session_nonce(web: WebSettings, request: Request) -> str | None:
    """The nonce of the request's valid session cookie, if actions are on and it has one."""
    if not web.actions_enabled:
        return None
    nonce, _, signature = request.cookies.get(COOKIE, "").partition(".")
    if nonce and _same(signature, _sign(web.token, "session", nonce)):
        return nonce
    return None


def csrf_token(web: WebSettings, nonce: str) -> str:
    return _sign(web.token, "csrf", nonce)


def csrf_ok(web: WebSettings, request: Request, sent: str) -> bool:
    """Whether a form comes from a logged-in session with that session's CSRF token."""
    nonce = session_nonce(web, request)
    return nonce is not None and _same(sent, csrf_token(web, nonce))


def token_ok(web: WebSettings, given: str) -> bool:
    return web.actions_enabled and _same(given, web.token)


def bearer_ok(web: WebSettings, request: Request) -> bool:
    """Whether an API request carries ``Authorization: Bearer <the token>``."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_ok(web, given.strip())
