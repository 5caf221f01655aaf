"""HTML pages."""

from __future__ import annotations

import falcon

HOME = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Boomerang</title></head>
<body>
<h1>Boomerang callback platform</h1>
<p>The portal is running. The JSON API is described at <a href="/api/openapi.json">/api/openapi.json</a>.</p>
</body>
</html>
"""


class Home:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = HOME
