"""Reading request bodies: JSON objects for the API, form fields for pages, each value checked.

A value that is missing, of the wrong type or out of range is refused with a 400 that names the
field; unknown fields are refused too, so a misspelt field is never silently ignored.
"""

from __future__ import annotations

from decimal import Decimal

import falcon

from boomerang import provisioning


class Body:
    """The fields of a request body; take each with the method for its type, then call `done`."""

    def __init__(self, fields: dict) -> None:
        self.fields = fields
        self.taken: set[str] = set()

    @classmethod
    def json(cls, req: falcon.Request) -> Body:
        if not (req.content_type or "").split(";")[0].strip().lower() == falcon.MEDIA_JSON:
            raise falcon.HTTPUnsupportedMediaType(description="send the body as application/json")
        data = req.get_media()
        if not isinstance(data, dict):
            raise falcon.HTTPBadRequest(title="Invalid body", description="expected a JSON object")
        return cls(data)

    @classmethod
    def form(cls, req: falcon.Request) -> Body:
        """A page's form; every value is text, and the form token is not a field of the action."""
        data = req.get_media(default_when_empty={}) if req.content_length else {}
        if not isinstance(data, dict):
            raise falcon.HTTPBadRequest(title="Invalid form", description="expected form fields")
        fields = {name: value for name, value in data.items() if name != "csrf_token"}
        return cls({name: value[-1] if isinstance(value, list) else value for name, value in fields.items()})

    def _take(self, name: str, required: bool):
        self.taken.add(name)
        value = self.fields.get(name)
        if value is None and required:
            raise falcon.HTTPBadRequest(title="Missing field", description=f"{name} is required")
        return value

    def has(self, name: str) -> bool:
        return self.fields.get(name) is not None

    def text(self, name: str, *, required: bool = True, max_length: int = 255, default: str | None = None):
        value = self._take(name, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise falcon.HTTPBadRequest(title="Invalid field", description=f"{name} must be a string")
        if len(value) > max_length:
            raise falcon.HTTPBadRequest(title="Invalid field", description=f"{name} is at most {max_length} characters")
        return value

    def integer(self, name: str, low: int, high: int, *, required: bool = False, default: int | None = None):
        value = self._take(name, required)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # form fields are text
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise falcon.HTTPBadRequest(title="Invalid field", description=f"{name} must be an integer")
        if not low <= value <= high:
            raise falcon.HTTPBadRequest(title="Invalid field", description=f"{name} must be between {low} and {high}")
        return value

    def boolean(self, name: str, *, default: bool | None = None):
        value = self._take(name, False)
        if value is None:
            return default
        if isinstance(value, str):  # a form's checkbox or select
            if value.lower() in ("true", "on", "yes", "1"):
                return True
            if value.lower() in ("false", "off", "no", "0"):
                return False
        if not isinstance(value, bool):
            raise falcon.HTTPBadRequest(title="Invalid field", description=f"{name} must be true or false")
        return value

    def amount(self, name: str, *, required: bool = True, allow_negative: bool = False) -> Decimal | None:
        """Money is sent as a decimal string ("12.50"), never as a JSON number that may be a float."""
        value = self.text(name, required=required, max_length=32)
        if value is None:
            return None
        try:
            return provisioning.parse_amount(value, allow_negative=allow_negative)
        except provisioning.InvalidInput as exc:
            raise falcon.HTTPBadRequest(title="Invalid field", description=f"{name}: {exc}") from None

    def choice(self, name: str, choices: list[str], *, required: bool = False, default: str | None = None):
        value = self.text(name, required=required, max_length=32, default=default)
        if value is not None and value not in choices:
            raise falcon.HTTPBadRequest(
                title="Invalid field", description=f"{name} must be one of {', '.join(choices)}"
            )
        return value

    def done(self) -> None:
        unknown = sorted(set(self.fields) - self.taken)
        if unknown:
            raise falcon.HTTPBadRequest(title="Unknown field", description="unknown fields: " + ", ".join(unknown))
