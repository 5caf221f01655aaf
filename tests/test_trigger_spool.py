"""The node's spool of promised callbacks: what the SIP edge keeps while the database cannot take it."""

from __future__ import annotations

import json
import os
import time

from boomerang.trigger_spool import ABANDONED_TEMPORARY_SECONDS, SpooledRequest, TriggerSpool


def request(call_id: str, caller: str = "447700900101") -> SpooledRequest:
    return SpooledRequest(
        request_ref="trigger:" + call_id,
        caller=caller,
        access_number_id=1,
        access_number="123333333",
        gateway_id=1,
        known_caller_account=None,
        requested_at="2026-12-03T10:00:00+00:00",
        due_at="2026-12-03T10:00:08+00:00",
    )


def test_requests_come_back_whole_in_the_order_they_were_kept(tmp_path):
    spool = TriggerSpool(tmp_path / "spool")
    for index in range(3):
        spool.keep(request(f"call-{index}", caller=f"44770090010{index}"))
        time.sleep(0.01)
    waiting = list(spool.waiting())
    assert [kept.caller for _, kept in waiting] == ["447700900100", "447700900101", "447700900102"]
    assert waiting[0][1] == request("call-0", caller="447700900100")
    assert spool.count() == 3
    assert oct((tmp_path / "spool").stat().st_mode & 0o777) == "0o700"
    assert all(oct(path.stat().st_mode & 0o777) == "0o600" for path, _ in waiting)


def test_a_retransmitted_trigger_is_kept_once_and_a_moved_one_is_forgotten(tmp_path):
    spool = TriggerSpool(tmp_path)
    spool.keep(request("same"))
    spool.keep(request("same"))
    [(path, _)] = list(spool.waiting())
    spool.done(path)
    spool.done(path)  # twice is harmless
    assert list(spool.waiting()) == [] and spool.count() == 0


def test_a_file_cut_by_a_crash_is_never_taken_for_a_request(tmp_path):
    spool = TriggerSpool(tmp_path)
    spool.keep(request("whole"))
    (tmp_path / "bad.json").write_text('{"caller": ')  # not a request: reported as such
    fields = {**request("odd").__dict__, "due_at": "soon"}
    (tmp_path / "odd.json").write_text(json.dumps(fields))  # whole, but no request either
    writing = tmp_path / ".writing-1-abc.json"
    writing.write_text('{"request_ref": "trigger:half"')  # never renamed into place: never promised
    old = time.time() - ABANDONED_TEMPORARY_SECONDS - 1
    os.utime(writing, (old, old))
    kept = {path.name: value for path, value in spool.waiting()}
    assert kept["bad.json"] is None and kept["odd.json"] is None
    assert [value.request_ref for value in kept.values() if value] == ["trigger:whole"]
    assert not writing.exists()  # abandoned: cleaned up


def test_an_empty_or_missing_spool_holds_nothing(tmp_path):
    spool = TriggerSpool(tmp_path / "never-created")
    assert list(spool.waiting()) == [] and spool.count() == 0
