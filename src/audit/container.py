"""The composition root: picks the adapters from configuration and builds the use cases."""

from __future__ import annotations

from dependency_injector import containers, providers

from audit.adapters.checkpoints import checkpoint_sink as make_checkpoint_sink
from audit.adapters.clock import SystemClock
from audit.adapters.known_tokens import shared_known_tokens
from audit.adapters.memory import (
    InMemoryRevocationEpoch,
    InMemorySigningKeyRecord,
    InMemoryUnitOfWorkFactory,
)
from audit.adapters.signing import derived_secret, signer_from_settings
from audit.adapters.sql import (
    SqlRevocationEpoch,
    SqlUnitOfWorkFactory,
    create_engine_for,
    describe_failure,
    sqlite_file,
    upgrade_schema,
)
from audit.adapters.sql.signing_key import SqlSigningKeyRecord
from audit.adapters.writer import WriterClient
from audit.application.authentication import Authenticate, FailureThrottle, TokenUses
from audit.application.health import CheckReadiness
from audit.application.proofs import LogIdentity, ProveConsistency, ProveInclusion, SignCheckpoint
from audit.application.querying import (
    ExportEvents,
    GetEvent,
    ListTenants,
    LogHead,
    QueryEvents,
    VerifyChain,
)
from audit.application.recording import GroupCommit, RecordEvents
from audit.application.sessions import EndSession, SessionHolds, StartSession
from audit.application.signing import BindSigningKey
from audit.application.tokens import (
    BootstrapToken,
    IssueToken,
    ListTokens,
    RevokeToken,
)
from audit.settings import Settings


def _nothing() -> None:
    return None


def describe_storage_failure(error: BaseException) -> str | None:
    """One line naming a storage failure the use cases let through, or None."""
    return describe_failure(error)


class Container(containers.DeclarativeContainer):
    """One container per process (or per app in tests); the use cases never see it."""

    wiring_config = containers.WiringConfiguration(packages=["audit.entrypoints.http"])

    # The one Settings object of the process, and `config` fed from it (build_container).
    settings = providers.Dependency(instance_of=Settings)
    config = providers.Configuration()

    clock = providers.Singleton(SystemClock)

    engine = providers.Singleton(
        create_engine_for, config.database_url, pool_size=config.db_connections
    )

    # The revocation epoch as this process reads it (RevocationEpoch): also how a reading
    # unit of work answers revocation_epoch() (on SQLite, from the beacon).
    sql_revocation_epoch = providers.Singleton(
        SqlRevocationEpoch, engine, keep=config.db_connections
    )
    uow = providers.Selector(
        config.storage,
        memory=providers.Singleton(InMemoryUnitOfWorkFactory),
        sql=providers.Singleton(SqlUnitOfWorkFactory, engine, epoch=sql_revocation_epoch),
    )

    # For the command line: bring the schema up to date (memory has none), and the SQLite
    # file of the store (None for any other), which reading commands must not create.
    upgrade_schema = providers.Selector(
        config.storage,
        memory=providers.Callable(_nothing),
        sql=providers.Callable(upgrade_schema, config.database_url),
    )
    database_file = providers.Selector(
        config.storage,
        memory=providers.Object(None),
        sql=providers.Callable(sqlite_file, config.database_url),
    )

    # One per process: concurrent requests share a transaction and its fsync; under
    # `audit serve`, every request of the server does, in the writer process.
    record_events = providers.Selector(
        config.writer,
        local=providers.Singleton(
            GroupCommit, providers.Factory(RecordEvents, uow=uow, clock=clock)
        ),
        process=providers.Singleton(
            WriterClient,
            config.writer_socket,
            providers.Factory(RecordEvents, uow=uow, clock=clock),
            config.writer_timeout_s,
        ),
    )
    # For a process whose one thread commits every group (the server's writer, the queue
    # consumer): submit, then commit_group, each request all or nothing on its own. Its
    # writes reuse one connection.
    group_uow = providers.Selector(
        config.storage,
        memory=uow,
        sql=providers.Singleton(SqlUnitOfWorkFactory, engine, keep_writer=True),
    )
    record_groups = providers.Factory(RecordEvents, uow=group_uow, clock=clock)
    query_events = providers.Factory(QueryEvents, uow=uow)
    get_event = providers.Factory(GetEvent, uow=uow)
    export_events = providers.Factory(ExportEvents, uow=uow)
    verify_chain = providers.Factory(VerifyChain, uow=uow)
    list_tenants = providers.Factory(ListTenants, uow=uow)
    log_head = providers.Factory(LogHead, uow=uow)
    revocation_epoch = providers.Selector(
        config.storage,
        memory=providers.Singleton(InMemoryRevocationEpoch, uow),
        sql=sql_revocation_epoch,
    )
    # Per process: the principals it has found, the uses it has yet to write, the
    # addresses it holds off. Shared by a server's processes: the tokens they accepted.
    token_uses = providers.Singleton(TokenUses, uow=uow)
    known_tokens = providers.Singleton(shared_known_tokens, config.known_tokens_file)
    authenticate = providers.Singleton(
        Authenticate,
        uow=uow,
        clock=clock,
        epoch=revocation_epoch,
        uses=token_uses,
        shared=known_tokens,
    )
    auth_throttle = providers.Singleton(FailureThrottle, limit=config.auth_failure_limit)
    issue_token = providers.Factory(IssueToken, uow=uow, clock=clock)
    bootstrap_token = providers.Factory(BootstrapToken, uow=uow, clock=clock)
    list_tokens = providers.Factory(ListTokens, uow=uow, uses=token_uses)
    revoke_token = providers.Factory(RevokeToken, uow=uow, clock=clock)
    check_readiness = providers.Factory(CheckReadiness, uow=uow)

    # Made on first use, so a process that signs nothing never touches the key.
    signer = providers.Singleton(
        signer_from_settings, config.log_origin, config.signing_key_file, config.signing_key
    )
    signing_key_record = providers.Selector(
        config.storage,
        memory=providers.Singleton(InMemorySigningKeyRecord),
        sql=providers.Singleton(SqlSigningKeyRecord, engine),
    )
    bind_signing_key = providers.Factory(BindSigningKey, record=signing_key_record, signer=signer)
    log_identity = providers.Singleton(LogIdentity, config.log_origin, signer)
    checkpoint_sink = providers.Singleton(make_checkpoint_sink, config.checkpoint_dir)
    sign_checkpoint = providers.Factory(
        SignCheckpoint, uow=uow, identity=log_identity, sink=checkpoint_sink
    )
    prove_inclusion = providers.Factory(ProveInclusion, uow=uow, identity=log_identity)
    prove_consistency = providers.Factory(ProveConsistency, uow=uow)
    # The web viewer's sessions: signing out is recorded in storage, for every server.
    start_session = providers.Factory(StartSession, clock=clock)
    session_holds = providers.Factory(SessionHolds, uow=uow, clock=clock)
    end_session = providers.Factory(EndSession, uow=uow, clock=clock)
    # The web viewer's cookie key, derived from the signing key so every worker agrees.
    viewer_secret = providers.Singleton(
        derived_secret, config.signing_key_file, config.signing_key, "audit viewer session"
    )


def build_container(settings: Settings | None = None) -> Container:
    """The container of `settings` (default: the process environment's)."""
    if settings is None:
        settings = Settings.from_env()
    container = Container(settings=settings)
    container.config.from_dict(settings.as_config())
    return container
