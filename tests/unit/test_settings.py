"""`Settings.from_env`: the one place the environment and the command line are read."""

from __future__ import annotations

import attrs
import pytest

from audit.container import build_container
from audit.settings import DEFAULT_DATABASE_URL, Settings, SettingsError


def test_defaults_hold_without_any_variable() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.storage == "sql"
    assert settings.max_body_bytes == 5 * 1024 * 1024


def test_variables_are_read_and_parsed() -> None:
    settings = Settings.from_env(
        {
            "AUDIT_DATABASE_URL": "memory://",
            "AUDIT_MAX_BODY_BYTES": "1234",
            "AUDIT_LOG_ORIGIN": "example.org/log",
            "AUDIT_SIGNING_KEY_FILE": "/keys/k",
            "AUDIT_SIGNING_KEY": "c2VlZA==",
            "AUDIT_CHECKPOINT_DIR": "/ship",
        }
    )
    assert settings.storage == "memory"
    assert settings.max_body_bytes == 1234
    assert settings.log_origin == "example.org/log"
    assert settings.signing_key_file == "/keys/k"
    assert settings.signing_key == "c2VlZA=="
    assert settings.checkpoint_dir == "/ship"


def test_an_empty_variable_counts_as_unset() -> None:
    assert Settings.from_env({"AUDIT_MAX_BODY_BYTES": "", "AUDIT_SIGNING_KEY": ""}) == Settings()


def test_the_command_line_wins_and_none_means_not_given() -> None:
    env = {"AUDIT_DATABASE_URL": "sqlite:///env.db", "AUDIT_MAX_BODY_BYTES": "10"}
    assert Settings.from_env(env, database_url="memory://").database_url == "memory://"
    assert Settings.from_env(env, database_url=None).database_url == "sqlite:///env.db"


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
def test_a_bad_value_is_one_clear_error(value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"AUDIT_MAX_BODY_BYTES": value})
    assert "max_body_bytes" in str(raised.value) or "AUDIT_MAX_BODY_BYTES" in str(raised.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Settings().database_url = "x"  # type: ignore[misc]


def test_the_container_sees_every_setting_in_its_config() -> None:
    settings = Settings(database_url="memory://", max_body_bytes=77, log_origin="o/p")
    container = build_container(settings)
    assert container.settings() is settings
    assert container.config.max_body_bytes() == 77
    assert container.config.storage() == "memory"
    assert container.config() == settings.as_config()
