"""Errors: RFC 9457 problem details (application/problem+json) for the API, an HTML page otherwise.

Provisioning errors carry a message written for the user; they become 400, 404 or 409 here so that
resources can let them through.
"""

from __future__ import annotations

import json

import falcon

from boomerang.provisioning import Conflict, InvalidInput, NotFound, ProvisioningError
from portal import html

PROBLEM_JSON = "application/problem+json"

_STATUS_OF = {InvalidInput: falcon.HTTP_400, NotFound: falcon.HTTP_404, Conflict: falcon.HTTP_409}
_TITLE_OF = {InvalidInput: "Invalid input", NotFound: "Not found", Conflict: "Conflict"}


def is_api(req: falcon.Request) -> bool:
    return req.path.startswith("/api/")


def serialize(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    status = error.status_code
    detail = error.description or error.title
    if is_api(req) or not req.client_accepts("text/html"):
        body = {"type": "about:blank", "title": error.title, "status": status, "detail": detail}
        if error.code:  # why, for programs: e.g. a refused callback's reason
            body["code"] = error.code
        resp.content_type = PROBLEM_JSON
        resp.data = json.dumps(body).encode()
    else:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = html.render_page("error.html", req, title=error.title, status=status, detail=detail)
    resp.append_header("Vary", "Accept")


def provisioning_error(req: falcon.Request, resp: falcon.Response, error: ProvisioningError, params: dict) -> None:
    kind = next(cls for cls in _STATUS_OF if isinstance(error, cls))
    raise falcon.HTTPError(_STATUS_OF[kind], title=_TITLE_OF[kind], description=str(error))


def unauthorized(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPUnauthorized, params: dict) -> None:
    """A page that needs a signed-in user sends the browser to the sign-in form instead."""
    if is_api(req):
        raise error
    target = req.relative_uri if req.method == "GET" else "/"
    raise falcon.HTTPSeeOther("/login?" + falcon.to_query_str({"next": target}, prefix=False))


def install(app: falcon.App) -> None:
    app.set_error_serializer(serialize)
    app.add_error_handler(ProvisioningError, provisioning_error)
    app.add_error_handler(falcon.HTTPUnauthorized, unauthorized)
