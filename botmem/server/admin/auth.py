"""Who is looking at /admin: the login form, the session cookie and the CSRF token.

The login form takes a name (for the audit log) and the server's API key. The cookie holds
the name and an expiry, signed with a key derived from the API key (never the key itself):
HttpOnly, SameSite=Strict, Secure over https. Nothing is kept server-side, so a restart
keeps people logged in and logging out deletes the cookie. Every POST also carries a token
derived from the session in a hidden field, so another site cannot post a form on a
logged-in browser's behalf. Without an API key (a loopback-only server) nobody logs in:
everyone is "local", and the token is derived from a secret made at start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from botmem.server.admin.render import render
from botmem.server.scrubbing import ScrubbedRoute
from botmem.unicode import scrub

log = logging.getLogger(__name__)
router = APIRouter(route_class=ScrubbedRoute)
COOKIE = "botmem_admin"
SESSION_SECONDS = 12 * 3600
LOCAL = "local"
MAX_NAME = 100
LOGIN_PATH = "/admin/login"


@dataclass(frozen=True)
class Admin:
    """The person behind a request: their name (for the log) and their form token."""

    name: str
    csrf: str


class LoginRequired(Exception):
    """No valid session: the handler answers 303 to the login form."""


class BadToken(Exception):
    """A POST without the session's form token (another site's form, or an old page)."""


class AdminAuth:
    """Signs and checks sessions for one server (`api_key` None: no login)."""

    def __init__(self, api_key: str | None):
        self.required = bool(api_key)
        self._api_key = (api_key or "").encode()
        secret = self._api_key if self.required else secrets.token_bytes(32)
        self._signing = hmac.new(secret, b"botmem admin session", hashlib.sha256).digest()

    def key_matches(self, key: str) -> bool:
        return self.required and hmac.compare_digest(key.encode(), self._api_key)

    def cookie(self, name: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        session = {"name": name, "exp": expires, "nonce": secrets.token_hex(8)}
        payload = _b64(json.dumps(session, ensure_ascii=False).encode())
        return f"{payload}.{self._sign(b'session:', payload)}"

    def admin(self, request: Request) -> Admin:
        """The logged-in admin; LoginRequired without a valid, unexpired session."""
        if not self.required:
            return Admin(LOCAL, self._sign(b"csrf:", LOCAL))
        payload, _, signature = request.cookies.get(COOKIE, "").partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(b"session:", payload)):
            raise LoginRequired()
        session = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if not isinstance(session, dict) or session.get("exp", 0) < time.time():
            raise LoginRequired()
        return Admin(str(session.get("name") or "?"), self._sign(b"csrf:", payload))

    def _sign(self, purpose: bytes, payload: str) -> str:
        return _b64(hmac.new(self._signing, purpose + payload.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def auth_of(request: Request) -> AdminAuth:
    auth: AdminAuth = request.app.state.admin_auth
    return auth


def viewer(request: Request) -> Admin:
    """A FastAPI dependency for pages: the admin looking, or a redirect to log in."""
    return auth_of(request).admin(request)


async def actor(request: Request) -> Admin:
    """A FastAPI dependency for POSTs: the admin, whose form carries their token."""
    admin = auth_of(request).admin(request)
    sent = (await request.form()).get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, admin.csrf):
        log.warning("admin %s: refused a form without the session's token", admin.name)
        raise BadToken()
    return admin


def audit(admin: Admin, what: str) -> None:
    """Every change made through /admin, with who made it."""
    log.warning("admin %s: %s", admin.name, what)


@router.get("/admin/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request) -> Response:
    if not auth_of(request).required:
        return RedirectResponse("/admin", status_code=303)
    return render(request, "login.html", {"name": ""})


@router.post("/admin/login", response_class=HTMLResponse, include_in_schema=False)
async def login(request: Request, name: str = Form(""), key: str = Form("")) -> Response:
    auth = auth_of(request)
    if not auth.required:
        return RedirectResponse("/admin", status_code=303)
    # printable only: the name goes into every audit log line, which it must not forge
    who = "".join(ch for ch in scrub(name.strip()) if ch.isprintable())[:MAX_NAME] or "?"
    if not auth.key_matches(key):
        log.warning("admin %s: login refused (wrong key) from %s", who, _client(request))
        context = {"name": who, "error": "wrong key"}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        COOKIE,
        auth.cookie(who),
        max_age=SESSION_SECONDS,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    log.warning("admin %s: logged in from %s", who, _client(request))
    return response


@router.post("/admin/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    auth = auth_of(request)
    response = RedirectResponse(LOGIN_PATH if auth.required else "/admin", status_code=303)
    try:
        admin = await actor(request)
    except (LoginRequired, BadToken):
        return response  # nothing to end
    response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
    audit(admin, "logged out")
    return response


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"
