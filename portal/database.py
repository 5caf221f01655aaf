"""The portal's database: one engine per worker process, write and read-only transactions.

Reads use read-only sessions: on SQLite they do not take the write lock, so pages and API reads
never queue behind a writer (boomerang/store).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from boomerang.store import make_engine, read_only_factory, session_factory, transaction


class Database:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.writer = session_factory(self.engine)
        self.reader = read_only_factory(self.engine)

    @contextmanager
    def write(self) -> Iterator[Session]:
        with transaction(self.writer) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with transaction(self.reader) as session:
            yield session
