"""Settings: spec defaults, env overrides, config files (JSON/TOML), one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from overdrive.config import Settings, SettingsError, describe_error

SPEC_RANKING_WEIGHTS = {
    "content_based": 0.3,
    "collaborative": 0.25,
    "real_time": 0.25,
    "user_interests": 0.1,
    "freshness": 0.1,
}
# The spec's table and Overdrive's own `context` and `two_tower` (0 until it earns a weight) components.
DEFAULT_RANKING_WEIGHTS = {**SPEC_RANKING_WEIGHTS, "context": 0.2, "two_tower": 0.0}
SPEC_SIGNAL_WEIGHTS = {
    "view": 1.0,
    "like": 2.0,
    "comment": 3.0,
    "share": 4.0,
    "follow": 5.0,
    "bookmark": 2.5,
    "click": 1.5,
    "scroll": 0.5,
    "dwell": 1.2,
    "completion": 2.8,
}


@pytest.fixture(autouse=True)
def _clean_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's / CI's exported settings out of these tests."""
    for field in Settings.model_fields.values():
        for name in field.validation_alias.choices:  # type: ignore[union-attr]
            monkeypatch.delenv(str(name), raising=False)
    monkeypatch.delenv("OVERDRIVE_CONFIG", raising=False)


def error_line(environ: dict[str, str]) -> str:
    """The one-line message start-up would print for `environ` (as overdrive.app does)."""
    try:
        Settings.load(environ)
    except ValidationError as exc:
        return describe_error(exc)
    except SettingsError as exc:
        return str(exc)
    raise AssertionError(f"settings {environ} were accepted")


# ----------------------------------------------------------------------------------- defaults


def test_ranking_weight_defaults_are_the_spec_table_and_context() -> None:
    assert Settings.load({}).ranking_weights == DEFAULT_RANKING_WEIGHTS


def test_signal_weight_defaults_include_the_spec_table() -> None:
    weights = Settings.load({}).signal_weights
    assert {k: weights[k] for k in SPEC_SIGNAL_WEIGHTS} == SPEC_SIGNAL_WEIGHTS
    # Anything beyond the spec's ten is negative feedback.
    assert all(w < 0 for k, w in weights.items() if k not in SPEC_SIGNAL_WEIGHTS)


def test_spec_core_defaults() -> None:
    s = Settings.load({})
    assert s.service_port == 8000
    assert s.redis_url is None and s.kafka_bootstrap_servers is None
    assert (s.user_embedding_dim, s.item_embedding_dim, s.n_factors) == (128, 128, 100)
    assert (s.max_workers, s.signal_buffer_size) == (8, 10000)


def test_load_reads_only_the_environ_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Settings.load(environ)` must not fall back to the process environment.

    Otherwise a CI machine with REDIS_URL or SERVICE_PORT exported changes every test's settings.
    """
    monkeypatch.setenv("SERVICE_PORT", "1234")
    monkeypatch.setenv("OVERDRIVE_LOG_LEVEL", "debug")
    s = Settings.load({})
    assert s.service_port == 8000
    assert s.log_level == "info"


def test_load_without_environ_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_PORT", "1234")
    monkeypatch.setenv("OVERDRIVE_RANKING_WEIGHTS", '{"freshness": 0.5}')
    s = Settings.load()
    assert s.service_port == 1234
    assert s.ranking_weights["freshness"] == 0.5


# ------------------------------------------------------------------------------- env overrides


def test_ranking_weights_env_override_merges_with_defaults() -> None:
    s = Settings.load({"OVERDRIVE_RANKING_WEIGHTS": '{"freshness": 0.4, "collaborative": 0}'})
    assert s.ranking_weights == {**DEFAULT_RANKING_WEIGHTS, "freshness": 0.4, "collaborative": 0.0}


def test_signal_weights_env_override_merges_with_defaults() -> None:
    s = Settings.load({"OVERDRIVE_SIGNAL_WEIGHTS": '{"like": 3.5, "skip": -1}'})
    assert s.signal_weights["like"] == 3.5
    assert s.signal_weights["skip"] == -1.0
    assert s.signal_weights["share"] == 4.0


def test_scalar_env_overrides_are_typed() -> None:
    s = Settings.load(
        {
            "SERVICE_PORT": "9001",
            "REDIS_URL": "redis://localhost:6379/0",
            "OVERDRIVE_LOG_LEVEL": "WARNING",
            "OVERDRIVE_ENGAGEMENT_HALF_LIFE_HOURS": "2.5",
            "MODEL_CACHE_DIR": "/tmp/models",
        }
    )
    assert s.service_port == 9001
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.log_level == "warning"
    assert s.engagement_half_life_hours == 2.5
    assert s.model_cache_dir == Path("/tmp/models")


def test_fold_in_on_demand_is_the_default_where_replicas_share_a_kafka_topic() -> None:
    assert not Settings.load({}).folds_in_on_demand
    assert not Settings.load({"REDIS_URL": "redis://localhost:6379/0"}).folds_in_on_demand
    kafka = {"REDIS_URL": "redis://localhost:6379/0", "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092"}
    assert Settings.load(kafka).folds_in_on_demand
    assert not Settings.load({**kafka, "OVERDRIVE_FOLD_IN_ON_DEMAND": "false"}).folds_in_on_demand
    assert Settings.load({"OVERDRIVE_FOLD_IN_ON_DEMAND": "true"}).folds_in_on_demand


def test_the_api_retrains_in_its_own_process_only_on_a_thread_here() -> None:
    assert not Settings.load({}).retrains_in_this_process  # embedded: a child process per retrain
    assert Settings.load({"OVERDRIVE_RETRAIN_IN": "thread"}).retrains_in_this_process
    scaled = {"REDIS_URL": "redis://localhost:6379/0"}
    assert Settings.load(scaled).retrains_in_this_process
    assert not Settings.load({**scaled, "OVERDRIVE_TRAINER": "external"}).retrains_in_this_process


# -------------------------------------------------------------------------------- config files


def test_json_config_file(tmp_path: Path) -> None:
    path = tmp_path / "overdrive.json"
    path.write_text(json.dumps({"ranking_weights": {"real_time": 0.6}, "SERVICE_PORT": 7000, "n_factors": 32}))
    s = Settings.load({"OVERDRIVE_CONFIG": str(path)})
    assert s.ranking_weights == {**DEFAULT_RANKING_WEIGHTS, "real_time": 0.6}
    assert s.service_port == 7000
    assert s.n_factors == 32


def test_toml_config_file(tmp_path: Path) -> None:
    path = tmp_path / "overdrive.toml"
    path.write_text(
        'service_port = 7001\n'
        'OVERDRIVE_LOG_LEVEL = "debug"\n'
        "[ranking_weights]\n"
        "content_based = 0.0\n"
        "user_interests = 0.5\n"
        "[signal_weights]\n"
        "view = 0.25\n"
    )
    s = Settings.load({"OVERDRIVE_CONFIG": str(path)})
    assert s.service_port == 7001
    assert s.log_level == "debug"
    assert s.ranking_weights == {**DEFAULT_RANKING_WEIGHTS, "content_based": 0.0, "user_interests": 0.5}
    assert s.signal_weights["view"] == 0.25


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_environment_wins_over_config_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"overdrive{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"SERVICE_PORT": 7000, "n_factors": 32, "ranking_weights": {"freshness": 0.9}}))
    else:
        path.write_text("SERVICE_PORT = 7000\nn_factors = 32\n[ranking_weights]\nfreshness = 0.9\n")
    s = Settings.load(
        {"OVERDRIVE_CONFIG": str(path), "SERVICE_PORT": "7100", "OVERDRIVE_RANKING_WEIGHTS": '{"freshness": 0.2}'}
    )
    assert s.service_port == 7100
    assert s.ranking_weights["freshness"] == 0.2
    assert s.n_factors == 32  # only in the file: kept


def test_missing_config_file_is_a_one_line_error(tmp_path: Path) -> None:
    line = error_line({"OVERDRIVE_CONFIG": str(tmp_path / "nope.toml")})
    assert "OVERDRIVE_CONFIG" in line and "\n" not in line


@pytest.mark.parametrize(("name", "body"), [("bad.toml", "service_port = = 3\n"), ("bad.json", "{not json")])
def test_malformed_config_file_is_a_one_line_error(tmp_path: Path, name: str, body: str) -> None:
    path = tmp_path / name
    path.write_text(body)
    line = error_line({"OVERDRIVE_CONFIG": str(path)})
    assert "OVERDRIVE_CONFIG" in line and "\n" not in line
    assert str(path) in line


def test_config_file_must_hold_an_object(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(SettingsError, match="OVERDRIVE_CONFIG"):
        Settings.load({"OVERDRIVE_CONFIG": str(path)})


# ------------------------------------------------------------------------------ invalid values


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"SERVICE_PORT": "abc"}, "SERVICE_PORT"),
        ({"SERVICE_PORT": "0"}, "SERVICE_PORT"),
        ({"SERVICE_PORT": "70000"}, "SERVICE_PORT"),
        ({"N_FACTORS": "-1"}, "N_FACTORS"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"OVERDRIVE_LOG_LEVEL": "loud"}, "OVERDRIVE_LOG_LEVEL"),
        ({"OVERDRIVE_ENGAGEMENT_HALF_LIFE_HOURS": "0"}, "OVERDRIVE_ENGAGEMENT_HALF_LIFE_HOURS"),
        ({"OVERDRIVE_RANKING_WEIGHTS": "{not json"}, "OVERDRIVE_RANKING_WEIGHTS"),
        ({"OVERDRIVE_RANKING_WEIGHTS": "[0.3, 0.7]"}, "OVERDRIVE_RANKING_WEIGHTS"),
        ({"OVERDRIVE_RANKING_WEIGHTS": '{"freshness": "high"}'}, "OVERDRIVE_RANKING_WEIGHTS"),
        ({"OVERDRIVE_RANKING_WEIGHTS": '{"freshness": -0.1}'}, "OVERDRIVE_RANKING_WEIGHTS"),
        ({"OVERDRIVE_RANKING_WEIGHTS": '{"freshness": NaN}'}, "OVERDRIVE_RANKING_WEIGHTS"),
        ({"OVERDRIVE_RANKING_WEIGHTS": '{"freshness": Infinity}'}, "OVERDRIVE_RANKING_WEIGHTS"),
        (
            {"OVERDRIVE_RANKING_WEIGHTS": json.dumps({k: 0 for k in DEFAULT_RANKING_WEIGHTS})},
            "OVERDRIVE_RANKING_WEIGHTS",
        ),
        ({"OVERDRIVE_SIGNAL_WEIGHTS": "{oops"}, "OVERDRIVE_SIGNAL_WEIGHTS"),
        ({"OVERDRIVE_SIGNAL_WEIGHTS": '{"like": NaN}'}, "OVERDRIVE_SIGNAL_WEIGHTS"),
        ({"OVERDRIVE_EXCLUDE_SIGNAL_TYPES": "view,poke"}, "OVERDRIVE_EXCLUDE_SIGNAL_TYPES"),
        ({"OVERDRIVE_DIVERSITY_LAMBDA": "1.5"}, "OVERDRIVE_DIVERSITY_LAMBDA"),
        ({"OVERDRIVE_MAX_PER_AUTHOR": "-1"}, "OVERDRIVE_MAX_PER_AUTHOR"),
    ],
)
def test_invalid_values_give_one_line_naming_the_env_var(environ: dict[str, str], names: str) -> None:
    line = error_line(environ)
    assert "\n" not in line
    assert line.startswith(f"invalid setting {names}:")


def test_unknown_ranking_weight_name_is_rejected_and_named() -> None:
    line = error_line({"OVERDRIVE_RANKING_WEIGHTS": '{"freshness": 0.2, "popularity": 0.5}'})
    assert line.startswith("invalid setting OVERDRIVE_RANKING_WEIGHTS:")
    assert "popularity" in line and "\n" not in line


def test_unknown_signal_type_is_rejected_and_named() -> None:
    line = error_line({"OVERDRIVE_SIGNAL_WEIGHTS": '{"poke": 1}'})
    assert line.startswith("invalid setting OVERDRIVE_SIGNAL_WEIGHTS:")
    assert "poke" in line


def test_invalid_value_in_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[ranking_weights]\nvirality = 1.0\n")
    line = error_line({"OVERDRIVE_CONFIG": str(path)})
    assert "OVERDRIVE_RANKING_WEIGHTS" in line and "virality" in line and "\n" not in line


def test_settings_are_frozen() -> None:
    s = Settings.load({})
    with pytest.raises(ValidationError):
        s.service_port = 1  # type: ignore[misc]


def test_feed_hygiene_settings() -> None:
    assert Settings.load({}).excluding_signal_types >= {"view", "like", "hide", "dislike", "report"}
    assert "scroll" not in Settings.load({}).excluding_signal_types
    assert Settings.load({"OVERDRIVE_EXCLUDE_SIGNAL_TYPES": ""}).excluding_signal_types == frozenset()
    assert Settings.load({"OVERDRIVE_EXCLUDE_SIGNAL_TYPES": " hide , report"}).excluding_signal_types == {"hide", "report"}
