"""Every response the tests see, checked against the service's own `/openapi.json`.

The HTTP tests' client (`CheckedClient`, tests/integration/http/conftest.py) and the
real-server tests' `requests` calls (`RequestsChecker`, tests/integration/server/
conftest.py) hand each response to `ResponseChecker.check`, which fails the test when
the document does not describe it: an undocumented status, a media type the operation
does not answer with, a documented required header missing or malformed, or a JSON body
that its schema refuses. Schemas are checked with the OpenAPI 3.1 dialect of JSON Schema
(openapi-schema-validator, on top of jsonschema), so `format`s are checked too.

Paths are matched from the document alone, as a client would: literal paths before
templated ones. A path the document lacks must be a 404, a method it lacks a 405, both
with the error schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from flask import Flask
from flask.testing import FlaskClient
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.exceptions import HTTPException

from audit.container import build_container
from audit.entrypoints.http import create_app
from audit.entrypoints.http.openapi import build_document
from audit.entrypoints.http.ui import is_viewer_endpoint
from audit.settings import MEMORY_URL, Settings

DOCUMENT_URI = "urn:audit:openapi"
ERROR_SCHEMA = "#/components/schemas/Error"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class ResponseMismatch(AssertionError):
    """A response the OpenAPI document does not describe."""


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _path_pattern(template: str) -> re.Pattern[str]:
    pieces = re.split(r"({[^}]+})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in pieces))


def _header_value(raw: str, schema: Mapping[str, Any]) -> Any:
    if schema.get("type") == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


class ResponseChecker:
    """Checks responses against one OpenAPI document (the parsed `/openapi.json`)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(dict(document), default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
        paths: Mapping[str, Any] = document["paths"]
        # OpenAPI: a literal path wins over a templated one that also matches.
        self._paths = sorted(
            ((template, _path_pattern(template)) for template in paths),
            key=lambda item: ("{" in item[0], item[0]),
        )

    def _validate(self, instance: Any, pointer: str, where: str) -> None:
        validator = OAS31Validator(
            {"$ref": DOCUMENT_URI + pointer},
            registry=self._registry,
            format_checker=oas31_format_checker,
        )
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            shown = "; ".join(_describe(e) for e in errors[:5])
            raise ResponseMismatch(f"{where}: {shown}")

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            node = self.document
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def template(self, path: str) -> str | None:
        """The document's path that `path` is an instance of, if any."""
        for template, pattern in self._paths:
            if pattern.fullmatch(path):
                return template
        return None

    def check(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        unchecked: frozenset[int] = frozenset(),
    ) -> None:
        """Fail unless the document describes this response; `body` None: not read.

        `unchecked`: statuses a test provokes on purpose that no document lists (a 500).
        """
        method = method.lower()
        where = f"{method.upper()} {path} -> {status}"
        if status in unchecked:
            return
        template = self.template(path)
        if template is None or method not in self.document["paths"][template]:
            if method == "head":
                return  # HEAD answers as GET would, without a body
            expected = 404 if template is None else 405
            if status != expected:
                raise ResponseMismatch(f"{where}: undocumented, so it must be a {expected}")
            self._check_content(where, ERROR_SCHEMA, "application/json", headers, body)
            return
        operation = self.document["paths"][template][method]
        documented = operation["responses"].get(str(status))
        if documented is None:
            raise ResponseMismatch(
                f"{where}: status not documented (documented: {sorted(operation['responses'])})"
            )
        response_pointer = _pointer("paths", template, method, "responses", str(status))
        response = self._resolve(documented)
        if "$ref" in documented:
            response_pointer = documented["$ref"]
        for name, header in response.get("headers", {}).items():
            header = self._resolve(header)
            raw = _get_header(headers, name)
            if raw is None:
                if header.get("required"):
                    raise ResponseMismatch(f"{where}: the required header {name} is missing")
                continue
            schema_pointer = f"{response_pointer}/headers/{name}/schema"
            if "$ref" in response["headers"][name]:
                schema_pointer = response["headers"][name]["$ref"] + "/schema"
            self._validate(
                _header_value(raw, header.get("schema", {})), schema_pointer, f"{where} {name}"
            )
        content = response.get("content")
        media_type = _get_header(headers, "Content-Type")
        if not content:
            if body:
                raise ResponseMismatch(f"{where}: documented without a body, but has one")
            return
        mimetype = (media_type or "").split(";")[0].strip().lower()
        if mimetype not in content:
            raise ResponseMismatch(
                f"{where}: media type {media_type!r} not documented ({sorted(content)})"
            )
        pointer = _pointer("content", mimetype, "schema")
        self._check_content(where, response_pointer + pointer[1:], mimetype, headers, body)

    def _check_content(
        self,
        where: str,
        schema_pointer: str,
        mimetype: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> None:
        if body is None or mimetype != "application/json":
            return  # streamed or text: the media type is what the document states
        got = (_get_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
        if got != "application/json":
            raise ResponseMismatch(f"{where}: media type {got!r}, not application/json")
        try:
            # The standard library, not orjson: an error may quote back a lone surrogate
            # (an unknown field named "\ud800"), escaped: JSON text that orjson refuses.
            instance = json.loads(body)
        except ValueError as exc:
            raise ResponseMismatch(f"{where}: the body is not JSON: {exc}") from None
        self._validate(instance, schema_pointer, where)


def _get_header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _describe(error: ValidationError) -> str:
    at = "/".join(str(p) for p in error.absolute_path) or "(the body)"
    return f"at {at}: {error.message[:300]}"


@cache
def checker_for(document_json: bytes) -> ResponseChecker:
    """One checker per distinct document: every test's app serves the same one."""
    return ResponseChecker(orjson.loads(document_json))


def _endpoint(app: Flask, path: str, method: str) -> str:
    try:
        endpoint, _ = app.url_map.bind("localhost").match(path, method=method)
    except HTTPException:
        return ""
    return str(endpoint)


class CheckedClient(FlaskClient):
    """A test client that holds every response to the app's own /openapi.json.

    A JSON body is read and validated; any other body (an export's stream) is left
    unread, its status, media type and headers still checked.
    """

    unchecked: frozenset[int] = frozenset()

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        request = response.request
        if is_viewer_endpoint(_endpoint(self.application, request.path, request.method)):
            return response  # the viewer's HTML pages are not the API
        document = FlaskClient(self.application).get("/openapi.json").get_data()
        body = response.get_data() if response.mimetype == "application/json" else None
        checker_for(document).check(
            request.method,
            request.path,
            response.status_code,
            dict(response.headers),
            body,
            unchecked=self.unchecked,
        )
        return response

    @contextmanager
    def undocumented(self, *statuses: int) -> Iterator[None]:
        """For a test that provokes, on purpose, a status no document lists (a 500)."""
        before = self.unchecked
        self.unchecked = before | frozenset(statuses)
        try:
            yield
        finally:
            self.unchecked = before


def built_document(key_folder: Path) -> bytes:
    """The document `audit serve` serves, built in this process from the same code: so
    reading it asks nothing of the servers under test (nor shows in their access logs)."""
    container = build_container(
        Settings(database_url=MEMORY_URL, signing_key_file=str(key_folder / "signing.key"))
    )
    try:
        return orjson.dumps(build_document(create_app(container)))
    finally:
        container.unwire()


class RequestsChecker:
    """Checks what `requests` receives from servers on loopback against `document`."""

    def __init__(self, document: bytes) -> None:
        self._checker = checker_for(document)

    def check(self, response: Any, *, streamed: bool) -> None:
        url = urlsplit(response.url)
        if url.hostname not in {"127.0.0.1", "localhost", "::1"}:
            return
        mimetype = response.headers.get("Content-Type", "").split(";")[0].strip()
        body = None if streamed or mimetype != "application/json" else response.content
        self._checker.check(
            response.request.method, unquote(url.path), response.status_code, response.headers, body
        )
