"""The connection cap stays below the open-file limit; a lower setting wins."""

from __future__ import annotations

import resource

from overdrive.app import connection_limits
from overdrive.config import Settings


def test_the_cap_leaves_descriptors_for_everything_else() -> None:
    limits = connection_limits(Settings.load())
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert 16 <= limits.max_connections <= soft - 64 - limits.backlog  # a turn's accepts fit beside the cap


def test_a_lower_setting_wins_and_the_http_limits_are_the_settings() -> None:
    settings = Settings(OVERDRIVE_MAX_CONNECTIONS=100, OVERDRIVE_HTTP_MAX_HEADER_BYTES=4096,
                        OVERDRIVE_HTTP_HEADER_TIMEOUT_SECONDS=2, OVERDRIVE_HTTP_KEEP_ALIVE_SECONDS=3)
    limits = connection_limits(settings)
    assert (limits.max_connections, limits.max_header_bytes, limits.header_timeout_s, limits.keep_alive_s) == (100, 4096, 2, 3)
