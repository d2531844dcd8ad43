"""Connecting to the read store and migrating it (Alembic, run programmatically).

``GRID_STORE_URL`` is a SQLAlchemy URL: ``postgresql+psycopg://user@host:port/db`` in
production, ``sqlite:///…`` embedded. Without it the commands use the store ``grid up``'s
worker keeps: ``$GRID_HOME/data/store.db`` (``GRID_HOME`` defaults to ``~/.grid``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"


def default_url() -> str:
    """``GRID_STORE_URL``, else the SQLite file of ``grid up``'s worker."""
    if url := os.environ.get("GRID_STORE_URL"):
        return url
    home = Path(os.environ.get("GRID_HOME") or Path.home() / ".grid")
    return f"sqlite:///{home / 'data' / 'store.db'}"


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for other databases)."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def connect(url: str | None = None, migrate: bool = True) -> Engine:
    """An engine on ``url`` (default :func:`default_url`), migrated to the newest schema.

    SQLite runs in WAL mode so that readers never wait for the projector's transactions.
    """
    url = url or default_url()
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url)
    else:
        # JIT off: the store's queries are short or index-bound, and PostgreSQL's JIT
        # compiled the evaluation's aggregates for ~0.3 s of its ~1.3 s of server CPU at
        # 1,000,000 cases (grid bench store; up to 1.3 s per query on a loaded machine)
        engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4,
                               connect_args={"options": "-c jit=off"}, **_JSON)
    if migrate:
        upgrade(engine)
    return engine


def _sqlite_engine(url: str, transactional_ddl: bool = False) -> Engine:
    """A SQLite engine in WAL mode. ``transactional_ddl``: every transaction starts with
    ``BEGIN IMMEDIATE``, issued by SQLAlchemy rather than by the driver (which begins only
    before DML and so runs DDL outside any transaction): a migration killed half-way leaves
    nothing behind (SQLAlchemy's pysqlite notes, "Serializable isolation / Savepoints /
    Transactional DDL")."""
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           **_JSON)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        if transactional_ddl:
            dbapi_conn.isolation_level = None  # the driver begins nothing by itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    if transactional_ddl:
        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _json_dumps(value: object) -> str:
    """JSON columns are written with orjson (the stdlib encoder was ~10 % of the projector's
    time, docs/BENCHMARKS.md "Read store"); non-string keys become strings, as there."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_JSON = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` in one transaction: idempotent, all or
    nothing (a process killed while it migrates leaves the store as it was), and safe when
    several processes start on one store at once (PostgreSQL serialises them with an
    advisory lock in ``migrations/env.py``, SQLite with a lock file)."""
    url = engine.url.render_as_string(hide_password=False)
    if (path := sqlite_path(url)) is None or path.name in ("", ":memory:"):
        command.upgrade(alembic_config(engine), revision)
        return
    migrating = _sqlite_engine(url, transactional_ddl=True)
    try:
        with _file_lock(path.with_name(path.name + ".migrate.lock")):
            command.upgrade(alembic_config(migrating), revision)
    finally:
        migrating.dispose()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def reset(engine: Engine) -> None:
    """Drop every table and migrate again: an empty store (``grid projector --rebuild``)."""
    command.downgrade(alembic_config(engine), "base")
    upgrade(engine)
