"""Typed Python client for the Overdrive recommendation service.

    from overdrive_client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as od:
        with od.signal_sender() as signals:
            signals.send({"user_id": "u1", "signal_type": "like", "content_id": "v1"})
        feed = od.rank("u1", limit=10)

See README.md for the whole tour; `overdrive_client.types` holds every request and answer shape.
"""

from overdrive_client.auth import ApiKey, BearerToken
from overdrive_client.client import AsyncClient, Client
from overdrive_client.errors import (BadRequest, Conflict, ConnectionFailed, Forbidden, HTTPError, NotFound,
                                     OverdriveError, RateLimited, SenderFailed, ServerError, Unauthorized, Unavailable)
from overdrive_client.experiments import LocalAssigner, assign
from overdrive_client.ids import new_signal_id
from overdrive_client.retry import Retry
from overdrive_client.sender import AsyncSignalSender, SenderStats, SignalSender
from overdrive_client.version import __version__

__all__ = [
    "ApiKey", "AsyncClient", "AsyncSignalSender", "BadRequest", "BearerToken", "Client", "Conflict", "ConnectionFailed",
    "Forbidden", "HTTPError", "LocalAssigner", "NotFound", "OverdriveError", "RateLimited", "Retry", "SenderFailed",
    "SenderStats", "ServerError", "SignalSender", "Unauthorized", "Unavailable", "__version__", "assign",
    "new_signal_id",
]
