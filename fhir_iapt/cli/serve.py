"""``fhir-iapt serve``: run the relay under uvicorn, or make an API key for its config.

Settings come from ``--config FILE`` (TOML) with ``FHIR_IAPT_<SECTION>__<KEY>`` environment
overrides; ``--host`` / ``--port`` override both. A configuration mistake (a bad value, or a file
the settings name that cannot be read: keys, certificates, consent registers, mappings) is an
OperationOutcome on stderr naming the file and key, and exit 2, before anything starts. Audit
lines (JSON AuditEvents) and the relay's own log go to stderr; uvicorn's access log is off, since
the audit line says the same without query values. SIGTERM or Ctrl-C shuts down gracefully:
requests in progress finish, in-flight deliveries get ``server.shutdown_grace_seconds`` and the
rest go back to the queue.

``--new-key ID`` prints a fresh API key and the ``[[auth.api_keys]]`` block to paste into the
config (only the hash is kept there); ``--hash-key`` reads a key from stdin and prints its hash.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from fhir_iapt.cli._errors import echo_outcome, error_format_option
from fhir_iapt.errors import ConfigError, FhirIaptError, Location

EXIT_USAGE = 2
_SCOPE_CHOICES = ("referrals:write", "outcomes:write", "messages:read", "admin")


def _fail(error: FhirIaptError) -> NoReturn:
    echo_outcome(error.to_operation_outcome())
    raise SystemExit(EXIT_USAGE)


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit = logging.getLogger("fhir_iapt.relay.audit")
    audit.handlers[:] = [handler]
    audit.setLevel(logging.INFO)
    audit.propagate = False
    own = logging.StreamHandler(sys.stderr)
    own.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    relay = logging.getLogger("fhir_iapt")
    relay.handlers[:] = [own]
    relay.setLevel(level.upper())
    relay.propagate = False
    # httpx logs every request URL at INFO; the audit line and the worker's log say enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Relay settings (TOML). See examples/relay.toml.",
)
@click.option("--host", help="Listen address (overrides server.host).")
@click.option("--port", type=click.IntRange(0, 65535), help="Listen port (overrides server.port).")
@click.option(
    "--new-key",
    "new_key",
    metavar="ID",
    help="Print a new API key for ID and the config block holding its hash, then exit.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(_SCOPE_CHOICES),
    help="Scopes for --new-key (repeatable).",
)
@click.option("--hash-key", is_flag=True, help="Read an API key on stdin, print its hash, exit.")
@error_format_option()
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    new_key: str | None,
    scopes: tuple[str, ...],
    hash_key: bool,
) -> None:
    """Run the relay: accept referrals and outcomes over HTTP and deliver them."""
    from fhir_iapt.relay.security import hash_api_key, new_api_key

    if new_key is not None:
        token, digest = new_api_key(new_key)
        click.echo(f"API key (give this to the caller; it is not stored):\n  {token}\n")
        click.echo("Add to the relay config:")
        click.echo(f'[[auth.api_keys]]\nid = "{new_key}"\nhash = "{digest}"')
        click.echo("scopes = [" + ", ".join(f'"{s}"' for s in scopes) + "]")
        return
    if hash_key:
        token = sys.stdin.readline().strip()
        if not token:
            raise click.UsageError("no key on stdin")
        click.echo(hash_api_key(token))
        return

    import uvicorn

    from fhir_iapt.relay.app import create_app
    from fhir_iapt.relay.settings import ENV_PREFIX, load_settings

    if config_path is None and not any(k.upper().startswith(ENV_PREFIX) for k in os.environ):
        _fail(
            ConfigError(
                "no relay configuration was given: pass --config FILE (TOML, see"
                f" examples/relay.toml) or set {ENV_PREFIX}<SECTION>__<KEY> environment variables",
                location=Location(field="--config"),
            )
        )
    try:
        # Checks every file the settings name, so a missing key is reported here, not as a
        # failed application start-up.
        settings = load_settings(config_path, env=os.environ)
        app = create_app(settings)
        app.state.relay.outbox.open()  # lock the data directory before listening
    except FhirIaptError as exc:
        _fail(exc)
    _configure_logging(settings.server.log_level)
    config = uvicorn.Config(
        app,
        host=host or settings.server.host,
        port=settings.server.port if port is None else port,
        log_level=settings.server.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(settings.server.shutdown_grace_seconds) + 1,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise SystemExit(1)
