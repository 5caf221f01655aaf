"""`boomerang gateway ...` and `boomerang access-number ...`."""

from __future__ import annotations

from boomerang import provisioning
from boomerang.cli.context import CommandContext
from boomerang.store.models import NumberFormat, SmsEgress


def register(groups) -> None:
    gateway = groups.add_parser("gateway", help="carrier gateways").add_subparsers(
        dest="command", metavar="ACTION", required=True
    )
    add = gateway.add_parser("add", help="add a carrier gateway")
    add.add_argument("name")
    add.add_argument("uri", help="SIP URI, e.g. sip:192.0.2.10:5060")
    add.add_argument("--trusted-source", help="IP address or network whose requests are trusted")
    add.add_argument("--priority", type=int, default=10, help="lower is tried first")
    add.add_argument("--strip", type=int, default=0, help="digits removed from the dialled number")
    add.add_argument("--prefix", default="", help="digits put in front of the dialled number")
    add.add_argument("--format", choices=[f.value for f in NumberFormat], default=NumberFormat.E164.value)
    add.add_argument("--country-code", help="the gateway's country, for --format national")
    add.add_argument("--sms-egress", choices=[e.value for e in SmsEgress], default=SmsEgress.SIP.value,
                     help="how SMS replies leave through it: SIP MESSAGE, or Kannel's sendsms")  # fmt: skip
    add.add_argument("--kannel-sendsms-url", help="for --sms-egress kannel: the sendsms URL with username and password")
    add.set_defaults(handler=add_gateway)
    gateway.add_parser("list", help="all gateways").set_defaults(handler=list_gateways)

    access = groups.add_parser("access-number", help="numbers callers dial to be called back")
    numbers = access.add_subparsers(dest="command", metavar="ACTION", required=True)
    add = numbers.add_parser("add", help="add an access number")
    add.add_argument("number")
    add.add_argument("--label", default="")
    add.add_argument("--language", default="en")
    add.add_argument("--ring-time", type=int, default=5, help="seconds of ringing before the busy reject")
    add.add_argument("--callback-delay", type=int, default=3, help="seconds from reject to callback (3-6)")
    add.add_argument("--no-pin", action="store_true", help="never ask for a PIN (known caller IDs only)")
    add.add_argument("--no-ani", action="store_true", help="always ask for the PIN, even from known numbers")
    add.add_argument("--known-callers-only", action="store_true", help="ignore calls from unknown numbers")
    add.add_argument("--no-save-caller-id", action="store_true", help="a correct PIN does not save the number")
    add.add_argument("--no-balance", action="store_true", help="do not announce the balance")
    add.add_argument("--retries", type=int, default=0, help="calls back again this many times when unanswered (0-5)")
    add.add_argument("--retry-interval", type=int, default=30, help="seconds between those calls (5-3600)")
    add.set_defaults(handler=add_access_number)
    numbers.add_parser("list", help="all access numbers").set_defaults(handler=list_access_numbers)


def add_gateway(args, ctx: CommandContext) -> int:
    spec = provisioning.GatewaySpec(
        name=args.name,
        uri=args.uri,
        trusted_source=args.trusted_source,
        priority=args.priority,
        strip_digits=args.strip,
        add_prefix=args.prefix,
        number_format=NumberFormat(args.format),
        country_code=args.country_code,
        sms_egress=SmsEgress(args.sms_egress),
        kannel_sendsms_url=args.kannel_sendsms_url,
    )
    with ctx.transaction() as session:
        gateway = provisioning.add_gateway(session, spec)
    print(f"gateway {gateway.name} added", file=ctx.out)
    return 0


def list_gateways(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        rows = [
            [g.name, g.uri, g.trusted_source, g.priority, "yes" if g.enabled else "no", g.number_format.value]
            for g in provisioning.gateways(session)
        ]
    ctx.table(["name", "uri", "trusted_source", "priority", "enabled", "format"], rows)
    return 0


def add_access_number(args, ctx: CommandContext) -> int:
    spec = provisioning.AccessNumberSpec(
        number=args.number,
        label=args.label,
        language=args.language,
        ring_time_seconds=args.ring_time,
        callback_delay_seconds=args.callback_delay,
        allow_pin=not args.no_pin,
        allow_ani=not args.no_ani,
        known_callers_only=args.known_callers_only,
        save_caller_id_on_pin=not args.no_save_caller_id,
        announce_balance=not args.no_balance,
        retry_attempts=args.retries,
        retry_interval_seconds=args.retry_interval,
    )
    with ctx.transaction() as session:
        number = provisioning.add_access_number(session, spec)
    print(f"access number {number.number} added", file=ctx.out)
    return 0


def list_access_numbers(args, ctx: CommandContext) -> int:
    def flag(value: bool) -> str:
        return "yes" if value else "no"

    with ctx.transaction() as session:
        rows = [
            [
                n.number,
                n.label,
                n.ring_time_seconds,
                n.callback_delay_seconds,
                flag(n.allow_pin),
                flag(n.allow_ani),
                flag(n.known_callers_only),
                f"{n.retry_attempts} every {n.retry_interval_seconds}s" if n.retry_attempts else "no",
            ]
            for n in provisioning.access_numbers(session)
        ]
    ctx.table(["number", "label", "ring_time", "callback_delay", "pin", "ani", "known_only", "retries"], rows)
    return 0
