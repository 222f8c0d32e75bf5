"""Helpers of the viewer's route tests: reading forms out of pages, signing in."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: TestResponse) -> str:
    found = _CSRF.search(page.get_data(as_text=True))
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, token: str, next_page: str | None = None) -> TestResponse:
    form = {"token": token, "csrf_token": csrf_of(client.get("/ui/sign-in"))}
    if next_page is not None:
        form["next"] = next_page
    return client.post("/ui/sign-in", data=form)
