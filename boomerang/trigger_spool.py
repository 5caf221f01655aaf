"""Callback requests kept on the node's disk from the moment they are promised until the database
holds them.

The SIP edge promises a callback (ringing, then busy) only once the request is durably kept, and it
must never wait on the database to do so: a stalled or restarting database would freeze every SIP
worker and drop the promise. So each worker writes the request to a file of its own in the spool
(written, flushed to disk, then renamed into place: a request is either whole or absent), and one
process apart from the workers (`kemi/trigger_drain.py`) moves the requests into the database as
soon as it answers. A request is named by its trigger's Call-ID, so a retransmitted or repeated
INVITE is kept once, and a request moved twice (a crash between the insert and the removal) is
recognised by its `request_ref` and recorded once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

SUFFIX = ".json"
TEMPORARY_PREFIX = ".writing-"
ABANDONED_TEMPORARY_SECONDS = 60.0  # a file still being written after this was left by a crash


@dataclass(frozen=True)
class SpooledRequest:
    """A promised callback as the SIP edge saw it."""

    request_ref: str  # "trigger:" + Call-ID
    caller: str
    access_number_id: int
    access_number: str
    gateway_id: int
    known_caller_account: int | None  # looked up at the trigger when the access number needed it
    requested_at: str  # ISO 8601, UTC
    due_at: str


class TriggerSpool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def keep(self, request: SpooledRequest) -> None:
        """Write the request durably; raises OSError (disk full, say) when it could not be."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = hashlib.sha256(request.request_ref.encode()).hexdigest()[:32] + SUFFIX
        final = self.directory / name
        if final.exists():
            return  # a retransmission of a request already kept
        temporary = self.directory / f"{TEMPORARY_PREFIX}{os.getpid()}-{name}"
        data = json.dumps(asdict(request), separators=(",", ":")).encode()
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, final)
        self._sync_directory()

    def waiting(self) -> Iterator[tuple[Path, SpooledRequest | None]]:
        """The requests kept, oldest first; None for a file that cannot be read as one."""
        if not self.directory.is_dir():
            return
        entries = []
        now = time.time()
        for path in self.directory.iterdir():
            try:
                modified = path.stat().st_mtime
            except FileNotFoundError:  # moved by another process meanwhile
                continue
            if path.name.startswith(TEMPORARY_PREFIX):
                if now - modified > ABANDONED_TEMPORARY_SECONDS:
                    path.unlink(missing_ok=True)  # never renamed into place: never promised
                continue
            if path.suffix == SUFFIX:
                entries.append((modified, path))
        for _, path in sorted(entries):
            yield path, _read(path)

    def count(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(1 for path in self.directory.iterdir() if path.suffix == SUFFIX)

    def done(self, *paths: Path) -> None:
        """The database holds these requests: forget them."""
        for path in paths:
            path.unlink(missing_ok=True)
        self._sync_directory()

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _read(path: Path) -> SpooledRequest | None:
    try:
        request = SpooledRequest(**json.loads(path.read_bytes()))
        for moment in (request.requested_at, request.due_at):
            datetime.fromisoformat(moment)  # raises ValueError for what is no time
        for number in (request.access_number_id, request.gateway_id):
            int(number)
        return request
    except (OSError, ValueError, TypeError):
        return None
