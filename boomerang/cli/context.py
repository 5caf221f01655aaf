"""What every command handler receives: settings, database access and output streams."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from boomerang.settings import Settings
from boomerang.store import make_engine, migrate, session_factory, transaction


class DatabaseNotReady(Exception):
    """The database cannot be reached or its schema is not at the current version."""


@dataclass
class CommandContext:
    settings: Settings
    out: TextIO = field(default_factory=lambda: sys.stdout)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    def require_current_schema(self) -> None:
        try:
            current = migrate.current_revision(self.engine)
        except OperationalError as exc:
            raise DatabaseNotReady(f"cannot use the database: {exc.orig}") from None
        if current != migrate.head_revision():
            raise DatabaseNotReady(
                f"the database schema is at {current or 'nothing'}, not {migrate.head_revision()}: "
                "run `boomerang db upgrade`"
            )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        self.require_current_schema()
        with transaction(session_factory(self.engine)) as session:
            yield session

    def read_secret(self, prompt: str) -> str:
        """A password or PIN: typed at a prompt, or one line on standard input for scripts.

        Secrets never come from the command line, where `ps` and shell history would show them.
        """
        if self.stdin.isatty():
            return getpass.getpass(prompt)
        return self.stdin.readline().rstrip("\r\n")

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        """Tab-separated rows under a header line: readable, and easy to cut and awk."""
        print("\t".join(header), file=self.out)
        for row in rows:
            print("\t".join("" if cell is None else str(cell) for cell in row), file=self.out)
