"""Signing out ends the session on the server: a copy of the cookie taken before is refused
by every page, in this server and in any other sharing the database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager

import pytest
import sqlalchemy as sa
from dependency_injector import providers
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from tests.integration.ui.conftest import MakeToken
from tests.integration.ui.support import csrf_of, sign_in

from audit.adapters.sql import create_engine_for
from audit.container import Container, build_container
from audit.domain.tokens import Scope
from audit.entrypoints.http import create_app
from audit.settings import Settings

COOKIE = "audit_viewer"
# The three kinds of page a copied cookie could read: the list, an event, an export.
PAGES = ["/ui/", "/ui/events/evt-1", "/ui/export?format=ndjson"]
EVERY_STORAGE = pytest.mark.parametrize(
    "settings",
    ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
SQL_STORAGES = pytest.mark.parametrize(
    "settings", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def record_one_event(client: FlaskClient, writer: dict[str, str]) -> None:
    event = {"id": "evt-1", "action": "document.update", "actor": {"id": "u-1"}}
    response = client.post("/v1/events", json={"events": [event]}, headers=writer)
    assert response.status_code == 201, response.get_data(as_text=True)


def saved_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE, path="/ui")
    assert cookie is not None, "not signed in"
    return cookie.value


def with_cookie(app: Flask, value: str) -> FlaskClient:
    """Another browser, presenting a copy of the cookie."""
    client = app.test_client()
    client.set_cookie(COOKIE, value, path="/ui")
    return client


def sign_out(client: FlaskClient) -> None:
    response = client.post("/ui/sign-out", data={"csrf_token": csrf_of(client.get("/ui/"))})
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/sign-in?signed_out=1"
    assert client.get_cookie(COOKIE, path="/ui") is None  # deleted in this browser


def assert_refused(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302, (path, response.status_code)
    assert response.headers["Location"].startswith("/ui/sign-in?")
    assert "ended=1" in response.headers["Location"]
    assert b'"evt-1"' not in response.get_data()


def assert_reads(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    assert "evt-1" in response.get_data(as_text=True)


@EVERY_STORAGE
def test_a_cookie_copied_before_sign_out_is_refused_after_it(
    app: Flask, client: FlaskClient, make_token: MakeToken, writer: dict[str, str]
) -> None:
    record_one_event(client, writer)
    token = make_token()
    sign_in(client, token)
    client.get("/ui/")  # the cookie as a browser holds it after its first page
    copied = saved_cookie(client)
    elsewhere = app.test_client()  # another session of the same token
    sign_in(elsewhere, token)
    for path in PAGES:
        assert_reads(with_cookie(app, copied), path)

    sign_out(client)

    for path in PAGES:
        assert_refused(with_cookie(app, copied), path)
        assert_reads(elsewhere, path)
    # Signing in again makes a new session, which works.
    sign_in(client, token)
    assert_reads(client, "/ui/")


@SQL_STORAGES
def test_another_server_on_the_same_database_refuses_it_too(
    app: Flask,
    client: FlaskClient,
    make_token: MakeToken,
    writer: dict[str, str],
    settings: Settings,
    container: Container,
) -> None:
    record_one_event(client, writer)
    token = make_token()
    sign_in(client, token)
    copied = saved_cookie(client)
    kept = app.test_client()
    sign_in(kept, token)
    still_signed_in = saved_cookie(kept)
    sign_out(client)

    # A server of its own (its container, its engine), started afterwards: what it knows
    # of the sign-out, it knows from the database.
    container.unwire()
    other = build_container(settings)
    try:
        other_app = create_app(other)
        for path in PAGES:
            assert_refused(with_cookie(other_app, copied), path)
            assert_reads(with_cookie(other_app, still_signed_in), path)
    finally:
        other.unwire()
        other.engine().dispose()


def test_signing_out_twice_with_copies_of_one_cookie_is_fine(
    app: Flask, client: FlaskClient, make_token: MakeToken
) -> None:
    sign_in(client, make_token())
    form = {"csrf_token": csrf_of(client.get("/ui/"))}
    copy = with_cookie(app, saved_cookie(client))
    assert client.post("/ui/sign-out", data=form).status_code == 303
    # The copy's form token is the session's own: the second sign-out is accepted too.
    assert copy.post("/ui/sign-out", data=form).status_code == 303
    assert copy.get("/ui/").status_code == 302


@contextmanager
def writes_refused(settings: Settings, container: Container) -> Iterator[None]:
    """The database takes no writes meanwhile and still answers reads: SQLite's write
    lock held by another program, or a PostgreSQL database turned read-only."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        with closing(sqlite3.connect(url.database, isolation_level=None)) as blocker:
            blocker.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                blocker.execute("ROLLBACK")
        return
    admin = sa.create_engine(
        url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    name = url.database

    def read_only(on: bool) -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql("SET default_transaction_read_only = off")
            value = "on" if on else "off"
            connection.exec_driver_sql(
                f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}'
            )
        container.engine().dispose()  # new connections, with the database's new default

    try:
        read_only(True)
        try:
            yield
        finally:
            read_only(False)
    finally:
        admin.dispose()


@SQL_STORAGES
def test_sign_out_while_storage_takes_no_writes_says_so_and_pages_keep_reading(
    client: FlaskClient, make_token: MakeToken, settings: Settings, container: Container
) -> None:
    # Writers give up after 300 ms instead of 5 s (before anything made the engine).
    container.engine.override(
        providers.Singleton(create_engine_for, settings.database_url, lock_timeout_ms=300)
    )
    try:
        record_one_event(client, {"Authorization": f"Bearer {make_token(Scope.EVENTS_WRITE)}"})
        assert container.uow().engine is container.engine()
        sign_in(client, make_token())
        form = {"csrf_token": csrf_of(client.get("/ui/"))}
        copied = saved_cookie(client)
        with writes_refused(settings, container):
            for path in PAGES:  # a page's check is a read
                assert_reads(client, path)
            response = client.post("/ui/sign-out", data=form)
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) >= 1
            text = response.get_data(as_text=True)
            assert "You are still signed in: the sign-out could not be recorded" in text
            assert 'action="/ui/sign-out"' in text  # and a button to try again
            assert "Traceback" not in text
            # Nothing changed: the session and its cookie are as they were.
            assert saved_cookie(client) == copied
            assert_reads(client, "/ui/")
        response = client.post("/ui/sign-out", data=form)
        assert response.status_code == 303
        for path in PAGES:
            assert_refused(with_cookie(client.application, copied), path)
    finally:
        container.engine().dispose()
        container.engine.reset_override()
