"""GET /api/openapi.json: the OpenAPI 3 description of the JSON API."""

from __future__ import annotations

import falcon

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "Boomerang callback platform API", "version": "0.1.0"},
    "paths": {
        "/api/health": {
            "get": {
                "summary": "Service health",
                "operationId": "getHealth",
                "responses": {
                    "200": {
                        "description": "The portal and its database are up",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                    },
                    "503": {
                        "description": "The database cannot be reached",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                    },
                },
            }
        }
    },
    "components": {
        "schemas": {
            "Health": {
                "type": "object",
                "required": ["status", "database"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "unavailable"]},
                    "database": {"type": "string", "enum": ["ok", "unreachable"]},
                },
            }
        }
    },
}


class OpenApiDocument:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = DOCUMENT
