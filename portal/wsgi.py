"""WSGI entry point for gunicorn: `gunicorn portal.wsgi:app`."""

from boomerang.settings import load
from portal.app import create_app

app = create_app(load())
