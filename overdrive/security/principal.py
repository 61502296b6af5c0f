"""Who is calling, and what they may do: scopes per endpoint family.

A credential (an API key or a JWT) becomes a `Principal` with a set of scopes. `admin` allows
everything. A token whose `sub` is a user of the platform and that carries `user:self` may read
and export that user's own analytics and insights and erase that user, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

# scope -> what it allows
SCOPES: dict[str, str] = {
    "signals:write": "POST /signals/process and /signals/batch",
    "rank": "POST /rank/for-you/enhanced, GET /rank/strategies",
    "items:read": "GET /items/{id}, /items/{id}/similar, /items/{id}/features",
    "items:write": "POST /items, /items/batch, DELETE /items/{id}",
    "analytics:read": "GET /analytics/..., /insights/{user_id}",
    "metrics:read": "GET /performance/system, /metrics, /models/status",
    "models:admin": "POST /models/train",
    "privacy:admin": "DELETE /users/{user_id}, GET /users/{user_id}/export, GET /users/erasures/{job_id}",
    "audit:read": "GET /audit",
    "experiments:read": "GET /experiments, /experiments/{id}, /experiments/{id}/results, /experiments/assignment/{user_id}",
    "experiments:admin": "POST /experiments, PATCH and DELETE /experiments/{id}",
    "user:self": "the token's own user (its `sub`): analytics, insights, experiment assignment, export, erasure",
    "admin": "everything",
}
ADMIN = "admin"
SELF = "user:self"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `id` names it in the audit trail: `key:<key id>`, `jwt:<sub>`, or
    `local` while authentication is off (loopback, no credential configured)."""

    id: str
    scopes: frozenset[str]
    subject: str | None = None  # the platform user a `user:self` token stands for
    rate: tuple[float, float] | None = None  # this credential's own (requests/s, burst), if it has one

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes

    def may_access_user(self, user_id: str, scope: str) -> bool:
        """`scope` over every user, or `user:self` over the token's own."""
        return self.allows(scope) or (SELF in self.scopes and self.subject == user_id)


LOCAL = Principal(id="local", scopes=frozenset({ADMIN}))


def parse_scopes(value: object) -> frozenset[str]:
    """A `scope` claim (space-separated text) or `scp` claim (a list, or text) as a set."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, (list, tuple)):
        return frozenset(str(s) for s in value)
    return frozenset()
