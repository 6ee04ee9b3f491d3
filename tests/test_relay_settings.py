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
    token = settings.destinations["iapt"].auth.token
    assert token is not None
    assert token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings.destinations["iapt"].auth)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[server]\nport = 70000\n", "server.port"),
        ("[delivery]\nmax_atempts = 3\n", "delivery.max_atempts"),
        ('[referrals]\ndestination = "nowhere"\n', "nowhere"),
        ('[destinations.iapt.auth]\nkind = "bearer"\n', "token"),
        ('client_cert = "c.pem"\n', "client_cert and client_key go together"),
        ('[[auth.api_keys]]\nid = "a"\nhash = "plain"\nscopes = ["admin"]\n', "auth.api_keys"),
        (
            '[[auth.api_keys]]\nid = "a"\nhash = "scrypt$x"\nscopes = ["everything"]\n',
            "auth.api_keys",
        ),
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
    (its consent register included), once its placeholder key and CA files are left aside."""
    settings = load_settings(EXAMPLE, env={}, check_files=False)
    assert set(settings.destinations) >= {"iapt"}
    assert settings.auth.api_keys
    assert settings.outcomes.routes
    app = create_app(settings)
    assert app.state.relay.consent is not None


# --- environment overrides: typed by the field they set -----------------------------------

_BEARER = _MINIMAL + '[destinations.iapt.auth]\nkind = "bearer"\ntoken = "from-the-file"\n'


@pytest.mark.parametrize("raw", ["20260101", "true", "0x1F", "1e3", "[1]", '"quoted"', " 07 "])
def test_environment_secret_stays_the_exact_string(tmp_path: Path, raw: str) -> None:
    """A token or client secret from the environment is that exact string, whatever it looks
    like (a number, a boolean, hex, JSON): only the field's type decides how a value parses."""
    path = tmp_path / "relay.toml"
    path.write_text(
        _BEARER + '[destinations.other]\nbase_url = "https://other.example.nhs.uk/fhir"\n'
        '[destinations.other.auth]\nkind = "client_credentials"\n'
        'token_url = "https://other.example.nhs.uk/token"\nclient_id = "relay"\n'
        'client_secret = "from-the-file"\n'
    )
    env = {
        "FHIR_IAPT_DESTINATIONS__IAPT__AUTH__TOKEN": raw,
        "fhir_iapt_destinations__other__auth__client_secret": raw,
    }
    settings = load_settings(path, env=env)
    token = settings.destinations["iapt"].auth.token
    secret = settings.destinations["other"].auth.client_secret
    assert token is not None
    assert secret is not None
    assert token.get_secret_value() == raw
    assert secret.get_secret_value() == raw
    assert raw.strip() not in repr(settings.destinations["iapt"].auth)
    assert raw.strip() not in repr(settings.destinations["other"].auth)


def test_environment_numbers_booleans_and_lists_parse_by_field(tmp_path: Path) -> None:
    """Numeric and boolean fields take their text form; list fields take JSON."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL)
    register = tmp_path / "consent.csv"
    register.write_text("nhs_number,consent_share_outcomes\n")
    env = {
        "FHIR_IAPT_SERVER__PORT": "8081",
        "FHIR_IAPT_INTAKE__WARM_UP": "false",
        "FHIR_IAPT_DELIVERY__BACKOFF_INITIAL": "0.5",
        "FHIR_IAPT_INTAKE__CONSENT_REGISTERS": f'["{register}"]',
        "FHIR_IAPT_SERVER__HOST": "0.0.0.0",  # noqa: S104 - a value, nothing listens
    }
    settings = load_settings(path, env=env)
    assert settings.server.port == 8081
    assert settings.intake.warm_up is False
    assert settings.delivery.backoff_initial == 0.5
    assert settings.intake.consent_registers == (register,)
    assert settings.server.host == env["FHIR_IAPT_SERVER__HOST"]


def test_environment_mistake_names_the_variable_and_key(tmp_path: Path) -> None:
    """A bad override is a ConfigError naming the variable and the dotted key, not the file."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"FHIR_IAPT_SERVER__PORT": "eighty"})
    rendered = " ".join(i.to_fhir()["diagnostics"] for i in info.value.issues)
    assert "FHIR_IAPT_SERVER__PORT" in rendered
    assert "server.port" in rendered
    assert "eighty" not in rendered


def test_environment_list_that_is_not_json_is_a_config_error(tmp_path: Path) -> None:
    """A list override that is not JSON is a ConfigError naming the variable."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"FHIR_IAPT_INTAKE__CONSENT_REGISTERS": "[a.csv"})
    rendered = " ".join(i.to_fhir()["diagnostics"] for i in info.value.issues)
    assert "FHIR_IAPT_INTAKE__CONSENT_REGISTERS" in rendered
    assert "JSON" in rendered


def test_library_never_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the env mapping handed to load_settings counts, never os.environ."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL)
    monkeypatch.setenv("FHIR_IAPT_SERVER__PORT", "9999")
    assert load_settings(path).server.port == 8080
    assert load_settings(path, env={}).server.port == 8080
    assert load_settings(path, env={"FHIR_IAPT_SERVER__PORT": "9090"}).server.port == 9090


# --- files the settings name ----------------------------------------------------------------


def test_missing_files_are_config_errors_naming_file_and_field(tmp_path: Path) -> None:
    """Every file the settings name must exist and be readable when they load: each one that
    is not is reported with the settings file and its dotted key."""
    path = tmp_path / "relay.toml"
    path.write_text(
        '[intake]\nconsent_registers = ["missing-consent.csv"]\n'
        "[destinations.iapt]\n"
        'base_url = "https://iapt.example.nhs.uk/fhir"\nca_bundle = "missing-ca.pem"\n'
        "[destinations.iapt.auth]\n"
        'kind = "smart_backend_services"\ntoken_url = "https://iapt.example.nhs.uk/token"\n'
        'client_id = "relay"\nkid = "k1"\nprivate_key_file = "keys/missing.pem"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    rendered = [i.to_fhir()["diagnostics"] for i in info.value.issues]
    for field in (
        "intake.consent_registers.0",
        "destinations.iapt.ca_bundle",
        "destinations.iapt.auth.private_key_file",
    ):
        assert any(field in r and "relay.toml" in r for r in rendered), (field, rendered)


def test_unusable_private_key_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    """A key file that exists but holds no usable PEM key is reported at load, with its key."""
    path = tmp_path / "relay.toml"
    (tmp_path / "key.pem").write_text("not a key\n")
    path.write_text(
        _MINIMAL + "[destinations.iapt.auth]\n"
        'kind = "smart_backend_services"\ntoken_url = "https://iapt.example.nhs.uk/token"\n'
        'client_id = "relay"\nkid = "k1"\nprivate_key_file = "key.pem"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    rendered = " ".join(i.to_fhir()["diagnostics"] for i in info.value.issues)
    assert "relay.toml" in rendered
    assert "destinations.iapt.auth.private_key_file" in rendered


def test_example_config_names_only_its_placeholder_files_as_missing() -> None:
    """Checked, examples/relay.toml fails on exactly the files a site must supply (the SMART
    private key and the private CA bundle); its consent register and mappings are usable."""
    with pytest.raises(ConfigError) as info:
        load_settings(EXAMPLE, env={})
    fields = {i.location.field for i in info.value.issues if i.location is not None}
    assert fields == {
        "destinations.diabetes.auth.private_key_file",
        "destinations.respiratory.ca_bundle",
    }


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e3"])
def test_a_bad_input_limit_variable_stops_the_relay_at_load(tmp_path: Path, value: str) -> None:
    """FHIR_IAPT_MAX_DEPTH that is not a whole number in range is FI805 naming the variable
    when the settings load, not a 503 about the consent register on every POST."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, env={"FHIR_IAPT_MAX_DEPTH": value}, check_files=False)
    assert refused.value.error_code == "FI805"
    assert "FHIR_IAPT_MAX_DEPTH" in str(refused.value)
    assert load_settings(path, env={"FHIR_IAPT_MAX_DEPTH": "50"}, check_files=False)


def test_store_url_selects_postgresql_from_the_file_or_the_environment(tmp_path: Path) -> None:
    """[store] url (or FHIR_IAPT_STORE__URL) is read as a secret: its value is there for the
    outbox, never in the settings' repr; without it the outbox is the SQLite file."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL + '\n[store]\nurl = "postgresql://relay:pw1@db.example:5432/a"\n')
    from_file = load_settings(path)
    assert from_file.store.url is not None
    assert from_file.store.url.get_secret_value() == "postgresql://relay:pw1@db.example:5432/a"
    assert "pw1" not in repr(from_file)
    env = {"FHIR_IAPT_STORE__URL": "postgres://relay:pw2@db2.example/b"}
    from_env = load_settings(path, env=env)
    assert from_env.store.url is not None
    assert from_env.store.url.get_secret_value() == "postgres://relay:pw2@db2.example/b"
    plain = tmp_path / "plain.toml"
    plain.write_text(_MINIMAL)
    assert load_settings(plain).store.url is None


@pytest.mark.parametrize(
    "url", ["sqlite:///relay.db", "mysql://relay:Hidden9@db/outbox", "host=db password=Hidden9"]
)
def test_a_store_url_that_is_not_postgresql_names_the_key_not_the_value(
    tmp_path: Path, url: str
) -> None:
    """Only a postgresql:// URL is a store url; anything else is a ConfigError naming
    store.url, without quoting the value (it may hold a password)."""
    path = tmp_path / "relay.toml"
    path.write_text(_MINIMAL + f'\n[store]\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    rendered = str(info.value.to_operation_outcome())
    assert "store.url" in rendered
    assert "postgresql://" in rendered
    assert "Hidden9" not in rendered
    assert url not in rendered
