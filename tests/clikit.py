"""Reading what the `boomerang` command printed: its tables, its success, its one-line errors."""

from __future__ import annotations


def table(text: str) -> list[dict[str, str]]:
    """The rows of a tab-separated table printed under a header line."""
    header, *lines = text.splitlines()
    names = header.split("\t")
    return [dict(zip(names, line.split("\t"), strict=True)) for line in lines]


def ok(result) -> str:
    assert result.code == 0, f"exit {result.code}: {result.err}"
    assert result.err == ""
    return result.out


def failed(result, code: int, *fragments: str, one_line: bool = True, usage_errors: bool = False) -> None:
    """The command failed with `code` and one `boomerang: error:` message holding every fragment.

    one_line=False: a message listing several problems (a rates import), still without a traceback.
    usage_errors=True: argparse's own usage message is also accepted for exit code 2.
    """
    assert result.code == code, f"expected exit {code}, got {result.code}: {result.err or result.out}"
    if usage_errors and code == 2 and "usage: boomerang" in result.err:  # refused by the argument parser
        assert all(fragment in result.err for fragment in fragments), result.err
        return
    assert result.err.startswith("boomerang: error: "), result.err
    if one_line:
        assert result.err.count("\n") == 1, result.err  # one line, no traceback
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err, result.err
    assert result.out == ""
