"""Demo data, loaded by `make run` into an empty database. For trying the platform, not for production:
the demo logins have well-known passwords."""

from __future__ import annotations

import ipaddress
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from boomerang import provisioning
from boomerang.settings import Settings
from boomerang.store.models import Account, Role

DEMO_RATES_CSV = """prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment
44,United Kingdom,0.10,0,60,60
1,United States and Canada,0.05,0,30,6
"""


def is_empty(session: Session) -> bool:
    return session.execute(select(Account.id).limit(1)).first() is None


def load(session: Session, settings: Settings) -> None:
    """Create the demo tariff, accounts, access number and carrier gateway (database must be empty)."""
    provisioning.create_tariff(session, "demo", "USD", "Demo tariff: UK and US/Canada only")
    provisioning.import_rates(session, "demo", DEMO_RATES_CSV)

    provisioning.create_account(session, provisioning.AccountSpec(login="demo", currency="USD", tariff="demo"))
    provisioning.set_password(session, "demo", "demo")
    provisioning.set_pin(session, settings.secret_key(), "demo", "4321")
    provisioning.top_up(session, "demo", Decimal("10.00"), reference="demo:initial-credit", note="demo credit")

    provisioning.create_account(session, provisioning.AccountSpec(login="admin", currency="USD", role=Role.ADMIN))
    provisioning.set_password(session, "admin", "admin")

    provisioning.add_access_number(
        session, provisioning.AccessNumberSpec(number=settings.numbers_access_number, label="Demo access number")
    )
    # The carrier is trusted by the address its URI names (127.0.0.1 with the default settings).
    uri = settings.carrier_default_gateway
    host = uri.split(":", 1)[1].rsplit("@", 1)[-1].split(";", 1)[0].rsplit(":", 1)[0].strip("[]")
    try:
        trusted_source = str(ipaddress.ip_address(host))
    except ValueError:
        trusted_source = None  # a host name: trust must be set by address with the CLI
    provisioning.add_gateway(session, provisioning.GatewaySpec(name="carrier", uri=uri, trusted_source=trusted_source))
