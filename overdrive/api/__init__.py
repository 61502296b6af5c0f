"""The HTTP API: parse, call a service, serialise. Nothing else lives here."""

from overdrive.api.app_factory import create_app

__all__ = ["create_app"]
