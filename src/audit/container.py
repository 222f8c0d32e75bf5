"""The composition root: picks the adapters from configuration and builds the use cases."""

from __future__ import annotations

import os
from typing import Any

from dependency_injector import containers, providers

from audit.adapters.clock import SystemClock
from audit.adapters.memory import InMemoryUnitOfWorkFactory
from audit.adapters.sql import SqlUnitOfWorkFactory, create_engine_for
from audit.application.health import CheckReadiness
from audit.application.querying import (
    ExportEvents,
    GetEvent,
    ListTenants,
    LogHead,
    QueryEvents,
    VerifyChain,
)
from audit.application.recording import RecordEvents
from audit.application.tokens import (
    Authenticate,
    BootstrapToken,
    IssueToken,
    ListTokens,
    RevokeToken,
)

MEMORY_URL = "memory://"
DEFAULT_DATABASE_URL = "sqlite:///audit.db"


def storage_kind(url: str) -> str:
    return "memory" if url == MEMORY_URL else "sql"


def settings_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Configuration from the environment, read once, here."""
    env = dict(os.environ if env is None else env)
    url = env.get("AUDIT_DATABASE_URL") or DEFAULT_DATABASE_URL
    return {
        "database_url": url,
        "storage": storage_kind(url),
        "max_body_bytes": int(env.get("AUDIT_MAX_BODY_BYTES", 5 * 1024 * 1024)),
    }


class Container(containers.DeclarativeContainer):
    """One container per process (or per app in tests); the use cases never see it."""

    wiring_config = containers.WiringConfiguration(packages=["audit.entrypoints.http"])

    config = providers.Configuration()

    clock = providers.Singleton(SystemClock)

    engine = providers.Singleton(create_engine_for, config.database_url)

    uow = providers.Selector(
        config.storage,
        memory=providers.Singleton(InMemoryUnitOfWorkFactory),
        sql=providers.Singleton(SqlUnitOfWorkFactory, engine),
    )

    record_events = providers.Factory(RecordEvents, uow=uow, clock=clock)
    query_events = providers.Factory(QueryEvents, uow=uow)
    get_event = providers.Factory(GetEvent, uow=uow)
    export_events = providers.Factory(ExportEvents, uow=uow)
    verify_chain = providers.Factory(VerifyChain, uow=uow)
    list_tenants = providers.Factory(ListTenants, uow=uow)
    log_head = providers.Factory(LogHead, uow=uow)
    authenticate = providers.Factory(Authenticate, uow=uow, clock=clock)
    issue_token = providers.Factory(IssueToken, uow=uow, clock=clock)
    bootstrap_token = providers.Factory(BootstrapToken, uow=uow, clock=clock)
    list_tokens = providers.Factory(ListTokens, uow=uow)
    revoke_token = providers.Factory(RevokeToken, uow=uow, clock=clock)
    check_readiness = providers.Factory(CheckReadiness, uow=uow)


def build_container(settings: dict[str, Any] | None = None) -> Container:
    container = Container()
    container.config.from_dict(settings if settings is not None else settings_from_env())
    return container
