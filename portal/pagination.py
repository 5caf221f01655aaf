"""Lists come in pages: ?page=N&per_page=M, answered with the items, the total and the next page's link."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def requested_page(req: falcon.Request, default_size: int = DEFAULT_PER_PAGE) -> Page:
    number = req.get_param_as_int("page", min_value=1, max_value=1_000_000, default=1)
    size = req.get_param_as_int("per_page", min_value=1, max_value=MAX_PER_PAGE, default=default_size)
    return Page(number, size)


def fetch(session: Session, query: Select, page: Page) -> tuple[list, int]:
    """One page of the query's rows (or scalars, for a one-entity query) and the total count."""
    total = session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    result = session.execute(query.limit(page.size).offset(page.offset))
    rows = list(result.scalars()) if len(query.column_descriptions) == 1 else list(result)
    return rows, total


def listed(req: falcon.Request, session: Session, query: Select, represent: Callable[[Any], dict]) -> dict:
    """The requested page of the query, each row as `represent` shows it, in its envelope."""
    page = requested_page(req)
    rows, total = fetch(session, query, page)
    return envelope(req, page, [represent(row) for row in rows], total)


def envelope(req: falcon.Request, page: Page, items: list, total: int) -> dict:
    following = None
    if page.offset + len(items) < total:
        params = dict(req.params) | {"page": str(page.number + 1), "per_page": str(page.size)}
        following = req.path + "?" + falcon.to_query_str(params, prefix=False)
    return {"items": items, "page": page.number, "per_page": page.size, "total": total, "next": following}
