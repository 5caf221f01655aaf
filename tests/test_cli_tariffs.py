"""`boomerang tariff create|list|import|export`: rates CSV in and out, all or nothing.

Exit codes (boomerang/cli/main.py): 0 done, 2 invalid input or usage, 3 not found, 4 conflict.
"""

from __future__ import annotations

import functools
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from boomerang.store.models import Rate, RoundingMode, Tariff
from tests import clikit
from tests.clikit import ok, table

failed = functools.partial(clikit.failed, one_line=False)

HEADER = (
    "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment,"
    "minimum_duration,grace_seconds,rounding_mode,rounding_digits,effective_from\n"
)
TWO_RATES = "prefix,destination,price_per_minute\n44,United Kingdom,0.10\n1,United States,0.05\n"
TWO_RATES_EXPORTED = HEADER + "1,United States,0.05,0,60,60,0,0,up,4,\n44,United Kingdom,0.1,0,60,60,0,0,up,4,\n"

# Columns in another order and case, a byte order mark, a blank line, a quoted comma, optional
# cells left empty, rounding modes in any case, dates and offsets for effective_from.
RICH_CSV = (
    "\ufeffPrefix,Destination,Price_Per_Minute,Connect_Fee,Initial_Increment,Subsequent_Increment,"
    "Minimum_Duration,Grace_Seconds,Rounding_Mode,Rounding_Digits,Effective_From\n"
    "44,United Kingdom,0.10,0,60,60,0,0,up,4,\n"
    "\n"
    '4477,"United Kingdom, mobile",0.25,0.05,30,6,60,5,HALF_UP,2,\n'
    '4477,"United Kingdom, mobile",0.20,0.050,30,6,,,down,,2027-01-01\n'
    "1,United States,0.012345,,1,1,,,,6,2027-06-01T12:30:00+02:00\n"
    "800,Toll free,0,0,1,1,0,0,up,0,2027-03-01T00:00:00Z\n"
)
RICH_EXPORTED = HEADER + (
    "1,United States,0.012345,0,1,1,0,0,up,6,2027-06-01T10:30:00Z\n"
    "44,United Kingdom,0.1,0,60,60,0,0,up,4,\n"
    '4477,"United Kingdom, mobile",0.25,0.05,30,6,60,5,half_up,2,\n'
    '4477,"United Kingdom, mobile",0.2,0.05,30,6,0,0,down,4,2027-01-01T00:00:00Z\n'
    "800,Toll free,0,0,1,1,0,0,up,0,2027-03-01T00:00:00Z\n"
)


def export(cli, name: str) -> str:
    return ok(cli("tariff", "export", name))


def tariff_rows(cli) -> list[dict[str, str]]:
    return table(ok(cli("tariff", "list")))


@pytest.fixture
def retail(cli) -> str:
    ok(cli("tariff", "create", "retail", "--currency", "USD"))
    return "retail"


# --- create / list ---------------------------------------------------------------------------------


def test_create_and_list(cli):
    assert ok(cli("tariff", "list")) == "name\tcurrency\trates\tdescription\n"

    assert ok(cli("tariff", "create", "wholesale", "--currency", "EUR")) == "tariff wholesale created\n"
    ok(cli("tariff", "create", "retail", "--currency", "USD", "--description", "Retail, 2027"))
    assert ok(cli("tariff", "import", "retail", "-", stdin=TWO_RATES)) == "tariff retail: 2 rates added, 0 replaced\n"

    assert export(cli, "retail") == TWO_RATES_EXPORTED
    assert tariff_rows(cli) == [
        {"name": "retail", "currency": "USD", "rates": "2", "description": "Retail, 2027"},
        {"name": "wholesale", "currency": "EUR", "rates": "0", "description": ""},
    ]
    assert export(cli, "wholesale") == HEADER


def test_create_refuses_bad_input(cli, db):
    for arguments, message in [
        (["", "--currency", "USD"], "a tariff name is 1 to 64 characters"),
        (["x" * 65, "--currency", "USD"], "a tariff name is 1 to 64 characters"),
        (["retail", "--currency", "usd"], "is not a valid currency"),
        (["retail", "--currency", "DOLLAR"], "is not a valid currency"),
        (["retail", "--currency", "USD", "--description", "d" * 256], "at most 255 characters"),
    ]:
        failed(cli("tariff", "create", *arguments), 2, message)
    usage = cli("tariff", "create", "retail")
    assert usage.code == 2 and "--currency" in usage.err

    assert tariff_rows(cli) == []
    with db() as session:
        assert session.execute(select(func.count()).select_from(Tariff)).scalar_one() == 0


def test_create_refuses_a_duplicate_name(cli, retail):
    failed(cli("tariff", "create", "retail", "--currency", "EUR"), 4, "a tariff 'retail' already exists")

    assert [(row["name"], row["currency"]) for row in tariff_rows(cli)] == [("retail", "USD")]


# --- import / export --------------------------------------------------------------------------------


def test_import_from_a_file_then_export(cli, db, retail, tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text(RICH_CSV, encoding="utf-8")

    assert ok(cli("tariff", "import", "retail", str(path))) == "tariff retail: 5 rates added, 0 replaced\n"

    assert export(cli, "retail") == RICH_EXPORTED
    assert tariff_rows(cli)[0]["rates"] == "5"
    with db() as session:
        mobile = session.execute(select(Rate).where(Rate.prefix == "4477").order_by(Rate.effective_from)).scalars()
        now, later = mobile
        assert (now.price_per_minute, now.connect_fee) == (Decimal("0.25"), Decimal("0.05"))
        assert (now.rounding_mode, now.rounding_digits, now.minimum_duration) == (RoundingMode.HALF_UP, 2, 60)
        assert later.effective_from.isoformat() == "2027-01-01T00:00:00+00:00"


def test_import_a_file_that_cannot_be_read(cli, retail, tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("prefix,destination,price_per_minute\n33,République,0.1\n".encode("latin-1"))

    failed(
        cli("tariff", "import", "retail", str(tmp_path / "missing.csv")),
        2,
        f"cannot read {tmp_path / 'missing.csv'}: No such file or directory",
    )
    failed(cli("tariff", "import", "retail", str(tmp_path)), 2, f"cannot read {tmp_path}")
    failed(cli("tariff", "import", "retail", str(latin1)), 2, f"{latin1} is not UTF-8 text")
    usage = cli("tariff", "import", "retail")
    assert usage.code == 2 and "file" in usage.err

    assert export(cli, "retail") == HEADER


def test_unknown_tariff_is_not_found(cli, tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text(TWO_RATES)

    failed(cli("tariff", "import", "ghost", str(path)), 3, "no tariff 'ghost'")
    failed(cli("tariff", "import", "ghost", "-", stdin=TWO_RATES), 3, "no tariff 'ghost'")
    failed(cli("tariff", "export", "ghost"), 3, "no tariff 'ghost'")

    assert tariff_rows(cli) == []


def test_import_reports_every_bad_line_and_applies_none(cli, retail):
    ok(cli("tariff", "import", "retail", "-", stdin=TWO_RATES))
    bad = (
        "prefix,destination,price_per_minute,initial_increment\n"
        "44,United Kingdom,0.50,60\n"  # line 2: fine, and would replace the 0.10 rate
        "33,France,-0.1,60\n"
        "+49,Germany,0.1,60\n"
        "39,Italy,0.1\n"
        "34,,0.1,60\n"
        "31,Netherlands,0.1,0\n"
        "32,Belgium,0.1234567,60\n"
        "352,Luxembourg,0.1,²\n"
        "99,Nowhere,0.1,60\n"  # line 10: fine, and would be added
    )

    result = cli("tariff", "import", "retail", "-", stdin=bad)

    failed(
        result,
        2,
        "line 3: price_per_minute: '-0.1' must be a non-negative amount",
        "line 4: prefix: '+49' must be 1 to 15 digits",
        "line 5: 3 fields, expected 4",
        "line 6: destination: required",
        "line 7: initial_increment: '0' must be a whole number from 1 to 3600",
        "line 8: price_per_minute: '0.1234567' has more than 6 decimals",
        "line 9: initial_increment: '²' must be a whole number from 1 to 3600",
    )
    assert "line 2" not in result.err and "line 10" not in result.err
    assert len(result.err.splitlines()) == 7  # one line per problem
    assert export(cli, "retail") == TWO_RATES_EXPORTED
    assert tariff_rows(cli)[0]["rates"] == "2"


def test_import_refuses_a_prefix_twice_in_one_file(cli, retail):
    twice = "prefix,destination,price_per_minute\n44,United Kingdom,0.10\n1,United States,0.05\n44,UK again,0.12\n"

    failed(
        cli("tariff", "import", "retail", "-", stdin=twice),
        2,
        "line 4: prefix 44 with this effective_from is also on line 2",
    )
    assert export(cli, "retail") == HEADER

    # The same prefix from another date is a scheduled price change, not a duplicate.
    scheduled = "prefix,destination,price_per_minute,effective_from\n44,UK,0.10,\n44,UK,0.12,2027-01-01\n"
    assert ok(cli("tariff", "import", "retail", "-", stdin=scheduled)) == "tariff retail: 2 rates added, 0 replaced\n"
    assert (
        export(cli, "retail")
        == HEADER + "44,UK,0.1,0,60,60,0,0,up,4,\n44,UK,0.12,0,60,60,0,0,up,4,2027-01-01T00:00:00Z\n"
    )


def test_import_refuses_a_bad_header_unreadable_csv_or_too_many_problems(cli, retail):
    for text, message in [
        ("", "line 1: the file is empty; a header row is required"),
        ("\n\n", "line 1: the file is empty; a header row is required"),
        ("prefix,destination\n44,UK\n", "line 1: missing column 'price_per_minute'"),
        ("prefix,destination,price,price_per_minute\n44,UK,1,1\n", "line 1: unknown column 'price'"),
        ("prefix,destination,price_per_minute,prefix\n44,UK,1,44\n", "line 1: column 'prefix' appears twice"),
        ("prefix,destination,price_per_minute\n44," + "x" * 140_000 + ",0.1\n", "field larger than field limit"),
    ]:
        failed(cli("tariff", "import", "retail", "-", stdin=text), 2, message)
    many = cli("tariff", "import", "retail", "-", stdin="prefix,destination,price_per_minute\n" + "x,Nowhere,1\n" * 25)
    failed(many, 2, "line 2: prefix:", "line 21: prefix:", "... and 5 more problems")  # the first 20 of 25
    assert "line 22:" not in many.err

    assert export(cli, "retail") == HEADER


def test_import_again_replaces_rates_of_the_same_prefix_and_date(cli, retail):
    ok(cli("tariff", "import", "retail", "-", stdin=TWO_RATES))

    update = "prefix,destination,price_per_minute\n44,United Kingdom,0.12\n33,France,0.2\n"
    out = ok(cli("tariff", "import", "retail", "-", stdin=update))

    assert out == "tariff retail: 1 rates added, 1 replaced\n"
    assert export(cli, "retail") == HEADER + (
        "1,United States,0.05,0,60,60,0,0,up,4,\n"
        "33,France,0.2,0,60,60,0,0,up,4,\n"
        "44,United Kingdom,0.12,0,60,60,0,0,up,4,\n"
    )
    assert tariff_rows(cli)[0]["rates"] == "3"


def test_export_round_trip(cli, retail, tmp_path):
    ok(cli("tariff", "import", "retail", "-", stdin=RICH_CSV))
    exported = export(cli, "retail")
    path = tmp_path / "exported.csv"
    path.write_text(exported, encoding="utf-8")
    ok(cli("tariff", "create", "copy", "--currency", "USD"))

    assert ok(cli("tariff", "import", "copy", str(path))) == "tariff copy: 5 rates added, 0 replaced\n"
    assert export(cli, "copy") == exported

    # Importing its own export into the tariff replaces every rate by itself: nothing changes.
    assert ok(cli("tariff", "import", "retail", str(path))) == "tariff retail: 0 rates added, 5 replaced\n"
    assert export(cli, "retail") == exported == RICH_EXPORTED
