"""Alembic's entry point for the migrations of the audit service's SQL schema.

upgrade_schema() passes an open connection in `config.attributes["connection"]`; the
`alembic` command line can instead give a URL as `sqlalchemy.url` or `-x url=...`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from audit.adapters.sql.engine import WRITE_OPTION, create_engine_for
from audit.adapters.sql.schema import described_on, metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # So `alembic revision --autogenerate` proposes no drop of the search index.
        include_object=described_on(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    return url or context.config.get_main_option("sqlalchemy.url") or ""


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := context.config.attributes.get("connection")) is not None:
    _run(given)
else:
    engine = create_engine_for(_url())
    try:
        with engine.connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                _run(connection)
    finally:
        engine.dispose()
