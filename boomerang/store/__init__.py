"""Database access: engines configured for SQLite or MariaDB, sessions, and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_WAIT_SECONDS = 30


def make_engine(url: str, wait_seconds: int | None = None) -> Engine:
    """An engine with the settings each backend needs to behave as the platform expects.

    `wait_seconds`: how long a statement may wait for a lock (SQLite) or for the server to answer
    (MariaDB) before it fails; by default as long as a busy database may need, but nothing bounds
    a MariaDB that stopped answering. The SIP edge, which must never freeze, waits a short while.
    Kamailio and gunicorn fork worker processes: create engines after the fork, never before.
    """
    if url.startswith("sqlite"):
        wait = DEFAULT_WAIT_SECONDS if wait_seconds is None else wait_seconds
        engine = create_engine(url, connect_args={"timeout": wait})
        event.listen(engine, "connect", lambda connection, record: _configure_sqlite(connection, wait))
        event.listen(engine, "begin", _begin_immediate)
        return engine
    connect_args = {}
    if wait_seconds is not None and url.startswith("mysql+pymysql"):
        connect_args = {"connect_timeout": wait_seconds, "read_timeout": wait_seconds, "write_timeout": wait_seconds}
    # Money code takes explicit row locks; READ COMMITTED makes every read after a lock see the
    # latest committed rows rather than a snapshot taken earlier in the transaction.
    return create_engine(
        url, pool_pre_ping=True, pool_recycle=3600, isolation_level="READ COMMITTED", connect_args=connect_args
    )


def _configure_sqlite(dbapi_connection, wait_seconds: int) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN instead of the driver's implicit deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer across processes
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(wait_seconds * 1000)}")
    cursor.close()


def _begin_immediate(connection) -> None:
    # A deferred transaction that reads and then writes fails with SQLITE_BUSY when another
    # process wrote in between; taking the write lock up front makes concurrent writers queue.
    # Read-only work (see read_only_factory) needs no lock: WAL readers never wait for writers.
    connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_only_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reads only: on SQLite they do not take the write lock, so they never queue."""
    return sessionmaker(engine.execution_options(read_only=True), expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception."""
    with factory() as session, session.begin():
        yield session


class Lane:
    """Transactions run one after another on one connection kept between them.

    A connection from the pool is pinged when it is taken and rolled back when it is given back:
    two round trips more per transaction, as many as the short transactions of the rating engine
    make themselves. A lane keeps its connection; after an error that lost it (the database
    restarted), the next transaction takes a new one. One thread at a time: the call controller's
    credit desk runs each lane on a thread of its own.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        if self._connection is None:
            self._connection = self._engine.connect()
        try:
            with Session(bind=self._connection, expire_on_commit=False) as session, session.begin():
                yield session
        except Exception:
            self.close()  # cheap to replace; and a connection in an unknown state is not kept
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
