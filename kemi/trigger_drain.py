"""The drain: a Kamailio timer process of its own moves the callbacks promised at the SIP edge from
the node's spool (`boomerang/trigger_spool.py`) into the database, and tells the call controller.

It is the only part of the edge that waits on the database for a trigger, and it waits alone: while
the database is stalled or away, requests stay spooled (the gauge `boomerang_triggers_spooled` shows
how many) and move, in the order they came, once it answers. A spool survives a restart of
Kamailio or of the whole node; whoever drains it next records each request once.
"""

import time

import KSR

from kemi import controller_channel, metrics

MOST_PER_ROUND = 200  # the timer comes back within a round, and a long backlog moves in rounds
RETRY_SECONDS = 1.0  # after a failure, the database is asked again this long after


class TriggerDrain:
    def __init__(self, directory):
        self.directory = directory
        self._failing_since = None  # per timer process: when the database stopped taking requests
        self._next_try = 0.0

    def run(self):
        if time.monotonic() < self._next_try:
            return
        spool = self.directory.trigger_spool
        moved = 0
        for path, request in spool.waiting():
            if moved >= MOST_PER_ROUND:
                break
            if request is None:
                path.rename(path.with_suffix(".unreadable"))
                KSR.err("spooled callback request " + path.name + " cannot be read: set aside\n")
                continue
            try:
                session_id, account_id, new = self.directory.record_callback_request(request)
            except Exception as exc:
                self._failed(exc, spool.count())
                return
            spool.done(path)
            moved += 1
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
        if self._failing_since is not None:
            outage = time.monotonic() - self._failing_since
            KSR.info(f"callback requests recorded again after {outage:.0f} s of database outage\n")
            self._failing_since = None
        metrics.spooled_triggers(spool.count())

    def _failed(self, exc, waiting):
        self._next_try = time.monotonic() + RETRY_SECONDS
        metrics.spooled_triggers(waiting)
        if self._failing_since is None:  # said once per outage, not once a round
            self._failing_since = time.monotonic()
            KSR.warn(f"the database does not take callback requests: {waiting} kept in the spool until it does: "
                     f"{repr(exc)[:300]}\n")  # fmt: skip
