"""The relay's settings: one frozen, typed object read once from TOML and the environment.

A TOML file (``fhir-iapt serve --config relay.toml``) gives the settings; environment variables
named ``FHIR_IAPT_<SECTION>__<KEY>`` (``__`` between levels, any case) override single values,
e.g. ``FHIR_IAPT_SERVER__PORT=8081`` or
``FHIR_IAPT_DESTINATIONS__IAPT__AUTH__TOKEN=...``. An override's value is read as a TOML value
when it parses as one (``5``, ``true``, ``["a", "b"]``) and as a plain string otherwise.

Every section but ``[destinations]`` has working defaults: a file that names one destination
starts a relay that stores its outbox in ``relay-data/outbox.sqlite3`` beside the file and needs
no other service. What a relay cannot guess (where to deliver, who may call it) is checked when
the settings load: a mistake is a
:class:`~fhir_iapt.errors.ConfigError` naming the file and the key, never a traceback.

The library never reads the environment itself: :func:`load_settings` is handed the mapping
(the ``serve`` command passes ``os.environ``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fhir_iapt.errors import ConfigError, Issue, Location

ENV_PREFIX = "FHIR_IAPT_"
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
    """The durable outbox: one SQLite file (WAL) in ``data_dir``."""

    data_dir: Path = Path("relay-data")
    #: ``full`` survives power loss; ``normal`` (WAL) survives a killed process only.
    synchronous: Literal["full", "normal"] = "full"


class LimitsSettings(_Frozen):
    """Request limits."""

    max_body_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024


class IntakeSettings(_Frozen):
    """How much of the real validator (R4 + profiles) runs on what the relay accepts.

    Every record's values are always checked at the map stage. The real validator checks the
    *shape* a mapping produces: ``once`` on the first bundle of each mapping in this process
    (a relay process is one long run, as a CLI run is), ``request`` on the first bundle of
    every request, ``full`` on every bundle (slow). ``warm_up`` builds the validator at start;
    ``/readyz`` says ready only after it.
    """

    validation: Literal["once", "request", "full"] = "once"
    warm_up: bool = True
    #: CSV files of recorded consent to share outcomes (``nhs_number``,
    #: ``consent_share_outcomes``, optionally the referral identifier), read at start: a
    #: QuestionnaireResponse carries no consent, so without a register none is sent.
    consent_registers: tuple[Path, ...] = ()


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
    token: str | None = None
    token_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    client_id: str | None = None
    client_secret: str | None = None
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

    def __repr_args__(self) -> Any:
        secret = {"token", "client_secret"}
        return [(k, "<redacted>" if k in secret and v else v) for k, v in super().__repr_args__()]


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


class RelaySettings(_Frozen):
    """Everything the relay needs, read once at start."""

    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    limits: LimitsSettings = LimitsSettings()
    intake: IntakeSettings = IntakeSettings()
    delivery: DeliverySettings = DeliverySettings()
    auth: AuthSettings = AuthSettings()
    destinations: dict[Annotated[str, Field(pattern=_NAME)], Destination] = Field(
        default_factory=dict
    )
    referrals: ReferralRouting = ReferralRouting()
    outcomes: OutcomeRouting = OutcomeRouting()

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


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in sorted(env.items()):
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            continue
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = _env_value(raw)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make the file's relative paths relative to the file (so it works from any directory)."""

    def fix(node: Any, key: str, default: str | None = None) -> None:
        if not isinstance(node, dict):
            return
        value = node.get(key, default)
        if isinstance(value, str) and not Path(value).is_absolute():
            node[key] = str(base / value)

    fix(data.setdefault("store", {}), "data_dir", "relay-data")
    intake = data.get("intake")
    if isinstance(intake, dict) and isinstance(intake.get("consent_registers"), list):
        intake["consent_registers"] = [
            str(base / p) if isinstance(p, str) and not Path(p).is_absolute() else p
            for p in intake["consent_registers"]
        ]
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


def _issues(exc: ValidationError, source: str) -> list[Issue]:
    issues = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or None
        issues.append(
            Issue(
                diagnostics=err["msg"],
                location=Location(file=source, field=field),
                error_code=ConfigError.code,
            )
        )
    return issues


def settings_from_mapping(data: Mapping[str, Any], *, source: str = "(settings)") -> RelaySettings:
    """Check a settings tree (as TOML would give it) into :class:`RelaySettings`."""
    try:
        return RelaySettings.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(
            "the relay settings are not valid", issues=_issues(exc, source)
        ) from None


def load_settings(
    path: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> RelaySettings:
    """Read ``path`` (TOML; optional) and apply ``FHIR_IAPT_*`` overrides from ``env``.

    Relative paths in the file (``store.data_dir``, key and certificate files) are resolved
    against the file's folder, so a config works from any working directory.
    """
    data: dict[str, Any] = {}
    source = "(environment)"
    if path is not None:
        source = Path(path).name
        try:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the settings file: {exc.strerror or exc}",
                location=Location(file=source),
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"the settings file is not valid TOML: {exc}", location=Location(file=source)
            ) from None
        _resolve_paths(data, Path(path).resolve().parent)
    _apply_env(data, env or {})
    return settings_from_mapping(data, source=source)


__all__ = [
    "ENV_PREFIX",
    "SCOPES",
    "ApiKey",
    "AuthSettings",
    "DeliverySettings",
    "Destination",
    "DestinationAuth",
    "IntakeSettings",
    "JwtSettings",
    "LimitsSettings",
    "OutcomeRouting",
    "ReferralRouting",
    "RelaySettings",
    "Scope",
    "ServerSettings",
    "StoreSettings",
    "load_settings",
    "settings_from_mapping",
]
