"""Relay settings: TOML file, FHIR_IAPT_* overrides, located ConfigErrors, the example config."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_iapt.errors import ConfigError
from fhir_iapt.relay.app import create_app
from fhir_iapt.relay.settings import load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "relay.toml"

_MINIMAL = """
[destinations.iapt]
base_url = "https://iapt.example.nhs.uk/fhir"
"""


def test_minimal_file_gets_embedded_defaults(tmp_path: Path) -> None:
    """One destination is all a file needs; the outbox lives beside the file by default."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL)
    settings = load_settings(path)
    assert settings.referrals.destination == "iapt"
    assert settings.db_path == tmp_path / "relay-data" / "outbox.sqlite3"
    assert settings.limits.max_body_bytes == 10 * 1024 * 1024
    assert settings.delivery.max_attempts == 8


def test_environment_overrides_single_values(tmp_path: Path) -> None:
    """FHIR_IAPT_<SECTION>__<KEY> overrides the file; values parse as TOML when they can."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL + "\n[server]\nport = 8080\n")
    env = {
        "FHIR_IAPT_SERVER__PORT": "9090",
        "FHIR_IAPT_DESTINATIONS__IAPT__AUTH__KIND": "bearer",
        "FHIR_IAPT_DESTINATIONS__IAPT__AUTH__TOKEN": "s3cret",
        "UNRELATED": "x",
    }
    settings = load_settings(path, env=env)
    assert settings.server.port == 9090
    assert settings.destinations["iapt"].auth.token == "s3cret"
    assert "s3cret" not in repr(settings.destinations["iapt"].auth)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[server]\nport = 70000\n", "server.port"),
        ("[delivery]\nmax_atempts = 3\n", "delivery.max_atempts"),
        ('[referrals]\ndestination = "nowhere"\n', "nowhere"),
        ('[destinations.iapt.auth]\nkind = "bearer"\n', "token"),
        ('[[auth.api_keys]]\nid = "a"\nhash = "plain"\nscopes = ["admin"]\n', "auth.api_keys"),
        ('[[auth.api_keys]]\nid = "a"\nhash = "scrypt$x"\nscopes = ["everything"]\n',
         "auth.api_keys"),
    ],
)
def test_mistakes_are_config_errors_naming_the_key(tmp_path: Path, text: str, field: str) -> None:
    """A bad value, an unknown key or a dangling route is a ConfigError that names it."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL + text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    rendered = " ".join(i.to_fhir()["diagnostics"] for i in info.value.issues)
    assert field in rendered
    assert "relay.toml" in rendered


def test_not_toml_is_a_config_error(tmp_path: Path) -> None:
    """A file that is not TOML is reported with its name, not a traceback."""
    path = tmp_path / "broken.toml"
    path.write_text("[server\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


def test_example_config_loads() -> None:
    """examples/relay.toml, shown in the README, is a complete valid config an app builds from
    (its consent register included)."""
    settings = load_settings(EXAMPLE, env={})
    assert set(settings.destinations) >= {"iapt"}
    assert settings.auth.api_keys
    assert settings.outcomes.routes
    app = create_app(settings)
    assert app.state.relay.consent is not None
