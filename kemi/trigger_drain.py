"""The drain: a Kamailio timer process of its own moves the callbacks promised at the SIP edge from
the node's spool (`boomerang/trigger_spool.py`) into the database, and tells the call controller.

It is the only part of the edge that waits on the database for a trigger, and it waits alone: while
the database is stalled or away, requests stay spooled (the gauge `boomerang_triggers_spooled` shows
how many) and move, in the order they came, once it answers. A spool survives a restart of
Kamailio or of the whole node; whoever drains it next records each request once. Requests move in
batches, one transaction each; a request the database refuses (its access number removed
meanwhile, say) is set aside with a log line rather than hold up the ones behind it.
"""

import time

import KSR
from sqlalchemy.exc import DBAPIError

from kemi import controller_channel, metrics

MOST_PER_ROUND = 200  # one transaction; the timer comes back for the rest
RETRY_SECONDS = 1.0  # after the database failed, it is asked again this long after
REFUSED_SUFFIX = ".refused"  # a request the database will never take, kept for the operator
UNREADABLE_SUFFIX = ".unreadable"


class TriggerDrain:
    def __init__(self, directory):
        self.directory = directory
        self._failing_since = None  # per timer process: when the database stopped taking requests
        self._next_try = 0.0

    def run(self):
        if time.monotonic() < self._next_try:
            return
        spool = self.directory.trigger_spool
        batch = []
        for path, request in spool.waiting():
            if request is None:
                path.rename(path.with_suffix(UNREADABLE_SUFFIX))
                KSR.err("spooled callback request " + path.name + " cannot be read: set aside\n")
            else:
                batch.append((path, request))
            if len(batch) >= MOST_PER_ROUND:
                break
        if batch:
            try:
                self._move(spool, batch)
            except DBAPIError as exc:
                if not _refused(exc):
                    self._failed(exc, spool.count())
                    return
                for one in batch:  # which one the database refuses: the others move on
                    try:
                        self._move(spool, [one])
                    except DBAPIError as exc_one:
                        if not _refused(exc_one):
                            self._failed(exc_one, spool.count())
                            return
                        one[0].rename(one[0].with_suffix(REFUSED_SUFFIX))
                        KSR.err(f"callback request from {one[1].caller} refused by the database, set aside as "
                                f"{one[0].name}{REFUSED_SUFFIX}: {repr(exc_one)[:300]}\n")  # fmt: skip
        if self._failing_since is not None:
            outage = time.monotonic() - self._failing_since
            KSR.info(f"callback requests recorded again after {outage:.0f} s of database outage\n")
            self._failing_since = None
        metrics.spooled_triggers(spool.count())

    def _move(self, spool, batch):
        recorded = self.directory.record_callback_requests([request for _, request in batch])
        spool.done(*(path for path, _ in batch))
        for (_, request), (session_id, account_id, new) in zip(batch, recorded, strict=True):
            if new:
                controller_channel.send(
                    {
                        "type": "callback_request",
                        "session_id": session_id,
                        "caller": request.caller,
                        "access_number": request.access_number,
                        "account_id": account_id,
                        "requested_at": request.requested_at,
                        "due_at": request.due_at,
                    }
                )

    def _failed(self, exc, waiting):
        self._next_try = time.monotonic() + RETRY_SECONDS
        metrics.spooled_triggers(waiting)
        if self._failing_since is None:  # said once per outage, not once a round
            self._failing_since = time.monotonic()
            KSR.warn(f"the database does not take callback requests: {waiting} kept in the spool until it does: "
                     f"{repr(exc)[:300]}\n")  # fmt: skip


def _refused(exc):
    """The database answered and will not take this (a constraint), as opposed to not answering."""
    return type(exc).__name__ in ("IntegrityError", "DataError")
