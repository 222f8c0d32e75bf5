"""The viewer's session: a cookie encrypted and authenticated with Fernet, never in clear.

Flask's own cookie session is only signed, so anyone holding the cookie could read the
bearer token in it. This keeps Flask's session machinery and swaps the signing serializer
for Fernet (AES-CBC and HMAC-SHA256, with a timestamp that bounds the session's age).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from functools import cached_property
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature

from audit.application.sessions import SESSION_LIFETIME

COOKIE_NAME = "audit_viewer"
COOKIE_PATH = "/ui"
# The cookie's own bound, besides the session's end that the session itself holds.
LIFETIME = SESSION_LIFETIME


class _FernetSerializer:
    """What Flask's cookie session asks of its serializer: dumps, and loads with max_age."""

    def __init__(self, fernet: Fernet) -> None:
        self._fernet = fernet

    def dumps(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data).encode()).decode("ascii")

    def loads(self, value: str, max_age: int | None = None) -> Any:
        try:
            return json.loads(self._fernet.decrypt(value.encode("ascii"), ttl=max_age))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            # Flask treats BadSignature as "no session": a forged, stale or garbled cookie
            # is an empty session, never an error.
            raise BadSignature("the session cookie is not one this service made") from None


class EncryptedCookieSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session with an encrypted cookie; the key is fetched on first use."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret

    @cached_property
    def _serializer(self) -> _FernetSerializer:
        return _FernetSerializer(Fernet(base64.urlsafe_b64encode(self._secret())))

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # Only the viewer's paths carry the cookie: the API's requests read no cookie and
        # decrypt nothing (it was 2% of a single-event POST's time).
        if not request.path.startswith(COOKIE_PATH):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> Any:
        return self._serializer

    def get_cookie_secure(self, app: Flask) -> bool:
        # Secure whenever the request came over HTTPS; behind a proxy that is what gunicorn
        # says from X-Forwarded-Proto, which it trusts only from FORWARDED_ALLOW_IPS.
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def configure_session(app: Flask, secret: Callable[[], bytes]) -> None:
    """Put the viewer's encrypted cookie session on the app (the API never uses a session)."""
    app.session_interface = EncryptedCookieSessionInterface(secret)
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_PATH=COOKIE_PATH,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=LIFETIME,
    )
