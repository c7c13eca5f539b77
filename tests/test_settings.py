"""Settings: each read from its one variable, checked when built; the README lists them all."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from exchange import settings
from exchange.errors import ConfigError
from exchange.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_variables() -> list[str]:
    """The variables named in the first column of the README's configuration table."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])]


def test_the_readme_table_lists_every_setting_once():
    listed = readme_variables()
    assert len(listed) == len(set(listed)), sorted(
        name for name in listed if listed.count(name) > 1
    )
    assert set(listed) == set(settings.environment_names().values())


def test_each_variable_names_one_setting():
    names = list(settings.environment_names().values())
    assert len(names) == len(set(names))


def test_an_empty_environment_gives_the_defaults():
    assert settings.load({}) == Settings()


def test_the_environment_is_parsed_into_each_fields_type():
    loaded = settings.load(
        {
            "API_PORT": "9000",
            "ENGINE_TIMEOUT_S": "0.5",
            "EXCHANGE_AUTH": "dev",
            "HISTORY_COMPRESS_AFTER_DAYS": "0",
            "EXCHANGE_SYSTEM_SERVERS": "0",
            "EXCHANGE_MARKETS_FILE": "",  # empty: unset
            "UNRELATED": "x",
        }
    )
    assert loaded == attrs.evolve(
        Settings(),
        api_port=9000,
        engine_timeout_s=0.5,
        auth_mode="dev",
        history_compress_after_days=0,
        system_servers=False,
    )
    assert settings.given({"REDIS_URL": "redis://h/1", "DATABASE_URL": ""}) == {
        "redis_url": "redis://h/1"
    }


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"API_PORT": "80a"}, "API_PORT must be an integer, not '80a'"),
        (
            {"ENGINE_SNAPSHOT_EVERY_S": "soon"},
            "ENGINE_SNAPSHOT_EVERY_S must be a number, not 'soon'",
        ),
        ({"DB_QUERY_TIMEOUT_S": "0"}, "DB_QUERY_TIMEOUT_S must be above 0, not 0.0"),
        ({"DB_WRITE_TIMEOUT_S": "-1"}, "DB_WRITE_TIMEOUT_S must be above 0, not -1.0"),
        ({"EXCHANGE_AUTH": "none"}, "EXCHANGE_AUTH must be 'apikey' or 'dev', not 'none'"),
        ({"API_WORKERS": "0"}, "API_WORKERS must be at least 1"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of DEBUG, INFO"),
        (
            {"EXCHANGE_REDIS_APPENDFSYNC": "never"},
            "EXCHANGE_REDIS_APPENDFSYNC must be 'everysec' or 'always', not 'never'",
        ),
    ],
)
def test_a_bad_value_is_refused_with_its_variable(environ, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings.load(environ)


def test_values_given_in_code_are_checked_too():
    with pytest.raises(ConfigError, match="DB_QUERY_TIMEOUT_S must be above 0"):
        Settings(db_query_timeout_s=0)
    with pytest.raises(ConfigError, match="EXCHANGE_AUTH must be"):
        Settings(auth_mode="open")
