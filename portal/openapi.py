"""GET /api/openapi.json: the OpenAPI 3 description of the JSON API.

Built from small helpers so every operation states the same things the same way: who may call it,
its parameters and body, its answer, and the problems (application/problem+json) it may give.
"""

from __future__ import annotations

import falcon

PROBLEM_JSON = "application/problem+json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _page_of(name: str) -> dict:
    return {
        "allOf": [_ref("Page"), {"type": "object", "properties": {"items": {"type": "array", "items": _ref(name)}}}]
    }


_ERRORS = {
    "400": "Invalid input: a field, parameter or rule is not met (the detail says which)",
    "401": "Not signed in, or the bearer token is unknown, expired or revoked",
    "403": "Not allowed: administrators only, a wrong password, or a missing form token (X-CSRF-Token)",
    "404": "No such record (or not one of yours)",
    "409": "Conflict with what exists: already there, in use, or a limit reached",
    "415": "The body is not of the media type required",
    "429": "Too many failed sign-ins: locked for a while (see Retry-After)",
}


def _problems(*codes: str) -> dict:
    responses = {
        code: {"description": _ERRORS[code], "content": {PROBLEM_JSON: {"schema": _ref("Problem")}}} for code in codes
    }
    responses["default"] = {"description": "Another problem", "content": {PROBLEM_JSON: {"schema": _ref("Problem")}}}
    return responses


def _query(name: str, description: str, schema: dict | None = None, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


PAGE_PARAMETERS = [
    _query("page", "page number, from 1", {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1}),
    _query("per_page", "items per page", {"type": "integer", "minimum": 1, "maximum": 200}),
]
CALL_FILTERS = [
    _query(
        "from",
        "calls requested from this date or time (UTC unless it says otherwise)",
        {"type": "string", "format": "date"},
    ),
    _query("to", "calls requested up to this date (included) or time (excluded)", {"type": "string", "format": "date"}),
    _query("kind", "how the callback was asked for", {"type": "string", "enum": ["access", "web", "sms"]}),
    _query(
        "number", "the start of a number one of its legs called", {"type": "string", "pattern": "^\\+?[0-9]{1,15}$"}
    ),
]


def operation(
    summary: str,
    operation_id: str,
    tag: str,
    *,
    ok: tuple[str, dict | None, str] = ("200", None, "Done"),
    body: dict | None = None,
    body_type: str = "application/json",
    parameters: list | None = None,
    errors: tuple[str, ...] = ("401", "403"),
    public: bool = False,
    content_type: str = "application/json",
) -> dict:
    status, schema, description = ok
    answer: dict = {"description": description}
    if schema is not None:
        answer["content"] = {content_type: {"schema": schema}}
    found = {
        "summary": summary,
        "operationId": operation_id,
        "tags": [tag],
        "responses": {status: answer} | _problems(*errors),
    }
    if parameters:
        found["parameters"] = parameters
    if body is not None:
        found["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    if public:
        found["security"] = []
    return found


# --- schemas --------------------------------------------------------------------------------------

MONEY = {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2,6}$", "description": "decimal amount", "example": "10.00"}
MONEY_IN = {"type": "string", "pattern": "^-?[0-9]{1,12}(\\.[0-9]{1,6})?$", "example": "10.00"}
MOMENT = {"type": "string", "format": "date-time"}
NULLABLE_MOMENT = {"type": "string", "format": "date-time", "nullable": True}
NUMBER_IN = {"type": "string", "minLength": 1, "maxLength": 32, "example": "+447700900123"}


def _object(properties: dict, required: list[str] | None = None, closed: bool = False) -> dict:
    found: dict = {"type": "object", "properties": properties}
    if required:
        found["required"] = required
    if closed:
        found["additionalProperties"] = False
    return found


def _nullable(schema: dict) -> dict:
    return schema | {"nullable": True}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}

LEG = _object(
    {
        "role": {"type": "string", "enum": ["A", "B"]},
        "sequence": INTEGER,
        "number": STRING,
        "status": STRING,
        "answered_at": NULLABLE_MOMENT,
        "ended_at": NULLABLE_MOMENT,
        "duration_seconds": _nullable(INTEGER),
        "billed_seconds": _nullable(INTEGER),
        "destination": _nullable(STRING),
        "price_per_minute": _nullable(MONEY),
        "cost": _nullable(MONEY),
        "currency": _nullable(STRING),
    },
    ["role", "number", "status", "cost"],
)
CALL = _object(
    {
        "id": STRING,
        "kind": {"type": "string", "enum": ["access", "web", "sms"]},
        "state": STRING,
        "requested_at": MOMENT,
        "started_at": NULLABLE_MOMENT,
        "ended_at": NULLABLE_MOMENT,
        "end_reason": _nullable(STRING),
        "caller_number": STRING,
        "destination_number": _nullable(STRING),
        "legs": {"type": "array", "items": _ref("Leg")},
        "cost": MONEY,
        "currency": _nullable(STRING),
    },
    ["id", "kind", "state", "requested_at", "legs", "cost"],
)
ACCOUNT_SETTINGS = {
    "tariff": _nullable({"type": "string", "maxLength": 64}),
    "callback_tariff": _nullable({"type": "string", "maxLength": 64}),
    "credit_limit": MONEY_IN,
    "language": {"type": "string", "maxLength": 8, "example": "en"},
    "country_code": _nullable({"type": "string", "maxLength": 3, "example": "44"}),
    "max_concurrent_calls": {"type": "integer", "minimum": 0, "maximum": 1000},
    "max_caller_ids": {"type": "integer", "minimum": 0, "maximum": 1000},
    "show_b_to_a": {"type": "boolean", "description": "caller ID: leg A is shown B's number (else ours)"},
    "show_a_to_b": {"type": "boolean", "description": "caller ID: leg B is shown A's number (else ours)"},
}
ACCOUNT_SECRETS = {
    "password": {"type": "string", "maxLength": 1024, "writeOnly": True},
    "pin": {"type": "string", "maxLength": 32, "writeOnly": True, "example": "86420"},
}
GATEWAY_SETTINGS = {
    "uri": {"type": "string", "maxLength": 255, "example": "sip:192.0.2.10:5060"},
    "trusted_source": _nullable({"type": "string", "maxLength": 64, "example": "192.0.2.10"}),
    "priority": {"type": "integer", "minimum": 0, "maximum": 1000},
    "strip_digits": {"type": "integer", "minimum": 0, "maximum": 15},
    "add_prefix": {"type": "string", "maxLength": 16},
    "number_format": {"type": "string", "enum": ["e164", "plus_e164", "national"]},
    "country_code": _nullable({"type": "string", "maxLength": 3}),
    "sms_egress": {"type": "string", "enum": ["sip", "kannel"]},
    "kannel_sendsms_url": _nullable({"type": "string", "maxLength": 255, "writeOnly": True}),
    "enabled": BOOLEAN,
}
ACCESS_NUMBER_SETTINGS = {
    "label": {"type": "string", "maxLength": 100},
    "enabled": BOOLEAN,
    "language": {"type": "string", "maxLength": 8},
    "ring_time_seconds": {"type": "integer", "minimum": 1, "maximum": 60},
    "callback_delay_seconds": {"type": "integer", "minimum": 0, "maximum": 60},
    "allow_pin": BOOLEAN,
    "allow_ani": BOOLEAN,
    "known_callers_only": BOOLEAN,
    "save_caller_id_on_pin": BOOLEAN,
    "announce_balance": BOOLEAN,
    "retry_attempts": {"type": "integer", "minimum": 0, "maximum": 10},
    "retry_interval_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
}
RATE = {
    "number": STRING,
    "prefix": STRING,
    "destination": STRING,
    "currency": STRING,
    "price_per_minute": MONEY,
    "connect_fee": MONEY,
    "initial_increment": INTEGER,
    "subsequent_increment": INTEGER,
    "minimum_duration": INTEGER,
    "grace_seconds": INTEGER,
    "effective_from": NULLABLE_MOMENT,
}

SCHEMAS = {
    "Problem": _object(
        {
            "type": STRING,
            "title": STRING,
            "status": INTEGER,
            "detail": STRING,
            "code": {"type": "string", "description": "why, for programs (a refused callback: its reason)"},
        },
        ["type", "title", "status", "detail"],
    ),
    "Page": _object(
        {
            "items": {"type": "array", "items": {}},
            "page": INTEGER,
            "per_page": INTEGER,
            "total": INTEGER,
            "next": _nullable({"type": "string", "description": "the next page's address, null on the last"}),
        },
        ["items", "page", "per_page", "total", "next"],
    ),
    "Health": _object(
        {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": {"type": "string", "enum": ["ok", "unreachable"]},
        },
        ["status", "database"],
    ),
    "SignIn": _object(
        {"login": {"type": "string", "maxLength": 128}, "password": {"type": "string", "maxLength": 1024}},
        ["login", "password"],
        closed=True,
    ),
    "Principal": _object(
        {
            "login": STRING,
            "role": {"type": "string", "enum": ["customer", "admin"]},
            "via": {"type": "string", "enum": ["session", "token"]},
            "csrf_token": {"type": "string", "description": "send as X-CSRF-Token with cookie-authenticated changes"},
        },
        ["login", "role", "via", "csrf_token"],
    ),
    "PasswordChange": _object(
        {
            "current_password": {"type": "string", "maxLength": 1024},
            "new_password": {"type": "string", "maxLength": 1024},
        },
        ["current_password", "new_password"],
        closed=True,
    ),
    "PinChange": _object(
        {"password": {"type": "string", "maxLength": 1024}, "pin": {"type": "string", "maxLength": 32}},
        ["password", "pin"],
        closed=True,
    ),
    "TokenRequest": _object(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650},
        },
        ["name"],
        closed=True,
    ),
    "Token": _object(
        {
            "id": INTEGER,
            "name": STRING,
            "hint": STRING,
            "created_at": MOMENT,
            "last_used_at": NULLABLE_MOMENT,
            "expires_at": NULLABLE_MOMENT,
        },
        ["id", "name", "hint", "created_at"],
    ),
    "NewToken": {
        "allOf": [
            _ref("Token"),
            _object({"token": {"type": "string", "description": "shown this once only"}}, ["token"]),
        ]
    },
    "Dashboard": _object(
        {
            "login": STRING,
            "role": STRING,
            "status": STRING,
            "currency": STRING,
            "balance": MONEY,
            "credit_limit": MONEY,
            "reserved": MONEY,
            "available_credit": MONEY,
            "active_calls": INTEGER,
            "language": STRING,
            "caller_ids": INTEGER,
            "max_caller_ids": INTEGER,
            "has_pin": BOOLEAN,
            "recent_calls": {"type": "array", "items": _ref("Call")},
        },
        ["login", "currency", "balance", "credit_limit", "available_credit", "recent_calls"],
    ),
    "CallerIdRequest": _object({"number": NUMBER_IN}, ["number"], closed=True),
    "CallerId": _object(
        {"number": STRING, "origin": {"type": "string", "enum": ["manual", "pin", "sms"]}, "created_at": MOMENT},
        ["number", "origin", "created_at"],
    ),
    "Leg": LEG,
    "Call": CALL,
    "LiveCall": {"allOf": [_ref("Call"), _object({"account": _nullable(STRING)})]},
    "LedgerEntry": _object(
        {
            "id": INTEGER,
            "kind": {"type": "string", "enum": ["topup", "charge", "refund", "adjustment"]},
            "amount": MONEY,
            "balance_after": MONEY,
            "reference": STRING,
            "description": STRING,
            "created_by": STRING,
            "created_at": MOMENT,
            "account": {"type": "string", "description": "in the administrators' lists"},
        },
        ["id", "kind", "amount", "balance_after", "reference", "created_at"],
    ),
    "RateQuote": _object(
        RATE | {"cost_of_one_minute": MONEY, "max_call_seconds": INTEGER},
        ["number", "prefix", "destination", "price_per_minute", "max_call_seconds"],
    ),
    "TariffRate": _object(
        RATE | {"tariff": STRING, "billed_seconds": INTEGER, "cost": MONEY, "max_call_seconds": INTEGER},
        ["number", "tariff", "prefix", "destination", "price_per_minute"],
    ),
    "Account": _object(
        {
            "login": STRING,
            "role": {"type": "string", "enum": ["customer", "admin"]},
            "status": {"type": "string", "enum": ["active", "suspended", "closed"]},
            "currency": STRING,
            "balance": MONEY,
            "credit_limit": MONEY,
            "language": STRING,
            "country_code": _nullable(STRING),
            "tariff": _nullable(STRING),
            "callback_tariff": _nullable(STRING),
            "max_concurrent_calls": INTEGER,
            "max_caller_ids": INTEGER,
            "show_b_to_a": BOOLEAN,
            "show_a_to_b": BOOLEAN,
            "can_sign_in": BOOLEAN,
            "has_pin": BOOLEAN,
            "created_at": MOMENT,
        },
        ["login", "role", "status", "currency", "balance", "credit_limit"],
    ),
    "AccountCreate": _object(
        {
            "login": {"type": "string", "maxLength": 64, "example": "alice"},
            "currency": {"type": "string", "maxLength": 3, "example": "USD"},
            "role": {"type": "string", "enum": ["customer", "admin"]},
        }
        | ACCOUNT_SETTINGS
        | ACCOUNT_SECRETS,
        ["login", "currency"],
        closed=True,
    ),
    "AccountChange": _object(
        {"status": {"type": "string", "enum": ["active", "suspended", "closed"]}} | ACCOUNT_SETTINGS | ACCOUNT_SECRETS,
        closed=True,
    ),
    "Posting": _object(
        {
            "kind": {"type": "string", "enum": ["topup", "adjustment"]},
            "amount": MONEY_IN,
            "reason": {"type": "string", "maxLength": 255, "description": "recorded in the ledger"},
            "reference": {
                "type": "string",
                "maxLength": 128,
                "description": "posting a reference again changes nothing",
            },
        },
        ["kind", "amount", "reason"],
        closed=True,
    ),
    "Tariff": _object(
        {"name": STRING, "currency": STRING, "description": STRING, "rates": INTEGER, "created_at": MOMENT},
        ["name", "currency", "rates"],
    ),
    "TariffCreate": _object(
        {
            "name": {"type": "string", "maxLength": 64},
            "currency": {"type": "string", "maxLength": 3},
            "description": {"type": "string", "maxLength": 255},
        },
        ["name", "currency"],
        closed=True,
    ),
    "ImportResult": _object({"added": INTEGER, "replaced": INTEGER}, ["added", "replaced"]),
    "Gateway": _object(
        {name: schema for name, schema in GATEWAY_SETTINGS.items() if name != "kannel_sendsms_url"}
        | {"name": STRING, "kannel_sendsms_url_set": BOOLEAN, "created_at": MOMENT},
        ["name", "uri", "priority", "enabled"],
    ),
    "GatewayCreate": _object(
        {"name": {"type": "string", "maxLength": 64}} | GATEWAY_SETTINGS, ["name", "uri"], closed=True
    ),
    "GatewayChange": _object(GATEWAY_SETTINGS, closed=True),
    "AccessNumber": _object({"number": STRING} | ACCESS_NUMBER_SETTINGS, ["number", "enabled"]),
    "AccessNumberCreate": _object(
        {"number": {"type": "string", "maxLength": 15, "example": "442071234567"}} | ACCESS_NUMBER_SETTINGS,
        ["number"],
        closed=True,
    ),
    "AccessNumberChange": _object(ACCESS_NUMBER_SETTINGS, closed=True),
    "Sms": _object(
        {
            "id": INTEGER,
            "direction": {"type": "string", "enum": ["inbound", "outbound"]},
            "channel": {"type": "string", "enum": ["sip", "kannel", "webhook"]},
            "sender": STRING,
            "receiver": STRING,
            "text": {"type": "string", "description": "a PIN in a REG command is shown as ****"},
            "status": STRING,
            "in_reply_to": _nullable(INTEGER),
            "created_at": MOMENT,
        },
        ["id", "direction", "channel", "sender", "receiver", "text", "status"],
    ),
}

LOGIN = _path("login", "the account's login")
WRITE = ("400", "401", "403", "404", "409", "415")

PATHS = {
    "/api/health": {
        "get": operation(
            "Service health",
            "getHealth",
            "service",
            ok=("200", _ref("Health"), "The portal and its database are up"),
            errors=(),
            public=True,
        )
    },
    "/api/session": {
        "get": operation("Who is signed in", "getSession", "sign-in", ok=("200", _ref("Principal"), "The principal")),
        "post": operation(
            "Sign in: sets the session cookie (HttpOnly, SameSite=Lax)",
            "signIn",
            "sign-in",
            ok=("201", _ref("Principal"), "Signed in"),
            body=_ref("SignIn"),
            errors=("400", "401", "403", "415", "429"),
            public=True,
        ),
        "delete": operation(
            "Sign out", "signOut", "sign-in", ok=("204", None, "Signed out"), errors=("400", "401", "403")
        ),
    },
    "/api/tokens": {
        "get": operation(
            "Your API tokens",
            "listTokens",
            "sign-in",
            ok=("200", _page_of("Token"), "A page of tokens"),
            parameters=PAGE_PARAMETERS,
            errors=("400", "401"),
        ),
        "post": operation(
            "Make an API token (shown once)",
            "createToken",
            "sign-in",
            ok=("201", _ref("NewToken"), "The new token"),
            body=_ref("TokenRequest"),
            errors=("400", "401", "403", "409", "415"),
        ),
    },
    "/api/tokens/{token_id}": {
        "delete": operation(
            "Revoke one of your API tokens",
            "revokeToken",
            "sign-in",
            ok=("204", None, "Revoked"),
            parameters=[_path("token_id", "the token's id", {"type": "integer", "minimum": 1, "maximum": 2147483647})],
            errors=("401", "403", "404"),
        )
    },
    "/api/me": {
        "get": operation(
            "Dashboard: balance, available credit, recent calls",
            "getDashboard",
            "customer",
            ok=("200", _ref("Dashboard"), "Your account"),
        )
    },
    "/api/me/password": {
        "post": operation(
            "Change your password (other sessions end)",
            "changePassword",
            "customer",
            ok=("204", None, "Changed"),
            body=_ref("PasswordChange"),
            errors=("400", "401", "403", "415", "429"),
        )
    },
    "/api/me/pin": {
        "post": operation(
            "Set your PIN (confirmed with your password)",
            "changePin",
            "customer",
            ok=("204", None, "Set"),
            body=_ref("PinChange"),
            errors=("400", "401", "403", "409", "415", "429"),
        )
    },
    "/api/me/caller-ids": {
        "get": operation(
            "Your authorized caller IDs",
            "listCallerIds",
            "customer",
            ok=("200", _page_of("CallerId"), "A page of caller IDs"),
            parameters=PAGE_PARAMETERS,
            errors=("400", "401"),
        ),
        "post": operation(
            "Authorize a caller ID (international format; one account per number; a limit per account)",
            "addCallerId",
            "customer",
            ok=("201", _ref("CallerId"), "Added"),
            body=_ref("CallerIdRequest"),
            errors=WRITE,
        ),
    },
    "/api/me/caller-ids/{number}": {
        "delete": operation(
            "Remove a caller ID",
            "removeCallerId",
            "customer",
            ok=("204", None, "Removed"),
            parameters=[_path("number", "the number, e.g. +447700900123")],
            errors=("400", "401", "403", "404"),
        )
    },
    "/api/me/calls": {
        "get": operation(
            "Your call history, newest first, each leg with its cost",
            "listCalls",
            "customer",
            ok=("200", _page_of("Call"), "A page of calls"),
            parameters=PAGE_PARAMETERS + CALL_FILTERS,
            errors=("400", "401"),
        )
    },
    "/api/me/calls.csv": {
        "get": operation(
            "Your call history as CSV, one line per leg",
            "exportCalls",
            "customer",
            ok=("200", {"type": "string"}, "CSV"),
            parameters=CALL_FILTERS,
            errors=("400", "401"),
            content_type="text/csv",
        )
    },
    "/api/me/calls/{call_id}": {
        "get": operation(
            "One of your calls",
            "getCall",
            "customer",
            ok=("200", _ref("Call"), "The call"),
            parameters=[_path("call_id", "the call's id")],
            errors=("401", "404"),
        )
    },
    "/api/me/ledger": {
        "get": operation(
            "Your balance changes, newest first",
            "listMyLedger",
            "customer",
            ok=("200", _page_of("LedgerEntry"), "A page of entries"),
            parameters=PAGE_PARAMETERS,
            errors=("400", "401"),
        )
    },
    "/api/me/rate": {
        "get": operation(
            "What calling a number costs you, and how long your credit lasts there",
            "lookupMyRate",
            "customer",
            ok=("200", _ref("RateQuote"), "The rate"),
            parameters=[_query("number", "international format", {"type": "string", "maxLength": 32}, required=True)],
            errors=("400", "401", "404"),
        )
    },
    "/api/admin/accounts": {
        "get": operation(
            "Accounts",
            "listAccounts",
            "admin",
            ok=("200", _page_of("Account"), "A page of accounts"),
            parameters=PAGE_PARAMETERS
            + [
                _query("q", "the start of the login"),
                _query("status", "only this status", {"type": "string", "enum": ["active", "suspended", "closed"]}),
            ],
            errors=("400", "401", "403"),
        ),
        "post": operation(
            "Create an account",
            "createAccount",
            "admin",
            ok=("201", _ref("Account"), "Created"),
            body=_ref("AccountCreate"),
            errors=WRITE,
        ),
    },
    "/api/admin/accounts/{login}": {
        "get": operation(
            "An account",
            "getAccount",
            "admin",
            ok=("200", _ref("Account"), "The account"),
            parameters=[LOGIN],
            errors=("401", "403", "404"),
        ),
        "patch": operation(
            "Change an account: status (suspend, activate), settings, password, PIN",
            "changeAccount",
            "admin",
            ok=("200", _ref("Account"), "Changed"),
            parameters=[LOGIN],
            body=_ref("AccountChange"),
            errors=WRITE,
        ),
    },
    "/api/admin/accounts/{login}/ledger": {
        "get": operation(
            "An account's ledger",
            "listAccountLedger",
            "admin",
            ok=("200", _page_of("LedgerEntry"), "A page of entries"),
            parameters=[LOGIN] + PAGE_PARAMETERS,
            errors=("400", "401", "403", "404"),
        ),
        "post": operation(
            "Top up or adjust a balance, with a reason",
            "postToLedger",
            "admin",
            ok=("201", _ref("LedgerEntry"), "Posted"),
            parameters=[LOGIN],
            body=_ref("Posting"),
            errors=WRITE,
        ),
    },
    "/api/admin/accounts/{login}/caller-ids": {
        "get": operation(
            "An account's caller IDs",
            "listAccountCallerIds",
            "admin",
            ok=("200", _page_of("CallerId"), "A page"),
            parameters=[LOGIN] + PAGE_PARAMETERS,
            errors=("400", "401", "403", "404"),
        ),
        "post": operation(
            "Authorize a caller ID for an account",
            "addAccountCallerId",
            "admin",
            ok=("201", _ref("CallerId"), "Added"),
            parameters=[LOGIN],
            body=_ref("CallerIdRequest"),
            errors=WRITE,
        ),
    },
    "/api/admin/accounts/{login}/caller-ids/{number}": {
        "delete": operation(
            "Remove an account's caller ID",
            "removeAccountCallerId",
            "admin",
            ok=("204", None, "Removed"),
            parameters=[LOGIN, _path("number", "the number")],
            errors=("400", "401", "403", "404"),
        )
    },
    "/api/admin/accounts/{login}/calls": {
        "get": operation(
            "An account's call history",
            "listAccountCalls",
            "admin",
            ok=("200", _page_of("Call"), "A page of calls"),
            parameters=[LOGIN] + PAGE_PARAMETERS + CALL_FILTERS,
            errors=("400", "401", "403", "404"),
        )
    },
    "/api/admin/tariffs": {
        "get": operation(
            "Tariffs",
            "listTariffs",
            "admin",
            ok=("200", _page_of("Tariff"), "A page of tariffs"),
            parameters=PAGE_PARAMETERS,
            errors=("400", "401", "403"),
        ),
        "post": operation(
            "Create a tariff",
            "createTariff",
            "admin",
            ok=("201", _ref("Tariff"), "Created"),
            body=_ref("TariffCreate"),
            errors=WRITE,
        ),
    },
    "/api/admin/tariffs/{name}": {
        "get": operation(
            "A tariff",
            "getTariff",
            "admin",
            ok=("200", _ref("Tariff"), "The tariff"),
            parameters=[_path("name", "the tariff's name")],
            errors=("401", "403", "404"),
        )
    },
    "/api/admin/tariffs/{name}/rates.csv": {
        "get": operation(
            "Export a tariff's rates as CSV (the import format)",
            "exportRates",
            "admin",
            ok=("200", {"type": "string"}, "CSV"),
            parameters=[_path("name", "the tariff's name")],
            errors=("401", "403", "404"),
            content_type="text/csv",
        ),
        "put": operation(
            "Import rates from CSV: all or nothing; a known prefix and start replaces its rate",
            "importRates",
            "admin",
            ok=("200", _ref("ImportResult"), "Imported"),
            parameters=[_path("name", "the tariff's name")],
            body={"type": "string"},
            body_type="text/csv",
            errors=WRITE,
        ),
    },
    "/api/admin/tariffs/{name}/rate": {
        "get": operation(
            "The rate a tariff applies to a number",
            "lookupTariffRate",
            "admin",
            ok=("200", _ref("TariffRate"), "The rate"),
            parameters=[
                _path("name", "the tariff's name"),
                _query("number", "international format", {"type": "string", "maxLength": 32}, required=True),
                _query(
                    "seconds", "also the cost of a call this long", {"type": "integer", "minimum": 0, "maximum": 86400}
                ),
                _query("credit", "also the longest call this amount pays for", MONEY_IN),
            ],
            errors=("400", "401", "403", "404"),
        )
    },
    "/api/admin/gateways": {
        "get": operation(
            "Carrier gateways, by priority",
            "listGateways",
            "admin",
            ok=("200", _page_of("Gateway"), "A page of gateways"),
            parameters=PAGE_PARAMETERS,
            errors=("400", "401", "403"),
        ),
        "post": operation(
            "Add a gateway",
            "createGateway",
            "admin",
            ok=("201", _ref("Gateway"), "Added"),
            body=_ref("GatewayCreate"),
            errors=WRITE,
        ),
    },
    "/api/admin/gateways/{name}": {
        "get": operation(
            "A gateway",
            "getGateway",
            "admin",
            ok=("200", _ref("Gateway"), "The gateway"),
            parameters=[_path("name", "the gateway's name")],
            errors=("401", "403", "404"),
        ),
        "patch": operation(
            "Change a gateway (enable, disable, route)",
            "changeGateway",
            "admin",
            ok=("200", _ref("Gateway"), "Changed"),
            parameters=[_path("name", "the gateway's name")],
            body=_ref("GatewayChange"),
            errors=WRITE,
        ),
    },
    "/api/admin/access-numbers": {
        "get": operation(
            "Access numbers and their callback settings",
            "listAccessNumbers",
            "admin",
            ok=("200", _page_of("AccessNumber"), "A page"),
            parameters=PAGE_PARAMETERS,
            errors=("400", "401", "403"),
        ),
        "post": operation(
            "Add an access number",
            "createAccessNumber",
            "admin",
            ok=("201", _ref("AccessNumber"), "Added"),
            body=_ref("AccessNumberCreate"),
            errors=WRITE,
        ),
    },
    "/api/admin/access-numbers/{number}": {
        "get": operation(
            "An access number",
            "getAccessNumber",
            "admin",
            ok=("200", _ref("AccessNumber"), "The number"),
            parameters=[_path("number", "the access number")],
            errors=("401", "403", "404"),
        ),
        "patch": operation(
            "Change an access number's callback settings",
            "changeAccessNumber",
            "admin",
            ok=("200", _ref("AccessNumber"), "Changed"),
            parameters=[_path("number", "the access number")],
            body=_ref("AccessNumberChange"),
            errors=WRITE,
        ),
    },
    "/api/admin/calls": {
        "get": operation(
            "Live calls: callbacks not ended (read only)",
            "listLiveCalls",
            "admin",
            ok=("200", _page_of("LiveCall"), "A page of calls"),
            parameters=PAGE_PARAMETERS,
            errors=("400", "401", "403"),
        )
    },
    "/api/admin/sms": {
        "get": operation(
            "The SMS log, newest first",
            "listSms",
            "admin",
            ok=("200", _page_of("Sms"), "A page of texts"),
            parameters=PAGE_PARAMETERS
            + [
                _query("direction", "only this direction", {"type": "string", "enum": ["inbound", "outbound"]}),
                _query("number", "sent by or to this number"),
            ],
            errors=("400", "401", "403"),
        )
    },
    "/api/admin/ledger": {
        "get": operation(
            "Every balance change, newest first",
            "listLedger",
            "admin",
            ok=("200", _page_of("LedgerEntry"), "A page of entries"),
            parameters=PAGE_PARAMETERS
            + [
                _query("account", "only this account's (login)"),
                _query(
                    "kind", "only this kind", {"type": "string", "enum": ["topup", "charge", "refund", "adjustment"]}
                ),
            ],
            errors=("400", "401", "403"),
        )
    },
}
PATHS["/api/health"]["get"]["responses"]["503"] = {
    "description": "The database cannot be reached",
    "content": {"application/json": {"schema": _ref("Health")}},
}
# A posting whose reference was used before for the same entry changes nothing: 200 with that entry.
PATHS["/api/admin/accounts/{login}/ledger"]["post"]["responses"] = {
    "201": {"description": "Posted", "content": {"application/json": {"schema": _ref("LedgerEntry")}}},
    "200": {
        "description": "Already posted with this reference",
        "content": {"application/json": {"schema": _ref("LedgerEntry")}},
    },
} | _problems(*WRITE)

# --- web callbacks and SMS over HTTP --------------------------------------------------------------

_ERRORS["422"] = "A number that is not one, or may not be called"
SCHEMAS["WebCallbackLeg"] = _object(
    {
        "leg": {"type": "string", "enum": ["A", "B"]},
        "number": STRING,
        "status": {
            "type": "string",
            "enum": ["queued", "dialing", "ringing", "answered", "busy", "no_answer", "failed", "cancelled", "ended"],
        },
        "sip_code": _nullable({"type": "integer"}),
        "answered_at": NULLABLE_MOMENT,
        "ended_at": NULLABLE_MOMENT,
        "hangup_by": _nullable(STRING),
        "duration_seconds": _nullable({"type": "integer"}),
        "cost": _nullable(MONEY),
        "currency": _nullable(STRING),
    },
    ["leg", "number", "status"],
)
SCHEMAS["WebCallback"] = _object(
    {
        "id": STRING,
        "a": STRING,
        "b": STRING,
        "state": STRING,
        "requested_at": MOMENT,
        "ended_at": NULLABLE_MOMENT,
        "end_reason": _nullable(STRING),
        "legs": {"type": "array", "items": _ref("WebCallbackLeg")},
        "total_cost": _nullable(MONEY),
    },
    ["id", "a", "b", "state", "legs"],
)
SCHEMAS["SmsDelivery"] = _object(
    {"gateway": STRING, "sender": NUMBER_IN, "receiver": NUMBER_IN, "text": {"type": "string", "maxLength": 1600},
     "id": {"type": "string", "minLength": 1, "maxLength": 128}},
    ["gateway", "sender", "receiver", "text", "id"],
)  # fmt: skip
SCHEMAS["SmsAccepted"] = _object({"id": {"type": "integer"}, "duplicate": {"type": "boolean"}}, ["id", "duplicate"])
_CALLBACK_ID = _path("callback_id", "the web callback's id")
PATHS["/api/callbacks"] = {
    "post": operation(
        "Call A, then B, and connect them (refused before anything is dialled when it cannot be paid for)",
        "startWebCallback",
        "customer",
        ok=("201", _ref("WebCallback"), "Queued: A is called at once"),
        body=_object({"a": NUMBER_IN, "b": NUMBER_IN}, ["a", "b"]),
        errors=("400", "401", "403", "409", "422"),
    )
}
PATHS["/api/callbacks/{callback_id}"] = {
    "get": operation(
        "A web callback: its state, and each leg's status, times and cost",
        "getWebCallback",
        "customer",
        ok=("200", _ref("WebCallback"), "The callback"),
        parameters=[_CALLBACK_ID],
        errors=("401", "404"),
    ),
    "delete": operation(
        "Stop a web callback: hangs up whatever is up",
        "cancelWebCallback",
        "customer",
        ok=("202", _object({"id": STRING, "cancelling": {"type": "boolean"}}), "Being stopped"),
        parameters=[_CALLBACK_ID],
        errors=("401", "403", "404", "409"),
    ),
}
PATHS["/api/callbacks/{callback_id}/events"] = {
    "get": operation(
        "Server-Sent Events: each leg's statuses from the first (or after Last-Event-ID), then live; `end` last",
        "followWebCallback",
        "customer",
        ok=("200", {"type": "string"}, "An event stream"),
        parameters=[
            _CALLBACK_ID,
            _query("max_seconds", "end the stream sooner", {"type": "integer", "minimum": 1, "maximum": 14400}),
        ],
        errors=("401", "404"),
        content_type="text/event-stream",
    )
}
PATHS["/api/admin/calls/{callback_id}"] = {
    "delete": operation(
        "Hang up a live call (whatever is up of it)",
        "hangUpCall",
        "admin",
        ok=("202", _object({"id": STRING, "hanging_up": {"type": "boolean"}}), "Being hung up"),
        parameters=[_path("callback_id", "the callback's id")],
        errors=("401", "403", "404"),
    )
}
PATHS["/api/sms/inbound"] = {
    "post": operation(
        "A text delivered by a trusted SMS gateway (by its name and address); answered by SMS",
        "deliverSms",
        "service",
        ok=("202", _ref("SmsAccepted"), "Stored (once, however often delivered)"),
        body=_ref("SmsDelivery"),
        errors=("400", "403", "404"),
        public=True,
    )
}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "Boomerang callback platform API",
        "version": "1.0.0",
        "description": "Sign in with POST /api/session (a cookie; send its csrf_token as X-CSRF-Token with changes) "
        "or use a bearer token from POST /api/tokens. Errors are application/problem+json. Lists are paged with "
        "page and per_page. Money is a decimal string.",
    },
    "security": [{"bearerAuth": []}, {"cookieAuth": []}],
    "tags": [{"name": name} for name in ("service", "sign-in", "customer", "admin")],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "boomerang_session"},
        },
        "schemas": SCHEMAS,
    },
}


class OpenApiDocument:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = DOCUMENT
