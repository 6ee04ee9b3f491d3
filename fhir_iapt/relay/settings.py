"""The relay's settings: one frozen, typed object read once from TOML and the environment.

Built on pydantic-settings: :class:`RelaySettings` is a ``BaseSettings`` whose sources are the
TOML file (``fhir-iapt serve --config relay.toml``) and environment variables named
``FHIR_IAPT_<SECTION>__<KEY>`` (``__`` between levels, any case), which override single values,
e.g. ``FHIR_IAPT_SERVER__PORT=8081`` or ``FHIR_IAPT_DESTINATIONS__IAPT__AUTH__TOKEN=...``. An
override is read as its field's type says: a string field takes the exact text (a token
``20260101`` stays that string), numbers and booleans their text form, lists and tables JSON
(``FHIR_IAPT_INTAKE__CONSENT_REGISTERS='["a.csv"]'``). Secrets are ``SecretStr``.

Every section but ``[destinations]`` has working defaults: a file that names one destination
starts a relay that stores its outbox in ``relay-data/outbox.sqlite3`` beside the file and needs
no other service. What a relay cannot guess (where to deliver, who may call it) is checked when
the settings load, and so is every file they name (keys, certificates, consent registers,
mappings: :func:`check_settings_files`): a mistake is a :class:`~fhir_iapt.errors.ConfigError`
naming the file (or environment variable) and the dotted key, never a traceback.

The library never reads the environment itself: :func:`load_settings` is handed the mapping
(the ``serve`` command passes ``os.environ``).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from fhir_iapt.errors import ConfigError, Issue, Location
from fhir_iapt.limits import Limits

ENV_PREFIX = "FHIR_IAPT_"
ENV_DELIMITER = "__"
Scope = Literal["referrals:write", "outcomes:write", "messages:read", "admin"]
SCOPES: tuple[Scope, ...] = ("referrals:write", "outcomes:write", "messages:read", "admin")
_NAME = r"^[a-z][a-z0-9_]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Frozen):
    """Where uvicorn listens and how long a graceful shutdown may take."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    #: Seconds in-flight deliveries get to finish on shutdown before they go back to the queue.
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 10.0
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"


class StoreSettings(_Frozen):
    """The durable outbox: one SQLite file (WAL) in ``data_dir``, or a PostgreSQL database
    (``url``) that several relay processes share.

    ``data_dir`` also holds the referral ledger (unless ``[ledger] path``) and the shape-check
    cache, with either store. ``url`` (``postgresql://user:password@host:5432/dbname``, or the
    password from ``PGPASSWORD`` / ``~/.pgpass``; any libpq parameter as a query, e.g.
    ``?sslmode=verify-full``) is a secret: it is never logged and errors name only its host,
    port and database. The relay creates and migrates its tables there itself at start.
    """

    data_dir: Path = Path("relay-data")
    #: ``full`` survives power loss; ``normal`` survives a killed relay only (SQLite: WAL's
    #: ``synchronous=NORMAL``; PostgreSQL: ``synchronous_commit=off``).
    synchronous: Literal["full", "normal"] = "full"
    url: SecretStr | None = None
    #: PostgreSQL connections each relay process keeps at most (intake, delivery, ledger feed).
    pool_size: Annotated[int, Field(ge=2, le=100)] = 10

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, url: SecretStr | None) -> SecretStr | None:
        # The message never quotes the value: it may hold a password.
        if url is not None and not url.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError(
                "the store url must be a postgresql:// URL (leave it out for the SQLite file"
                " in data_dir)"
            )
        return url


class LedgerSettings(_Frozen):
    """The referral ledger (:mod:`fhir_iapt.ledger`): every referral accepted into the outbox
    is recorded there, for ``fhir-iapt outcomes`` to match the data set's pathways to.
    ``path`` unset: ``<data_dir>/ledger.sqlite``; relative in a file: to the file's folder."""

    path: Path | None = None


class LimitsSettings(_Frozen):
    """Request limits."""

    max_body_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024


def _bundled_mappings() -> tuple[str, ...]:
    from fhir_iapt.mapping import bundled_mappings

    return tuple(bundled_mappings())


def is_mapping_path(entry: str) -> bool:
    """Whether an ``[intake] mappings`` entry is a file (else a bundled name), as
    :func:`fhir_iapt.mapping.load_mapping` decides."""
    return entry.endswith((".yaml", ".yml")) or os.sep in entry or "/" in entry


class IntakeSettings(_Frozen):
    """How much of the real validator (R4 + profiles) runs on what the relay accepts.

    Every record's values are always checked at the map stage. The real validator checks the
    *shape* a mapping produces: ``once`` on the first bundle of each mapping in this process
    (a relay process is one long run, as a CLI run is; a pass is remembered in
    ``<data_dir>/shape-checks``, the same kind of shape cache the CLI keeps, so a restart with
    unchanged mappings, profiles and code skips it), ``request`` on the first bundle of every
    request, ``full`` on every bundle (slow), ``none`` never (values are still checked).
    ``warm_up`` builds the validator at start; ``/readyz`` says ready only after it.
    """

    validation: Literal["none", "once", "request", "full"] = "once"
    warm_up: bool = True
    #: CSV files of recorded consent to share outcomes (``nhs_number``,
    #: ``consent_share_outcomes``, optionally the referral identifier), read at start: a
    #: QuestionnaireResponse carries no consent, so without a register none is sent.
    consent_registers: tuple[Path, ...] = ()
    #: The mappings a request may name (``?mapping=NAME``): bundled mapping names, or mapping
    #: files (relative to the settings file), each called by its ``name``. Nothing else loads.
    mappings: tuple[str, ...] = Field(default_factory=_bundled_mappings)


class DeliverySettings(_Frozen):
    """The outbox worker: how often, how many at once, how many tries, how long between."""

    #: Outbox attempts before a message becomes a dead letter (each attempt also retries
    #: in-process with the client's policy, ``client_attempts`` times).
    max_attempts: Annotated[int, Field(ge=1)] = 8
    #: Seconds before the 2nd outbox attempt; doubled each time, capped at ``backoff_max``.
    backoff_initial: Annotated[float, Field(ge=0)] = 5.0
    backoff_max: Annotated[float, Field(ge=0)] = 900.0
    #: The client's own quick retries within one outbox attempt.
    client_attempts: Annotated[int, Field(ge=1)] = 2
    client_backoff: Annotated[float, Field(ge=0)] = 0.2
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    #: Seconds a claimed message stays leased; a crash returns it to the queue after this.
    lease_seconds: Annotated[float, Field(gt=0)] = 120.0
    #: Seconds between outbox polls when nothing new arrived.
    poll_interval: Annotated[float, Field(gt=0)] = 1.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0


class DestinationAuth(_Frozen):
    """How the relay authenticates to a destination (the client's auth modes).

    ``none``; ``bearer`` (a fixed ``token``); ``client_credentials`` (OAuth2: ``token_url``,
    ``client_id``, ``client_secret``, optional ``scope``); ``smart_backend_services`` (SMART
    Backend Services: ``token_url``, ``client_id``, ``private_key_file`` (PEM), ``kid``,
    ``alg``, optional ``scope``). Secrets can come from the environment instead of the file,
    e.g. ``FHIR_IAPT_DESTINATIONS__IAPT__AUTH__CLIENT_SECRET``.
    """

    kind: Literal["none", "bearer", "client_credentials", "smart_backend_services"] = "none"
    token: SecretStr | None = None
    token_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    private_key_file: Path | None = None
    kid: str | None = None
    alg: Literal["RS384", "ES384"] = "RS384"
    scope: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> DestinationAuth:
        needs: dict[str, tuple[str, ...]] = {
            "bearer": ("token",),
            "client_credentials": ("token_url", "client_id", "client_secret"),
            "smart_backend_services": ("token_url", "client_id", "private_key_file", "kid"),
        }
        missing = [k for k in needs.get(self.kind, ()) if not getattr(self, k)]
        if missing:
            raise ValueError(f"auth kind {self.kind!r} needs {', '.join(missing)}")
        return self


class Destination(_Frozen):
    """A FHIR server the relay delivers to (TLS: ``ca_bundle``, ``client_cert``/``client_key``).

    ``conditional``: ``auto`` keeps conditional creates only for the types the server's
    CapabilityStatement can conditionally create by identifier and PUTs the rest under their
    deterministic ids; ``keep`` sends bundles as built; ``put`` PUTs them all.
    """

    base_url: Annotated[str, Field(pattern=r"^https?://")]
    auth: DestinationAuth = DestinationAuth()
    conditional: Literal["auto", "keep", "put"] = "auto"
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @model_validator(mode="after")
    def _mtls_pair(self) -> Destination:
        # One without the other would quietly send no client certificate at all.
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together (mutual TLS needs both)")
        return self


class ReferralRouting(_Frozen):
    """Referrals all go to one IAPT service."""

    destination: str = "iapt"


class OutcomeRouting(_Frozen):
    """Outcomes go back to the referring team.

    The routing key is the **referral identifier system**: the ``system`` of the
    ``ServiceRequest`` identifier the outcome is ``basedOn``, which is the referring clinic's
    record system (every clinic mapping has its own). ``routes`` maps that system to a
    destination name; anything not listed goes to ``default_destination`` (or is rejected
    when there is none).
    """

    default_destination: str | None = None
    routes: dict[str, str] = Field(default_factory=dict)


class ApiKey(_Frozen):
    """An API key: its id (who, in the audit), its scrypt hash, and its scopes."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    hash: Annotated[str, Field(pattern=r"^scrypt\$")]
    scopes: tuple[Scope, ...]


class JwtSettings(_Frozen):
    """JWT bearer tokens checked against a JWKS (file or URL)."""

    jwks_file: Path | None = None
    jwks_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    #: Seconds of clock skew allowed on ``exp`` / ``nbf``.
    leeway: Annotated[int, Field(ge=0)] = 30

    @model_validator(mode="after")
    def _one_source(self) -> JwtSettings:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("give exactly one of 'jwks_file' or 'jwks_url'")
        return self


class AuthSettings(_Frozen):
    """Who may call the relay."""

    api_keys: tuple[ApiKey, ...] = ()
    jwt: JwtSettings | None = None


class RelaySettings(BaseSettings):
    """Everything the relay needs, read once at start.

    Build it with :func:`load_settings` (file + environment) or :func:`settings_from_mapping`
    (a tree); constructed directly it reads neither the process environment nor any file.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        case_sensitive=False,
    )

    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    ledger: LedgerSettings = LedgerSettings()
    limits: LimitsSettings = LimitsSettings()
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    delivery: DeliverySettings = DeliverySettings()
    auth: AuthSettings = AuthSettings()
    destinations: dict[Annotated[str, Field(pattern=_NAME)], Destination] = Field(
        default_factory=dict
    )
    referrals: ReferralRouting = ReferralRouting()
    outcomes: OutcomeRouting = OutcomeRouting()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: keyword arguments, the given environment, the given TOML file.

        The environment and file are what :func:`load_settings` was handed; pydantic-settings'
        own environment, dotenv and secrets-directory sources are never used.
        """
        given = _GIVEN.get() or _Given()
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _GivenEnvironment(settings_cls, given.env),
        ]
        if given.file is not None:
            sources.append(_SettingsFile(settings_cls, given.file))
        return tuple(sources)

    @model_validator(mode="after")
    def _routes_exist(self) -> RelaySettings:
        named = [("referrals.destination", self.referrals.destination)]
        if self.outcomes.default_destination is not None:
            named.append(("outcomes.default_destination", self.outcomes.default_destination))
        named += [(f"outcomes.routes.{k}", v) for k, v in self.outcomes.routes.items()]
        for where, name in named:
            if name not in self.destinations:
                raise ValueError(f"{where} names destination {name!r}, which is not defined")
        return self

    @property
    def db_path(self) -> Path:
        return self.store.data_dir / "outbox.sqlite3"

    @property
    def ledger_path(self) -> Path:
        """``[ledger] path``, else ``<data_dir>/ledger.sqlite``."""
        return self.ledger.path or self.store.data_dir / "ledger.sqlite"


# --- sources -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Given:
    """What one :func:`load_settings` call reads: a TOML file and an environment mapping."""

    file: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


#: Set by load_settings for the duration of one RelaySettings() build (unset: nothing given).
_GIVEN: ContextVar[_Given | None] = ContextVar("fhir_iapt_relay_settings_given", default=None)


class _NotJson(ValueError):
    """An environment value for a list or table field that is not JSON."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the value for {key!r} is not JSON")
        self.key = key


class _GivenEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source over a mapping handed in, never ``os.environ``.

    Prefix, nested delimiter and case-insensitivity come from :class:`RelaySettings`'
    ``model_config``; each value is parsed as the field it sets says (strings stay strings).
    """

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._given = env  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        own = {k: v for k, v in self._given.items() if k.upper().startswith(ENV_PREFIX)}
        if self.case_sensitive:
            return own
        return {k.lower(): v for k, v in own.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:
            raise _NotJson(field_name) from exc


class _SettingsFile(TomlConfigSettingsSource):
    """pydantic-settings' TOML source for the settings file, its relative paths made relative
    to the file's folder (so a config works from any working directory)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self._where = Location(file=path.name)
        self._folder = path.resolve().parent
        try:  # the base source skips a missing file; a missing settings file is a mistake
            path.open("rb").close()
        except OSError as exc:
            raise self._unreadable(exc) from None
        super().__init__(settings_cls, toml_file=path)

    def _unreadable(self, exc: OSError) -> ConfigError:
        reason = exc.strerror or type(exc).__name__
        return ConfigError(f"cannot read the settings file: {reason}", location=self._where)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except OSError as exc:
            raise self._unreadable(exc) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"the settings file is not valid TOML: {exc}", location=self._where
            ) from None
        _resolve_paths(data, self._folder)
        return data


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make the file's relative paths relative to the file."""

    def fix(node: Any, key: str, default: str | None = None) -> None:
        if not isinstance(node, dict):
            return
        value = node.get(key, default)
        if isinstance(value, str) and not Path(value).is_absolute():
            node[key] = str(base / value)

    def fix_list(node: Any, key: str, *, only: Any = None) -> None:
        if not isinstance(node, dict) or not isinstance(node.get(key), list):
            return
        node[key] = [
            str(base / p)
            if isinstance(p, str) and not Path(p).is_absolute() and (only is None or only(p))
            else p
            for p in node[key]
        ]

    fix(data.setdefault("store", {}), "data_dir", "relay-data")
    fix(data.get("ledger"), "path")
    intake = data.get("intake")
    fix_list(intake, "consent_registers")
    fix_list(intake, "mappings", only=is_mapping_path)
    auth = data.get("auth")
    if isinstance(auth, dict):
        fix(auth.get("jwt"), "jwks_file")
    destinations = data.get("destinations")
    if isinstance(destinations, dict):
        for dest in destinations.values():
            for key in ("ca_bundle", "client_cert", "client_key"):
                fix(dest, key)
            if isinstance(dest, dict):
                fix(dest.get("auth"), "private_key_file")


# --- errors --------------------------------------------------------------------------------


def _env_variables(env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Dotted-key path (lower case) -> the ``FHIR_IAPT_*`` variable that sets it."""
    out: dict[tuple[str, ...], str] = {}
    for name in env:
        if name.upper().startswith(ENV_PREFIX):
            parts = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER))
            if all(parts):
                out[parts] = name
    return out


def _issues(exc: ValidationError, source: str, env: Mapping[str, str] | None = None) -> list[Issue]:
    """One issue per error, located by the dotted key and where the value came from: the
    environment variable that set it, else the settings file."""
    variables = _env_variables(env or {})
    issues = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(str(p) for p in err["loc"])
        lowered = tuple(p.lower() for p in loc)
        variable = next((n for p, n in variables.items() if lowered[: len(p)] == p), None)
        issues.append(
            Issue(
                diagnostics=err["msg"],
                location=Location(
                    file=f"environment variable {variable}" if variable else source,
                    field=".".join(loc) or None,
                ),
                error_code=ConfigError.code,
            )
        )
    return issues


def _not_json(exc: _NotJson, env: Mapping[str, str]) -> ConfigError:
    key = exc.key.lower()
    names = []
    for name, value in sorted(env.items()):
        lowered = name.lower()
        if not name.upper().startswith(ENV_PREFIX) or not (
            lowered == (ENV_PREFIX + key).lower() or lowered.endswith(ENV_DELIMITER + key)
        ):
            continue
        try:
            json.loads(value)
        except ValueError:
            names.append(name)
    message = f"the value of {key!r} is a list or table: give it as JSON"
    return ConfigError(
        message,
        issues=[
            Issue(
                message,
                location=Location(file=f"environment variable {n}"),
                error_code=ConfigError.code,
            )
            for n in names or [f"{ENV_PREFIX}...{ENV_DELIMITER}{key.upper()}"]
        ],
    )


# --- files the settings name -----------------------------------------------------------------


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be opened for reading (None when it can)."""
    try:
        path.open("rb").close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def _mapping_issues(entries: tuple[str, ...], source: str) -> list[Issue]:
    from fhir_iapt.errors import MappingError
    from fhir_iapt.mapping import load_mapping

    issues: list[Issue] = []
    named: dict[str, str] = {}
    for i, entry in enumerate(entries):
        where = Location(file=source, field=f"intake.mappings.{i}")
        if is_mapping_path(entry) and (reason := _unreadable(Path(entry))) is not None:
            issues.append(
                Issue(
                    f"cannot read the mapping file {entry}: {reason}",
                    location=where,
                    error_code=ConfigError.code,
                )
            )
            continue
        try:
            mapping = load_mapping(entry)
        except MappingError as exc:
            what = "mapping file is not valid" if is_mapping_path(entry) else "mapping is unknown"
            issues.append(
                Issue(f"the {what}: {exc.message}", location=where, error_code=ConfigError.code)
            )
            issues.extend(i for i in exc.issues if i.diagnostics != exc.message)
            continue
        if mapping.name in named:
            issues.append(
                Issue(
                    f"two mappings are named {mapping.name!r} ({named[mapping.name]} and {entry}):"
                    " a request names a mapping by its name",
                    location=where,
                    error_code=ConfigError.code,
                )
            )
        named[mapping.name] = entry
    return issues


def check_settings_files(settings: RelaySettings, *, source: str = "(settings)") -> None:
    """Check that every file the settings name can be used, before anything starts.

    Consent registers, the JWKS file, each destination's CA bundle, client certificate and key
    and SMART private key must exist and be readable (and the TLS material and private key
    must load); each ``[intake] mappings`` entry must be a bundled mapping or a valid mapping
    file, no two with one name. Raises one :class:`ConfigError` listing every problem, each
    located by ``source`` (the settings file) and the dotted key.
    """
    from fhir_iapt.client import load_signing_key, ssl_context

    issues: list[Issue] = []

    def problem(field: str, message: str, code: str = ConfigError.code) -> None:
        issues.append(Issue(message, location=Location(file=source, field=field), error_code=code))

    def readable(field: str, path: Path | None, code: str = ConfigError.code) -> bool:
        if path is None:
            return False
        reason = _unreadable(path)
        if reason is not None:
            problem(field, f"cannot read {path}: {reason}", code)
        return reason is None

    for i, register in enumerate(settings.intake.consent_registers):
        readable(f"intake.consent_registers.{i}", register, "FI810")
    issues.extend(_mapping_issues(settings.intake.mappings, source))
    if settings.auth.jwt is not None:
        readable("auth.jwt.jwks_file", settings.auth.jwt.jwks_file)
    for name, dest in settings.destinations.items():
        where = f"destinations.{name}"
        if readable(f"{where}.ca_bundle", dest.ca_bundle, "FI803"):
            try:
                ssl_context(dest.ca_bundle or True)
            except ConfigError:
                problem(f"{where}.ca_bundle", f"{dest.ca_bundle} is not a PEM CA bundle", "FI803")
        cert_ok = readable(f"{where}.client_cert", dest.client_cert, "FI803")
        key_ok = readable(f"{where}.client_key", dest.client_key, "FI803")
        if cert_ok and key_ok and dest.client_cert and dest.client_key:
            try:
                ssl_context(True, (dest.client_cert, dest.client_key))
            except ConfigError:
                problem(
                    f"{where}.client_cert",
                    "the client certificate and key do not load"
                    " (PEM, and the key must fit the certificate)",
                    "FI803",
                )
        auth, key_file = dest.auth, dest.auth.private_key_file
        if (
            auth.kind == "smart_backend_services"
            and key_file is not None
            and readable(f"{where}.auth.private_key_file", key_file, "FI802")
        ):
            try:
                load_signing_key(key_file.read_bytes(), auth.alg)
            except ConfigError as exc:
                problem(f"{where}.auth.private_key_file", f"{key_file}: {exc.message}", "FI802")
    if issues:
        raise ConfigError("files named by the relay settings cannot be used", issues=issues)


# --- entry points ----------------------------------------------------------------------------


def settings_from_mapping(data: Mapping[str, Any], *, source: str = "(settings)") -> RelaySettings:
    """Check a settings tree (as TOML would give it) into :class:`RelaySettings`.

    Pure validation: no environment, no file, and the files it names are not opened (see
    :func:`check_settings_files`).
    """
    try:
        return RelaySettings.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError("the relay settings are not valid", issues=_issues(exc, source)) from None


#: The source named in errors when the settings come from the environment alone.
NO_FILE = "(no settings file: environment only)"


def load_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    check_files: bool = True,
) -> RelaySettings:
    """Read ``path`` (TOML; optional) and apply ``FHIR_IAPT_*`` overrides from ``env``.

    Relative paths in the file (``store.data_dir``, key and certificate files, consent
    registers, mapping files) are resolved against the file's folder, so a config works from
    any working directory. ``env`` is the only environment read (``None``: none). With
    ``check_files`` (the default) every file the settings name is checked too
    (:func:`check_settings_files`). The input limits' ``FHIR_IAPT_MAX_*`` variables in ``env``
    are checked too (:class:`~fhir_iapt.limits.Limits`). Raises :class:`ConfigError`.
    """
    given_env: Mapping[str, str] = MappingProxyType(dict(env or {}))
    source = Path(path).name if path is not None else NO_FILE
    token = _GIVEN.set(_Given(Path(path) if path is not None else None, given_env))
    try:
        settings = RelaySettings()
    except ValidationError as exc:
        raise ConfigError(
            "the relay settings are not valid", issues=_issues(exc, source, given_env)
        ) from None
    except SettingsError as exc:
        cause = exc.__cause__
        if isinstance(cause, _NotJson):
            raise _not_json(cause, given_env) from None
        raise ConfigError(
            "an environment override cannot be read", location=Location(file="(environment)")
        ) from None
    finally:
        _GIVEN.reset(token)
    # The input limits (FHIR_IAPT_MAX_*) are read by the readers on every request: a bad one
    # must stop the relay here, not answer each POST with an error about something else.
    Limits.from_env(given_env)
    if check_files:
        check_settings_files(settings, source=source)
    return settings


__all__ = [
    "ENV_DELIMITER",
    "ENV_PREFIX",
    "NO_FILE",
    "SCOPES",
    "ApiKey",
    "AuthSettings",
    "DeliverySettings",
    "Destination",
    "DestinationAuth",
    "IntakeSettings",
    "JwtSettings",
    "LedgerSettings",
    "LimitsSettings",
    "OutcomeRouting",
    "ReferralRouting",
    "RelaySettings",
    "Scope",
    "ServerSettings",
    "StoreSettings",
    "check_settings_files",
    "is_mapping_path",
    "load_settings",
    "settings_from_mapping",
]
