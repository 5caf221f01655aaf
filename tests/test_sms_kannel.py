"""SMS through a real Kannel: its fake SMSC (kannel-extras' fakesmsc) delivers a text to bearerbox;
smsbox calls the portal's get-url; the call controller answers through Kannel's sendsms interface;
the reply comes out of the fake SMSC. The platform runs as `boomerang run` runs it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from boomerang import provisioning, services
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import Gateway, SmsDirection, SmsEgress, SmsMessage, SmsStatus
from boomerang.supervisor import Supervisor, stop_group
from tests.servicekit import free_port, running_edge

pytestmark = pytest.mark.sip

FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
SMS_NUMBER = "1234000000"

KANNEL_CONF = """
group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = secret
smsbox-port = {smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{directory}/bearerbox.log"
log-level = 0

group = smsc
smsc = fake
smsc-id = fake
host = 127.0.0.1
port = {fake}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{directory}/smsbox.log"
log-level = 0

group = sendsms-user
username = boomerang
password = secret
user-allow-ip = 127.0.0.1

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "http://{portal}/sms/kannel?gateway=carrier&sender=%p&receiver=%P&text=%b&coding=%c&charset=%C&id=%I"
"""


@pytest.fixture(scope="module")
def kannel_platform(tmp_path_factory):
    if not (shutil.which("bearerbox") and FAKESMSC.exists()):
        pytest.fail("Kannel is not installed: `make test` installs kannel and kannel-extras")
    directory = tmp_path_factory.mktemp("kannel")
    ports = {name: free_port() for name in ("admin", "smsbox", "fake", "sendsms")}
    with running_edge(directory / "platform") as settings:
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            session.execute(
                update(Gateway)
                .where(Gateway.name == "carrier")
                .values(
                    sms_egress=SmsEgress.KANNEL,
                    kannel_sendsms_url=f"http://127.0.0.1:{ports['sendsms']}/cgi-bin/sendsms?username=boomerang"
                    "&password=secret",
                )
            )
            provisioning.add_caller_id(session, "demo", "+447700900320")
        conf = directory / "kannel.conf"
        conf.write_text(KANNEL_CONF.format(directory=directory, portal=settings.portal_listen, **ports))
        others = Supervisor(settings, out=io.StringIO())
        others.start(services.controller(settings))
        others.start(services.portal(settings))
        boxes = []
        try:
            for box in ("bearerbox", "smsbox"):
                boxes.append(
                    subprocess.Popen(
                        [box, "-v", "1", str(conf)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )  # fmt: skip
                )
                time.sleep(1.5)
            yield settings, ports, session_factory(engine), directory
        finally:
            for process in reversed(boxes):
                stop_group(process)
            others.stop_all()
            engine.dispose()


def exchange(ports, directory: Path, sender: str, text: str, timeout: float = 20, kind: str = "text") -> str:
    """The fake SMSC delivers one text and prints what Kannel hands it back; returns that output.
    `kind` "data": `text` is URL-escaped bytes (8-bit data, as a phone's Latin-1 text arrives)."""
    log = directory / f"fakesmsc-{sender}.log"
    with log.open("w") as out:
        fake = subprocess.Popen(
            [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(ports["fake"]), "-i", "0.1", "-m", "1",
             f"{sender} {SMS_NUMBER} {kind} {text}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and "Got message" not in log.read_text(errors="replace"):
                time.sleep(0.2)
        finally:
            stop_group(fake)
    return log.read_text(errors="replace")


def test_a_text_through_kannel_is_answered_through_kannel(kannel_platform):
    _, ports, sessions, directory = kannel_platform
    output = exchange(ports, directory, "447700900320", "BAL")
    assert "Your balance is 10.00 USD." in output, output[-2000:]
    with transaction(sessions) as session:
        messages = session.execute(select(SmsMessage).order_by(SmsMessage.id)).scalars().all()
        rows = [(m.direction, m.sender, m.receiver, m.text.strip(), m.status) for m in messages]
    assert rows == [
        (SmsDirection.INBOUND, "447700900320", SMS_NUMBER, "BAL", SmsStatus.HANDLED),
        (SmsDirection.OUTBOUND, SMS_NUMBER, "447700900320", "Your balance is 10.00 USD.", SmsStatus.SENT),
    ]


def test_a_latin1_text_through_kannel_is_stored_as_written_and_answered(kannel_platform):
    _, ports, sessions, directory = kannel_platform
    output = exchange(ports, directory, "447700900323", "Caf%E9+cr%E8me", kind="data")
    assert "Got message" in output, output[-2000:]  # answered
    with transaction(sessions) as session:
        texts = (
            session.execute(
                select(SmsMessage.text).where(
                    SmsMessage.sender == "447700900323", SmsMessage.direction == SmsDirection.INBOUND
                )
            )
            .scalars()
            .all()
        )
    assert [text.strip() for text in texts] == ["Café crème"]


def test_an_unknown_phone_through_kannel_is_told_to_register(kannel_platform):
    _, ports, _, directory = kannel_platform
    output = exchange(ports, directory, "447700900321", "HELP")
    assert "This phone is not registered" in output, output[-2000:]


def test_every_command_through_kannel(kannel_platform):
    _, ports, sessions, directory = kannel_platform
    sender = "447700900322"
    for text, reply in [
        ("BAL", "This phone is not registered. Send REG followed by your PIN to register it."),
        ("REG 9999", "That PIN is not valid."),
        ("REG 4321", "This phone is registered"),
        ("bal", "Your balance is 10.00 USD."),
        ("RATE +12025550143", "Calls to United States and Canada (+12025550143) cost 0.05 USD per minute."),
        ("RATE", "Send RATE followed by one number, e.g. RATE +447700900123."),
        ("HELP", "CB: call me back."),
        ("FOO", 'Unknown command "FOO".'),
    ]:
        output = exchange(ports, directory, sender, text)
        assert f"<1234000000 +{sender} text {reply}" in output, (text, output[-1500:])
