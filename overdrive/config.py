"""Typed settings, read once from the environment (and an optional config file) at start-up.

Environment variable names are the spec's (`REDIS_URL`, `SERVICE_PORT`, …) plus Overdrive's own
`OVERDRIVE_*` ones. Ranking and signal weights default to the spec's tables and can be overridden
with JSON in `OVERDRIVE_RANKING_WEIGHTS` / `OVERDRIVE_SIGNAL_WEIGHTS`, or in a JSON/TOML file named
by `OVERDRIVE_CONFIG`; environment variables win over the file.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from overdrive.domain.types import COMPONENTS, DEFAULT_RANKING_WEIGHTS, DEFAULT_SIGNAL_WEIGHTS, SIGNAL_TYPES


def _env(name: str, *more: str) -> Any:
    return AliasChoices(name, *more)


class Settings(BaseSettings):
    """Every tunable of the service. Construct with `Settings.load()` to include the config file."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True, frozen=True)

    # Core (spec names)
    redis_url: str | None = Field(default=None, validation_alias=_env("REDIS_URL"))
    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    client_base_url: str = Field(
        default="http://localhost:3000", validation_alias=_env("CLIENT_BASE_URL")
    )
    service_port: int = Field(default=8000, ge=1, le=65535, validation_alias=_env("SERVICE_PORT"))
    # ML model settings (spec names)
    model_cache_dir: Path = Field(default=Path("./model_cache"), validation_alias=_env("MODEL_CACHE_DIR"))
    user_embedding_dim: int = Field(default=128, ge=2, le=4096, validation_alias=_env("USER_EMBEDDING_DIM"))
    item_embedding_dim: int = Field(default=128, ge=2, le=4096, validation_alias=_env("ITEM_EMBEDDING_DIM"))
    n_factors: int = Field(default=100, ge=1, le=2048, validation_alias=_env("N_FACTORS"))
    # Performance settings (spec names)
    max_workers: int = Field(default=8, ge=1, le=256, validation_alias=_env("MAX_WORKERS"))
    signal_buffer_size: int = Field(default=10000, ge=1, le=10_000_000, validation_alias=_env("SIGNAL_BUFFER_SIZE"))

    # Overdrive's own
    data_dir: Path = Field(default=Path("./overdrive-data"), validation_alias=_env("OVERDRIVE_DATA_DIR"))
    host: str = Field(default="127.0.0.1", validation_alias=_env("OVERDRIVE_HOST"),
                      description="bind address; anything but loopback needs credentials configured")
    log_level: str = Field(default="info", validation_alias=_env("OVERDRIVE_LOG_LEVEL"))
    log_format: str = Field(default="auto", pattern=r"^(auto|json|text)$", validation_alias=_env("OVERDRIVE_LOG_FORMAT"),
                            description="json, text, or auto: text on a terminal, JSON lines otherwise")
    access_log: bool = Field(default=False, validation_alias=_env("OVERDRIVE_ACCESS_LOG"),
                             description="uvicorn's access log, one line per request in the log format")
    dashboard: bool = Field(default=True, validation_alias=_env("OVERDRIVE_DASHBOARD"),
                            description="serve /dashboard (its sampler, behind /metrics' readiness, catalog and "
                                        "model series, runs either way)")
    dashboard_sample_seconds: float = Field(default=5.0, ge=1.0, le=300.0,
                                            validation_alias=_env("OVERDRIVE_DASHBOARD_SAMPLE_SECONDS"),
                                            description="how often the dashboard's history takes a point (and its pages poll)")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, validation_alias=_env("OVERDRIVE_MAX_BODY_BYTES"))
    # Load shedding and connection limits (docs/configuration.md#load-shedding-and-connections)
    max_inflight_rankings: int = Field(default=4, ge=0, le=100_000, validation_alias=_env("OVERDRIVE_MAX_INFLIGHT_RANKINGS"),
                                       description="rankings served at once; more answer 503 with Retry-After at once "
                                                   "instead of queueing (0: no limit)")
    max_inflight_signal_writes: int = Field(default=8, ge=0, le=100_000,
                                            validation_alias=_env("OVERDRIVE_MAX_INFLIGHT_SIGNAL_WRITES"),
                                            description="signal writes (/signals/process, /signals/batch) served at "
                                                        "once; more answer 503 with Retry-After (0: no limit)")
    shed_retry_after_seconds: int = Field(default=1, ge=1, le=3600, validation_alias=_env("OVERDRIVE_SHED_RETRY_AFTER_SECONDS"),
                                          description="the Retry-After of a shed request's 503")
    max_connections: int = Field(default=0, ge=0, le=10_000_000, validation_alias=_env("OVERDRIVE_MAX_CONNECTIONS"),
                                 description="open client connections at most; past it the longest-idle one is closed, "
                                             "or the new one if none is idle (0: the descriptor limit less a reserve)")
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024,
                                       validation_alias=_env("OVERDRIVE_HTTP_MAX_HEADER_BYTES"),
                                       description="a request's line and headers at most; larger answers 431 and closes")
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600,
                                               validation_alias=_env("OVERDRIVE_HTTP_HEADER_TIMEOUT_SECONDS"),
                                               description="a request's headers must arrive within this of its first "
                                                           "byte, else 408 and the connection closed")
    http_body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600,
                                             validation_alias=_env("OVERDRIVE_HTTP_BODY_TIMEOUT_SECONDS"),
                                             description="a request's body must arrive within this of its headers, "
                                                         "else 408 and the connection closed")
    gil_switch_interval_ms: float = Field(default=1.0, gt=0, le=100, validation_alias=_env("OVERDRIVE_GIL_SWITCH_INTERVAL_MS"),
                                          description="how long another thread may hold the GIL while the event loop "
                                                      "waits (Python's default: 5)")
    http_keep_alive_seconds: float = Field(default=5.0, gt=0, le=3600, validation_alias=_env("OVERDRIVE_HTTP_KEEP_ALIVE_SECONDS"),
                                           description="a connection idle this long (before its first request or "
                                                       "between requests) is closed")
    ranking_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_RANKING_WEIGHTS),
        validation_alias=_env("OVERDRIVE_RANKING_WEIGHTS"),
    )
    default_strategy: str = Field(default="learned", validation_alias=_env("OVERDRIVE_DEFAULT_STRATEGY"),
                                  description="the blend of a rank request that names no strategy: learned (fitted "
                                              "from history and impressions; the ranking weights until then), "
                                              "enhanced (the ranking weights as configured) or one component")
    blend_from_history: bool = Field(default=True, validation_alias=_env("OVERDRIVE_BLEND_FROM_HISTORY"),
                                     description="after a collaborative retrain, fit the learned blend on the "
                                                 "signal history (each component scored as of a time cut, the "
                                                 "interactions after it as the answer)")
    signal_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SIGNAL_WEIGHTS),
        validation_alias=_env("OVERDRIVE_SIGNAL_WEIGHTS"),
    )
    # How fast evidence fades: item engagement (real_time), user interests, and content freshness.
    engagement_half_life_hours: float = Field(default=24.0, gt=0, validation_alias=_env("OVERDRIVE_ENGAGEMENT_HALF_LIFE_HOURS"))
    interest_half_life_days: float = Field(default=14.0, gt=0, validation_alias=_env("OVERDRIVE_INTEREST_HALF_LIFE_DAYS"))
    freshness_half_life_hours: float = Field(default=48.0, gt=0, validation_alias=_env("OVERDRIVE_FRESHNESS_HALF_LIFE_HOURS"))
    # When a rank request names no candidates, how many catalog items to consider.
    catalog_candidates: int = Field(default=500, ge=1, le=5000, validation_alias=_env("OVERDRIVE_CATALOG_CANDIDATES"))
    recent_signals_per_user: int = Field(default=200, ge=1, le=100_000, validation_alias=_env("OVERDRIVE_RECENT_SIGNALS_PER_USER"))
    short_term_half_life_minutes: float = Field(default=60.0, gt=0, validation_alias=_env("OVERDRIVE_SHORT_TERM_HALF_LIFE_MINUTES"))
    # Feed hygiene: signal types that take an item out of the user's feed, and diversity.
    exclude_signal_types: str = Field(
        default="view,click,dwell,completion,like,comment,share,bookmark,hide,dislike,report",
        validation_alias=_env("OVERDRIVE_EXCLUDE_SIGNAL_TYPES"),
        description="comma-separated; an item the user sent one of these for leaves their feed ('' for none)")
    diversity_lambda: float = Field(default=0.85, ge=0.0, le=1.0, validation_alias=_env("OVERDRIVE_DIVERSITY_LAMBDA"),
                                    description="MMR trade-off: 1 ranks by relevance only, lower adds variety")
    max_per_author: int = Field(default=3, ge=0, le=1000, validation_alias=_env("OVERDRIVE_MAX_PER_AUTHOR"),
                                description="at most this many items of one author in the top 10 (0: no cap)")
    content_features: bool = Field(default=True, validation_alias=_env("OVERDRIVE_CONTENT_FEATURES"),
                                   description="multi-modal content features, vector index, content_based scorer")
    # Where item media may come from (item URLs come from API callers).
    media_roots: str = Field(default="", validation_alias=_env("OVERDRIVE_MEDIA_ROOTS"),
                             description="folders local media files may be read from, separated by os.pathsep "
                                         "(':' on POSIX); empty: no local media files at all")
    media_allowed_hosts: str = Field(default="", validation_alias=_env("OVERDRIVE_MEDIA_ALLOWED_HOSTS"),
                                     description="comma-separated hosts (name or IP address, optionally host:port; "
                                                 "IPv6 as [addr]:port) whose media may be fetched even when they "
                                                 "resolve to a private or loopback address, e.g. an internal CDN")
    media_allow_private_networks: bool = Field(default=False, validation_alias=_env("OVERDRIVE_MEDIA_ALLOW_PRIVATE_NETWORKS"),
                                               description="fetch media from loopback, link-local and private addresses "
                                                           "for every host (multicast, reserved, unspecified: never)")
    compiled_models_dir: Path | None = Field(default=None, validation_alias=_env("OVERDRIVE_COMPILED_MODELS_DIR"),
                                             description="where the text model is compiled for ONNX Runtime; default MODEL_CACHE_DIR/compiled")
    cf_methods: str = Field(default="all", validation_alias=_env("OVERDRIVE_CF_METHODS"),
                            description="comma-separated CF methods in the ensemble, or 'all'")
    cf_tune: bool = Field(default=True, validation_alias=_env("OVERDRIVE_CF_TUNE"))
    cf_tune_budget_seconds: float = Field(
        default=120.0, gt=0, le=86_400, validation_alias=_env("OVERDRIVE_CF_TUNE_BUDGET_SECONDS"),
        description="the most one member's hyperparameter search may take in a retrain: its grid is tried "
                    "smallest first and stops past this, keeping the best entry tried")
    fold_in_every: int = Field(default=1000, ge=1, le=10_000_000, validation_alias=_env("OVERDRIVE_FOLD_IN_EVERY"))
    fold_in_on_demand: bool | None = Field(
        default=None, validation_alias=_env("OVERDRIVE_FOLD_IN_ON_DEMAND"),
        description="fold a user's new signals into the collaborative model when this process next scores "
                    "them, instead of every FOLD_IN_EVERY signals for everyone touched; default: on with "
                    "Kafka, where every replica reads every signal of the topic, off otherwise")
    retrain_interval_minutes: float = Field(default=60.0, ge=0, validation_alias=_env("OVERDRIVE_RETRAIN_INTERVAL_MINUTES"))
    train_on_start: bool = Field(default=True, validation_alias=_env("OVERDRIVE_TRAIN_ON_START"))
    retrain_in: Literal["child_process", "thread"] = Field(
        default="child_process", validation_alias=_env("OVERDRIVE_RETRAIN_IN"),
        description="where an embedded retrain runs: 'child_process', one process per retrain, whose "
                    "memory goes back to the system when it ends; 'thread', in the serving process "
                    "(scaled mode trains on a thread here, or in `python -m overdrive.trainer`)")
    trainer: Literal["here", "external"] = Field(
        default="here", validation_alias=_env("OVERDRIVE_TRAINER"),
        description="'here': this process retrains the collaborative ensemble (at start without a model, "
                    "on the schedule, on POST /models/train); 'external': one `python -m overdrive.trainer` "
                    "publishes into the shared MODEL_CACHE_DIR and this process serves each version it "
                    "publishes (POST /models/train leaves the trainer a request)")
    model_follow_seconds: float = Field(default=5.0, gt=0, le=3600, validation_alias=_env("OVERDRIVE_MODEL_FOLLOW_SECONDS"),
                                        description="with OVERDRIVE_TRAINER=external: how often to look for a new "
                                                    "version; the trainer: how often to look for requests")
    session_gap_minutes: float = Field(default=30.0, gt=0, validation_alias=_env("OVERDRIVE_SESSION_GAP_MINUTES"))

    # Scaled mode (REDIS_URL / KAFKA_BOOTSTRAP_SERVERS): where state and signals live.
    redis_prefix: str = Field(default="overdrive:", min_length=1, max_length=128, pattern=r"^[^{}]*$",
                              validation_alias=_env("OVERDRIVE_REDIS_PREFIX"))
    allow_replicas_without_kafka: bool = Field(
        default=False, validation_alias=_env("OVERDRIVE_ALLOW_REPLICAS_WITHOUT_KAFKA"),
        description="with REDIS_URL and no KAFKA_BOOTSTRAP_SERVERS, let more than one API replica share the Redis "
                    "prefix (each then retrains on its own signals alone; a second one is refused otherwise)")
    kafka_topic: str = Field(default="overdrive-signals", min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$",
                             validation_alias=_env("OVERDRIVE_KAFKA_TOPIC"))
    kafka_partitions: int = Field(default=12, ge=1, le=10_000, validation_alias=_env("OVERDRIVE_KAFKA_PARTITIONS"))
    kafka_consumer_group: str = Field(default="overdrive-workers", min_length=1, validation_alias=_env("OVERDRIVE_KAFKA_GROUP"))
    kafka_session_timeout_ms: int = Field(default=45_000, ge=1000, le=3_600_000, validation_alias=_env("OVERDRIVE_KAFKA_SESSION_TIMEOUT_MS"))
    kafka_delivery_timeout_ms: int = Field(default=5000, ge=100, le=300_000, validation_alias=_env("OVERDRIVE_KAFKA_DELIVERY_TIMEOUT_MS"))
    worker_batch_size: int = Field(default=1000, ge=1, le=100_000, validation_alias=_env("OVERDRIVE_WORKER_BATCH_SIZE"))

    experiment_holdout: float = Field(default=0.0, ge=0.0, lt=1.0, validation_alias=_env("OVERDRIVE_EXPERIMENT_HOLDOUT"),
                                      description="share of all users kept out of every experiment (a global holdout)")

    # Security: credentials (any one turns authentication on), limits, transport.
    api_keys_file: Path | None = Field(default=None, validation_alias=_env("OVERDRIVE_API_KEYS_FILE"),
                                       description="JSON file of hashed API keys with scopes (re-read when it changes)")
    jwt_secret: SecretStr | None = Field(default=None, min_length=32, validation_alias=_env("OVERDRIVE_JWT_SECRET"),
                                         description="shared secret for HS256 tokens (32 characters at least)")
    jwks_file: Path | None = Field(default=None, validation_alias=_env("OVERDRIVE_JWKS_FILE"))
    jwks_url: str | None = Field(default=None, pattern=r"^https?://", validation_alias=_env("OVERDRIVE_JWKS_URL"))
    jwt_issuer: str | None = Field(default=None, validation_alias=_env("OVERDRIVE_JWT_ISSUER"))
    jwt_audience: str | None = Field(default=None, validation_alias=_env("OVERDRIVE_JWT_AUDIENCE"))
    jwt_algorithms: str = Field(default="", validation_alias=_env("OVERDRIVE_JWT_ALGORITHMS"),
                                description="comma-separated allow-list; default HS256 with a secret, RS256,ES256 with JWKS")
    rate_limits: dict[str, tuple[float, float]] = Field(
        default_factory=dict, validation_alias=_env("OVERDRIVE_RATE_LIMITS"),
        description='JSON: scope -> [requests per second, burst] for each credential, e.g. {"rank": [500, 1000]}')
    tls_cert_file: Path | None = Field(default=None, validation_alias=_env("OVERDRIVE_TLS_CERT_FILE"))
    tls_key_file: Path | None = Field(default=None, validation_alias=_env("OVERDRIVE_TLS_KEY_FILE"))

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):  # type: ignore[no-untyped-def]
        """Only what `load` passes in: it has already merged the file and the environment."""
        return (init_settings,)

    @field_validator("ranking_weights")
    @classmethod
    def _ranking_weights_known(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown component(s) {unknown}; valid: {list(COMPONENTS)}")
        merged = {**DEFAULT_RANKING_WEIGHTS, **value}
        if any(w < 0 or not math.isfinite(w) for w in merged.values()):
            raise ValueError("weights must be finite and >= 0")
        if sum(merged.values()) <= 0:
            raise ValueError("at least one weight must be > 0")
        return merged

    @field_validator("default_strategy")
    @classmethod
    def _default_strategy_known(cls, value: str) -> str:
        valid = ("learned", "enhanced", *COMPONENTS)
        if value not in valid:
            raise ValueError(f"unknown strategy {value!r}; valid: {list(valid)}")
        return value

    @field_validator("signal_weights")
    @classmethod
    def _signal_weights_known(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(SIGNAL_TYPES))
        if unknown:
            raise ValueError(f"unknown signal type(s) {unknown}; valid: {list(SIGNAL_TYPES)}")
        if any(not math.isfinite(w) for w in value.values()):
            raise ValueError("weights must be finite")
        return {**DEFAULT_SIGNAL_WEIGHTS, **value}

    @field_validator("exclude_signal_types")
    @classmethod
    def _exclude_types_known(cls, value: str) -> str:
        unknown = sorted({t.strip() for t in value.split(",") if t.strip()} - set(SIGNAL_TYPES))
        if unknown:
            raise ValueError(f"unknown signal type(s) {unknown}; valid: {list(SIGNAL_TYPES)}")
        return value

    @property
    def excluding_signal_types(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.exclude_signal_types.split(",") if t.strip())

    @field_validator("cf_methods")
    @classmethod
    def _cf_methods_known(cls, value: str) -> str:
        from overdrive.models.collaborative_filtering.registry import METHODS  # no heavy imports

        names = [m.strip() for m in value.split(",") if m.strip()]
        if value.strip() != "all":
            unknown = sorted(set(names) - set(METHODS))
            if unknown or not names:
                raise ValueError(f"unknown method(s) {unknown}; valid: 'all' or some of {sorted(METHODS)}")
        return value.strip()

    @property
    def retrains_in_this_process(self) -> bool:
        """Whether this API process reads the signal log into memory to retrain, on a thread of its
        own: scaled mode with `trainer=here`, or embedded with `retrain_in=thread`."""
        return self.trainer == "here" and (bool(self.redis_url) or self.retrain_in == "thread")

    @property
    def folds_in_on_demand(self) -> bool:
        return bool(self.kafka_bootstrap_servers) if self.fold_in_on_demand is None else self.fold_in_on_demand

    @property
    def cf_method_list(self) -> tuple[str, ...]:
        from overdrive.models.collaborative_filtering.registry import DEFAULT_METHODS

        if self.cf_methods == "all":
            return DEFAULT_METHODS
        return tuple(m.strip() for m in self.cf_methods.split(",") if m.strip())

    @field_validator("media_roots", "media_allowed_hosts", mode="before")
    @classmethod
    def _list_to_text(cls, value: Any, info: Any) -> Any:
        """A config file may give a list; the environment gives one string."""
        if isinstance(value, (list, tuple)):
            return (os.pathsep if info.field_name == "media_roots" else ",").join(str(v) for v in value)
        return value

    @field_validator("media_roots")
    @classmethod
    def _media_roots_exist(cls, value: str) -> str:
        for root in (r.strip() for r in value.split(os.pathsep)):
            if root and not Path(root).expanduser().is_dir():
                raise ValueError(f"no folder at {root}")
        return value

    @property
    def media_root_list(self) -> tuple[Path, ...]:
        return tuple(Path(r.strip()) for r in self.media_roots.split(os.pathsep) if r.strip())

    @field_validator("media_allowed_hosts")
    @classmethod
    def _media_hosts_valid(cls, value: str) -> str:
        from overdrive.content.media import parse_host_entry

        for entry in (e.strip() for e in value.split(",")):
            if entry:
                parse_host_entry(entry)  # ValueError names the entry
        return value

    @property
    def media_allowed_host_list(self) -> tuple[str, ...]:
        return tuple(e.strip() for e in self.media_allowed_hosts.split(",") if e.strip())

    @field_validator("log_level")
    @classmethod
    def _log_level_known(cls, value: str) -> str:
        if value.lower() not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("must be one of critical, error, warning, info, debug")
        return value.lower()

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits_known(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        from overdrive.security.principal import SCOPES

        for scope, (rate, burst) in value.items():
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r}; valid: {sorted(SCOPES)}")
            if not (rate > 0 and burst >= 1):
                raise ValueError(f"{scope}: need requests per second > 0 and a burst >= 1")
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _algorithms_known(cls, value: str) -> str:
        allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
        unknown = sorted({a.strip() for a in value.split(",") if a.strip()} - allowed)
        if unknown:
            raise ValueError(f"unknown or refused algorithm(s) {unknown} ('none' is never allowed); valid: {sorted(allowed)}")
        return value

    @model_validator(mode="after")
    def _secure_by_default(self) -> Settings:
        if self.jwks_file and self.jwks_url:
            raise SettingsError("invalid setting OVERDRIVE_JWKS_FILE/OVERDRIVE_JWKS_URL: set one, not both")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("invalid setting OVERDRIVE_TLS_CERT_FILE/OVERDRIVE_TLS_KEY_FILE: set both or neither")
        for name, path in (("OVERDRIVE_TLS_CERT_FILE", self.tls_cert_file), ("OVERDRIVE_TLS_KEY_FILE", self.tls_key_file),
                           ("OVERDRIVE_API_KEYS_FILE", self.api_keys_file), ("OVERDRIVE_JWKS_FILE", self.jwks_file)):
            if path is not None and not path.is_file():
                raise SettingsError(f"invalid setting {name}: no file at {path}")
        if not self.auth_configured and not is_loopback(self.host):
            raise SettingsError(
                f"invalid setting OVERDRIVE_HOST: refusing to serve {self.host} without credentials; set "
                "OVERDRIVE_API_KEYS_FILE (python -m overdrive.admin keys new), OVERDRIVE_JWT_SECRET or "
                "OVERDRIVE_JWKS_FILE/OVERDRIVE_JWKS_URL — or bind OVERDRIVE_HOST=127.0.0.1")
        return self

    @property
    def auth_configured(self) -> bool:
        """Any credential configured: authentication is on (and required on every address)."""
        return bool(self.api_keys_file or self.jwt_secret or self.jwks_file or self.jwks_url)

    @property
    def jwt_algorithm_list(self) -> list[str]:
        named = [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]
        if named:
            return named
        return (["HS256"] if self.jwt_secret else []) + (["RS256", "ES256"] if self.jwks_file or self.jwks_url else [])

    @classmethod
    def load(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from an optional config file overlaid by the environment."""
        env = dict(os.environ if environ is None else environ)
        file_values: dict[str, Any] = {}
        if path := env.get("OVERDRIVE_CONFIG"):
            file_values = _read_config_file(Path(path))
        values = {**_file_to_aliases(file_values), **env}
        for name in _JSON_SETTINGS:
            if isinstance(values.get(name), str):
                try:
                    values[name] = json.loads(values[name])
                except ValueError as exc:
                    raise SettingsError(f"invalid setting {name}: not valid JSON ({exc})") from exc
        return cls.model_validate(values)


_JSON_SETTINGS = ("OVERDRIVE_RANKING_WEIGHTS", "OVERDRIVE_SIGNAL_WEIGHTS", "OVERDRIVE_RATE_LIMITS")


class SettingsError(ValueError):
    """A setting is invalid; `str()` is one line naming it, for start-up to print."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"OVERDRIVE_CONFIG: cannot read {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SettingsError(f"OVERDRIVE_CONFIG: {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"OVERDRIVE_CONFIG: {path} must hold an object of settings")
    return data


def _file_to_aliases(values: dict[str, Any]) -> dict[str, Any]:
    """Config files use field names (`ranking_weights`) or env names (`SERVICE_PORT`)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        field = Settings.model_fields.get(key)
        alias = field.validation_alias.choices[0] if field is not None else key  # type: ignore[union-attr]
        out[alias] = value
    return out


def describe_error(exc: ValidationError) -> str:
    """One line naming the first invalid setting by its environment variable."""
    err = exc.errors()[0]
    if not err["loc"]:  # a rule across settings: its message names them
        return str(err["msg"]).removeprefix("Value error, ")
    name = str(err["loc"][0])
    if (field := Settings.model_fields.get(name)) is not None:
        name = field.validation_alias.choices[0]  # type: ignore[union-attr]
    return f"invalid setting {name}: {err['msg']}"
