"""`boomerang account ...` and `boomerang callerid ...`."""

from __future__ import annotations

from boomerang import provisioning
from boomerang.cli.context import CommandContext
from boomerang.store.models import AccountStatus, Role


def register(groups) -> None:
    account = groups.add_parser("account", help="customer and admin accounts").add_subparsers(
        dest="command", metavar="ACTION", required=True
    )
    create = account.add_parser("create", help="create an account")
    create.add_argument("login")
    create.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    create.add_argument("--tariff", help="tariff for destinations")
    create.add_argument("--callback-tariff", help="tariff for the leg calling the customer (default: --tariff)")
    create.add_argument("--credit-limit", default="0", help="how far the balance may go below zero")
    create.add_argument("--language", default="en")
    create.add_argument("--country-code", help="country calling code for national numbers, e.g. 44")
    create.add_argument("--max-calls", type=int, default=2, help="concurrent calls allowed")
    create.add_argument("--admin", action="store_true", help="an administrator instead of a customer")
    create.set_defaults(handler=create_account)

    for name, status, text in (
        ("suspend", AccountStatus.SUSPENDED, "stop an account from calling and signing in"),
        ("activate", AccountStatus.ACTIVE, "allow a suspended account again"),
    ):
        action = account.add_parser(name, help=text)
        action.add_argument("login")
        action.set_defaults(handler=set_status, status=status)

    password = account.add_parser("set-password", help="set the portal password (read from stdin or a prompt)")
    password.add_argument("login")
    password.set_defaults(handler=set_password)
    pin = account.add_parser("set-pin", help="set the callback PIN (read from stdin or a prompt)")
    pin.add_argument("login")
    pin.set_defaults(handler=set_pin)

    topup = account.add_parser("topup", help="add credit (a ledger entry)")
    topup.add_argument("login")
    topup.add_argument("amount", help="in the account's currency, e.g. 10.00")
    topup.add_argument("--reference", help="unique reference: repeating it tops up once")
    topup.add_argument("--note", default="", help="description kept in the ledger")
    topup.set_defaults(handler=top_up)

    show = account.add_parser("show", help="an account's settings and balance")
    show.add_argument("login")
    show.set_defaults(handler=show_account)
    account.add_parser("list", help="all accounts").set_defaults(handler=list_accounts)

    callerid = groups.add_parser("callerid", help="authorized caller IDs (callers known without a PIN)")
    callerids = callerid.add_subparsers(dest="command", metavar="ACTION", required=True)
    add = callerids.add_parser("add", help="authorize a number for an account")
    add.add_argument("login")
    add.add_argument("number", help="international format, e.g. +447700900123")
    add.set_defaults(handler=add_caller_id)
    remove = callerids.add_parser("remove", help="remove an authorized number")
    remove.add_argument("number")
    remove.set_defaults(handler=remove_caller_id)
    listing = callerids.add_parser("list", help="an account's authorized numbers")
    listing.add_argument("login")
    listing.set_defaults(handler=list_caller_ids)


def create_account(args, ctx: CommandContext) -> int:
    spec = provisioning.AccountSpec(
        login=args.login,
        currency=args.currency,
        role=Role.ADMIN if args.admin else Role.CUSTOMER,
        tariff=args.tariff,
        callback_tariff=args.callback_tariff,
        credit_limit=provisioning.parse_amount(args.credit_limit),
        language=args.language,
        country_code=args.country_code,
        max_concurrent_calls=args.max_calls,
    )
    with ctx.transaction() as session:
        account = provisioning.create_account(session, spec)
        print(f"account {account.login} created (id {account.id})", file=ctx.out)
    return 0


def set_status(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        provisioning.set_status(session, args.login, args.status)
    print(f"account {args.login} is {args.status.value}", file=ctx.out)
    return 0


def set_password(args, ctx: CommandContext) -> int:
    password = ctx.read_secret("New password: ")
    with ctx.transaction() as session:
        provisioning.set_password(session, args.login, password)
    print(f"password of {args.login} set", file=ctx.out)
    return 0


def set_pin(args, ctx: CommandContext) -> int:
    pin = ctx.read_secret("New PIN: ")
    with ctx.transaction() as session:
        provisioning.set_pin(session, ctx.settings.secret_key(), args.login, pin)
    print(f"PIN of {args.login} set", file=ctx.out)
    return 0


def top_up(args, ctx: CommandContext) -> int:
    amount = provisioning.parse_amount(args.amount)
    with ctx.transaction() as session:
        posting = provisioning.top_up(session, args.login, amount, args.reference, args.note, by="cli")
        entry = posting.entry
    if posting.created:
        print(f"topped up {entry.amount} (reference {entry.reference}); balance {entry.balance_after}", file=ctx.out)
    else:
        print(f"reference {entry.reference} was already applied; nothing changed", file=ctx.out)
    return 0


def show_account(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        account = provisioning.get_account(session, args.login)
        fields = {
            "login": account.login,
            "role": account.role.value,
            "status": account.status.value,
            "currency": account.currency,
            "balance": account.balance,
            "credit_limit": account.credit_limit,
            "tariff": account.tariff.name if account.tariff else "",
            "callback_tariff": account.callback_tariff.name if account.callback_tariff else "",
            "language": account.language,
            "country_code": account.country_code or "",
            "max_concurrent_calls": account.max_concurrent_calls,
            "pin": "set" if account.pin_digest else "not set",
            "password": "set" if account.password_hash else "not set",
            "caller_ids": " ".join(f"+{c.number}" for c in account.caller_ids),
        }
    for name, value in fields.items():
        print(f"{name}\t{value}", file=ctx.out)
    return 0


def list_accounts(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        accounts = provisioning.accounts(session)
        rows = [[a.login, a.role.value, a.status.value, a.currency, a.balance, a.credit_limit] for a in accounts]
    ctx.table(["login", "role", "status", "currency", "balance", "credit_limit"], rows)
    return 0


def add_caller_id(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        caller_id = provisioning.add_caller_id(session, args.login, args.number)
    print(f"+{caller_id.number} authorized for {args.login}", file=ctx.out)
    return 0


def remove_caller_id(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        caller_id = provisioning.remove_caller_id(session, args.number)
    print(f"+{caller_id.number} removed", file=ctx.out)
    return 0


def list_caller_ids(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        rows = [
            [f"+{c.number}", c.origin.value, c.created_at.isoformat()]
            for c in provisioning.caller_ids(session, args.login)
        ]
    ctx.table(["number", "origin", "added"], rows)
    return 0
