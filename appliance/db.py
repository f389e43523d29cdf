"""Engine and session factory; the caller owns every transaction."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from appliance.config import DatabaseConfig, Secrets
from appliance.errors import NotMigrated, Unavailable


def create_db_engine(cfg: DatabaseConfig, secrets: Secrets | None = None) -> Engine:
    """Build the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    url = make_url(cfg.url)
    if secrets is not None and secrets.database_password is not None:
        url = url.set(password=secrets.database_password.get_secret_value())
    if url.get_backend_name() == "sqlite":
        # hide_parameters: an error's text (logged) must not carry the values of a statement
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        hide_parameters=True,
        # a database host that does not answer is an outage in seconds, not a hung worker
        connect_args={"connect_timeout": 5},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Connection) -> None:
    # SQLite ignores SELECT ... FOR UPDATE. A deferred transaction that reads and then
    # writes fails instead of waiting when another writer got in between, so every
    # transaction takes the write lock up front; WAL still lets readers in other
    # connections proceed.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises."""
    with sessions.begin() as session:
        yield session


def rows_changed(session: Session, statement: Any, params: dict[str, Any] | None = None) -> int:
    """Run an UPDATE or DELETE and return how many rows it changed: what makes a conditional
    update an atomic claim (exactly one of two racing requests changes the row)."""
    return cast(CursorResult[Any], session.execute(statement, params)).rowcount


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def migrate_database(engine: Engine) -> str:
    """Apply every pending migration; returns the revision now in force."""
    with engine.begin() as connection:
        alembic_command.upgrade(_alembic_config(connection), "head")
    return head_revision()


def head_revision() -> str:
    script = ScriptDirectory(str(Path(__file__).parent / "migrations"))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_migrated(engine: Engine) -> None:
    """Refuse to serve a database whose schema is not at the code's head revision.

    :raises NotMigrated: naming both revisions and the command that fixes it.
    :raises Unavailable: when the database cannot be reached.
    """
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        raise Unavailable(
            "The database cannot be reached right now. Try again in a few minutes.",
            detail=f"database unreachable at {engine.url.render_as_string()}",
        ) from exc
    head = head_revision()
    if current != head:
        raise NotMigrated(
            f"the database schema is at revision {current or 'none (empty database)'} "
            f"but this version needs {head}: run `appliance migrate` first"
        )


@contextmanager
def scratch_schema(url: str, prefix: str) -> Iterator[str]:
    """A new, empty schema in the PostgreSQL database at `url`, dropped with all it holds on
    the way out; yields the URL whose connections use it (search_path).

    For the test suite and the benchmarks: one PostgreSQL database serves many runs at once,
    each in a schema of its own.
    """
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield scoped.render_as_string(hide_password=False)
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
