"""WSGI entry point: gunicorn 'publisher.wsgi:app'."""

from . import create_app

app = create_app()
