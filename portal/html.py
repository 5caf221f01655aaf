"""HTML rendering with Jinja2 (portal/templates): every page gets the signed-in user and the form token."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import falcon
import jinja2

from portal.representations import money

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_environment.filters["money"] = lambda amount: money(amount if isinstance(amount, Decimal) else Decimal(amount))


def render_page(template: str, req: falcon.Request, **context) -> str:
    principal = getattr(req.context, "principal", None)
    context.setdefault("principal", principal)
    context.setdefault("csrf_token", getattr(req.context, "csrf_token", ""))
    context.setdefault("path", req.path)
    return _environment.get_template(template).render(**context)


def respond(
    resp: falcon.Response, req: falcon.Request, template: str, status: str = falcon.HTTP_200, **context
) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.text = render_page(template, req, **context)
