"""``fhir-iapt push INPUT... --server URL``: deliver convert/outcomes output to a FHIR server.

Exit status: 0 every Bundle delivered; 1 some were not (they are in ``failed.ndjson``, which this
command takes again as input); 2 usage or configuration error (nothing sent).

Secrets are read from environment variables or files, never from the command line (which other
users of the machine can see) and never echoed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn, TextIO

import click
import httpx

from fhir_iapt.cli._errors import echo_outcome, error_format_option
from fhir_iapt.client import (
    BearerToken,
    ClientCredentials,
    FhirClient,
    RetryPolicy,
    SmartBackendServices,
)
from fhir_iapt.client._conditional import ConditionalMode
from fhir_iapt.error_codes import ERROR_CODES
from fhir_iapt.errors import ConfigError, FhirIaptError
from fhir_iapt.push import FAILED_FILE, RESULTS_FILE, PushResult, default_out_dir
from fhir_iapt.push import push as push_to

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_MODES: dict[str, ConditionalMode] = {"auto": "auto", "keep": "keep", "put": "put"}
#: How many undelivered bundles ``push`` describes on the terminal (all are in results.ndjson).
FIRST_FAILURES = 5
_DISPLAY = {code.code: code.display for code in ERROR_CODES}


def failure_reason(result: PushResult) -> str:
    """Why one bundle was not delivered, in one line with no patient data: the HTTP status,
    the error code and its registered meaning, and the issue codes and places of the answer
    (never its diagnostics text, which a server may fill with the record's values)."""
    if result.status == "not-attempted":
        return "not attempted (the run stopped at an earlier failure; --keep-going goes on)"
    parts = []
    if result.http_status is not None:
        parts.append(f"HTTP {result.http_status}")
    if result.error_code:
        parts.append(f"{result.error_code} {_DISPLAY.get(result.error_code, '')}".strip())
    issues = []
    for issue in (result.outcome or {}).get("issue", [])[:3]:
        if not isinstance(issue, dict):
            continue
        where = issue.get("expression") or issue.get("location") or []
        code = issue.get("code", "?")
        at = (
            f" at {', '.join(str(w) for w in where[:2])}"
            if isinstance(where, list) and where
            else ""
        )
        issues.append(f"{code}{at}")
    reason = ", ".join(parts) or "failed"
    return f"{reason} (issue: {'; '.join(issues)})" if issues else reason


def _secret_from(env: str | None, file: Path | None, what: str) -> str | None:
    """A secret from an environment variable or the first line of a file (never echoed)."""
    if env and file:
        raise ConfigError(
            f"give the {what} by environment variable or by file, not both", error_code="FI802"
        )
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(
                f"environment variable {env} (the {what}) is not set", error_code="FI802"
            )
        return value.strip()
    if file:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} file {file}", error_code="FI802") from exc
        if not lines or not lines[0].strip():
            raise ConfigError(f"the {what} file {file} is empty", error_code="FI802")
        return lines[0].strip()
    return None


def build_auth(
    *,
    token_env: str | None,
    token_file: Path | None,
    client_id: str | None,
    client_secret_env: str | None,
    client_secret_file: Path | None,
    token_url: str | None,
    private_key: Path | None,
    key_id: str | None,
    alg: str,
    scope: str | None,
) -> httpx.Auth | None:
    """The auth the options ask for (at most one mode), or None; ConfigError when inconsistent."""
    token = _secret_from(token_env, token_file, "bearer token")
    secret = _secret_from(client_secret_env, client_secret_file, "client secret")
    modes = [
        name
        for name, on in (
            ("bearer token", token is not None),
            ("client secret", secret is not None),
            ("private key", private_key is not None),
        )
        if on
    ]
    if len(modes) > 1:
        raise ConfigError(f"choose one auth mode, not {' and '.join(modes)}", error_code="FI802")
    if token is not None:
        return BearerToken(token)
    if not modes:
        if client_id or token_url:
            raise ConfigError(
                "--client-id/--token-url need --client-secret-env/-file or --private-key",
                error_code="FI802",
            )
        return None
    if not client_id or not token_url:
        raise ConfigError("OAuth needs --client-id and --token-url", error_code="FI802")
    if secret is not None:
        return ClientCredentials(token_url, client_id, secret, scope=scope)
    if private_key is None:
        raise ConfigError(
            "--private-key is required for SMART Backend Services", error_code="FI802"
        )
    if not key_id:
        raise ConfigError(
            "SMART Backend Services needs --key-id (the kid registered with the server)",
            error_code="FI802",
        )
    try:
        pem = private_key.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the private key file {private_key}", error_code="FI802"
        ) from exc
    return SmartBackendServices(
        token_url,
        client_id,
        pem,
        kid=key_id,
        alg="ES384" if alg == "ES384" else "RS384",
        scope=scope or "system/*.write",
    )


class _Progress:
    """One overwritten line on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.counts = {"delivered": 0, "failed": 0, "not-attempted": 0}
        self.first_failures: list[PushResult] = []

    def __call__(self, result: PushResult) -> None:
        self.counts[result.status] += 1
        if not result.delivered and len(self.first_failures) < FIRST_FAILURES:
            self.first_failures.append(result)
        if self.live:
            total = sum(self.counts.values())
            self.stream.write(f"\rpushed {total}: {self._text()}")
            self.stream.flush()

    def _text(self) -> str:
        return ", ".join(
            f"{n} {status}" for status, n in self.counts.items() if n or status != "not-attempted"
        )

    def finish(self, out_dir: Path) -> None:
        if self.live:
            self.stream.write("\n")
        self.stream.write(f"{self._text()}; results in {out_dir / RESULTS_FILE}\n")
        undelivered = self.counts["failed"] + self.counts["not-attempted"]
        if self.first_failures:
            shown = len(self.first_failures)
            head = (
                "why it was not delivered"
                if undelivered == 1
                else (
                    f"why the first {shown} of {undelivered} were not delivered"
                    if shown < undelivered
                    else "why they were not delivered"
                )
            )
            self.stream.write(f"{head} (every one is in {out_dir / RESULTS_FILE}):\n")
            for result in self.first_failures:
                self.stream.write(f"  {result.source}: {failure_reason(result)}\n")
        if undelivered:
            self.stream.write(
                f"undelivered bundles in {out_dir / FAILED_FILE} "
                "(push that file again to retry them)\n"
            )


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--server",
    required=True,
    metavar="URL",
    help="FHIR base URL, e.g. https://iapt.example.nhs.uk/fhir/R4.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for results.ndjson and failed.ndjson [default: beside the input].",
)
@click.option("--token-env", metavar="VAR", help="Static bearer token from this env variable.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Static bearer token from this file (first line).",
)
@click.option("--client-id", help="OAuth2 / SMART client id.")
@click.option(
    "--client-secret-env",
    metavar="VAR",
    help="OAuth2 client secret from this env variable (client credentials).",
)
@click.option(
    "--client-secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OAuth2 client secret from this file (first line).",
)
@click.option("--token-url", metavar="URL", help="OAuth2 token endpoint.")
@click.option(
    "--private-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SMART Backend Services: PEM private key signing the client assertion.",
)
@click.option("--key-id", help="SMART Backend Services: the key's kid, as registered.")
@click.option(
    "--alg",
    type=click.Choice(["RS384", "ES384"]),
    default="RS384",
    show_default=True,
    help="SMART Backend Services signing algorithm.",
)
@click.option("--scope", help="OAuth2 scope to ask for (SMART default: system/*.write).")
@click.option(
    "--cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Client certificate (PEM) for mutual TLS; needs --key.",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key (PEM) of the client certificate.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA bundle (PEM) to verify the server with, instead of the default trust.",
)
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Tries per Bundle (connection errors, timeouts, 408/429/5xx).",
)
@click.option(
    "--max-elapsed",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds one Bundle may spend on retries.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="First retry wait in seconds (doubles each retry, plus jitter).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the server per request.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Resources per transaction when pushing a bulk layout.",
)
@click.option(
    "--conditional",
    type=click.Choice(["auto", "keep", "put"]),
    default="auto",
    show_default=True,
    help="Conditional creates: auto = keep them for types the server's "
    "CapabilityStatement can conditionally create by identifier, PUT under the "
    "deterministic id otherwise; keep = send as built; put = always PUT.",
)
@click.option(
    "--keep-going",
    is_flag=True,
    help="Try every Bundle even after the server became unreachable or refused us.",
)
@error_format_option()
def push(
    inputs: tuple[Path, ...],
    server: str,
    out_dir: Path | None,
    token_env: str | None,
    token_file: Path | None,
    client_id: str | None,
    client_secret_env: str | None,
    client_secret_file: Path | None,
    token_url: str | None,
    private_key: Path | None,
    key_id: str | None,
    alg: str,
    scope: str | None,
    cert: Path | None,
    key: Path | None,
    ca_bundle: Path | None,
    attempts: int,
    max_elapsed: float,
    backoff: float,
    timeout: float,
    chunk_size: int,
    conditional: str,
    keep_going: bool,
) -> NoReturn:
    """Send bundles.ndjson, a bulk layout folder or a failed.ndjson to a FHIR server."""
    err = sys.stderr
    try:
        if (cert is None) != (key is None):
            raise ConfigError("--cert and --key go together", error_code="FI803")
        auth = build_auth(
            token_env=token_env,
            token_file=token_file,
            client_id=client_id,
            client_secret_env=client_secret_env,
            client_secret_file=client_secret_file,
            token_url=token_url,
            private_key=private_key,
            key_id=key_id,
            alg=alg,
            scope=scope,
        )
        retry = RetryPolicy(attempts=attempts, max_elapsed=max_elapsed, backoff_initial=backoff)
        target = out_dir or default_out_dir(inputs[0])
        progress = _Progress(err)
        with FhirClient(
            server,
            auth=auth,
            retry=retry,
            timeout=timeout,
            verify=ca_bundle if ca_bundle is not None else True,
            cert=(cert, key) if cert is not None and key is not None else None,
        ) as client:
            summary = push_to(
                client,
                inputs,
                target,
                chunk_size=chunk_size,
                keep_going=keep_going,
                on_result=progress,
                conditional=_MODES[conditional],
            )
    except FhirIaptError as exc:  # configuration, or an input that cannot be opened
        echo_outcome(exc.to_operation_outcome())
        raise SystemExit(EXIT_USAGE) from None
    progress.finish(target)
    raise SystemExit(EXIT_OK if summary.all_delivered else EXIT_FAILED)
