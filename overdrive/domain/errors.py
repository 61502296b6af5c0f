"""One exception tree for the whole service; the API maps each class to one HTTP status."""


class OverdriveError(Exception):
    """Base of every error Overdrive raises on purpose."""


class InvalidInput(OverdriveError):
    """The caller sent something we cannot accept (maps to 422). `field` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(OverdriveError):
    """A named resource (item, user) does not exist (maps to 404)."""


class BackendUnavailable(OverdriveError):
    """A storage or streaming dependency cannot serve right now (maps to 503)."""


class Overloaded(OverdriveError):
    """The signal buffer is full; the caller should retry after `retry_after_s` (maps to 429)."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Conflict(OverdriveError):
    """The request is valid but cannot be done in the service's present state, e.g. a retrain
    with no signals to train on (maps to 409)."""


class Unauthenticated(OverdriveError):
    """No credential, or one that is not valid: expired, unknown, badly signed (maps to 401)."""

    def __init__(self, message: str, *, presented: bool = False) -> None:
        super().__init__(message)
        self.presented = presented  # a credential came and was refused (not merely missing)


class Forbidden(OverdriveError):
    """A valid credential that does not allow this call (maps to 403)."""


class RateLimited(Overloaded):
    """This credential used up its request budget; retry after `retry_after_s` (maps to 429)."""
