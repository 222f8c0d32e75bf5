"""The viewer's blueprint: pages under /ui/, their templates and static files."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint(
    "ui",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
)
