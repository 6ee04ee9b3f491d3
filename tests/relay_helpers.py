"""Helpers for the relay tests: API keys, config files, and a real relay process on loopback.

:class:`RelayProcess` runs ``fhir-iapt serve --config FILE`` as a child process (the real
uvicorn), waits for ``/readyz``, and can be stopped with SIGTERM or killed with SIGKILL; its data
directory survives, so a restart picks up what the last one left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from fhir_server import free_port

from fhir_iapt.nhs_number import check_digit
from fhir_iapt.relay.security import hash_api_key
from fhir_iapt.relay.settings import RelaySettings, settings_from_mapping
from fhir_iapt.relay.store import Clock, Outbox, OutboxStore

#: The PostgreSQL outbox the test runs on (set by the ``relay_store`` fixture), None: SQLite.
STORE_URL: str | None = None

#: Generous: a relay warms its validator before it is ready (tens of seconds on a busy machine).
_STARTUP_TIMEOUT = 300.0
DIABETES_SYSTEM = "https://fhir-iapt.github.io/fhir/Id/example-diabetes-clinic-record"

#: key id -> scopes of the keys every relay test config holds.
KEYS: dict[str, tuple[str, ...]] = {
    "clinic": ("referrals:write",),
    "iapt": ("outcomes:write",),
    "reader": ("messages:read",),
    "ops": ("admin",),
}


def token(key_id: str) -> str:
    """The bearer token of a test key (fixed, so hashes can be made once)."""
    return f"{key_id}.test-secret-{key_id}-0123456789abcdef"


@cache
def key_hash(key_id: str) -> str:
    return hash_api_key(token(key_id), salt=b"relay-test-salt!")


def auth(key_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(key_id)}"}


def settings_tree(
    data_dir: Path,
    *,
    iapt_url: str = "http://127.0.0.1:9/fhir",
    clinic_url: str | None = None,
    port: int = 0,
    **sections: dict[str, Any],
) -> dict[str, Any]:
    """A complete settings tree (as TOML gives it) for a test relay."""
    tree: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "shutdown_grace_seconds": 5},
        "store": {"data_dir": str(data_dir), "synchronous": "normal"},
        "intake": {"warm_up": False},
        "delivery": {
            "max_attempts": 50,
            "backoff_initial": 0.2,
            "backoff_max": 1.0,
            "client_attempts": 1,
            "poll_interval": 0.2,
            "timeout_seconds": 10,
        },
        "auth": {
            "api_keys": [{"id": k, "hash": key_hash(k), "scopes": list(v)} for k, v in KEYS.items()]
        },
        "destinations": {
            "iapt": {"base_url": iapt_url},
            "clinic": {"base_url": clinic_url or iapt_url},
        },
        "referrals": {"destination": "iapt"},
        "outcomes": {"default_destination": "clinic"},
    }
    if STORE_URL is not None:
        tree["store"]["url"] = STORE_URL
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return tree


def open_outbox(
    path: Path, *, clock: Clock | None = None, synchronous: Any = "normal"
) -> OutboxStore:
    """An opened outbox of the test's store: the SQLite file ``path``, or the test's PostgreSQL
    database (``relay_store``)."""
    kwargs: dict[str, Any] = {"synchronous": synchronous}
    if clock is not None:
        kwargs["clock"] = clock
    box: OutboxStore
    if STORE_URL is None:
        box = Outbox(path, **kwargs)
    else:
        from fhir_iapt.relay.postgres import PostgresOutbox

        box = PostgresOutbox(STORE_URL, **kwargs)
    box.open()
    return box


def make_settings(data_dir: Path, **kwargs: Any) -> RelaySettings:
    return settings_from_mapping(settings_tree(data_dir, **kwargs))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(type(value))


def to_toml(tree: dict[str, Any]) -> str:
    """Enough TOML for a settings tree: tables, arrays of tables, scalars and lists."""
    lines: list[str] = []

    def table(prefix: str, node: dict[str, Any]) -> None:
        scalars = {
            k: v
            for k, v in node.items()
            if not isinstance(v, dict | list)
            or (isinstance(v, list) and not any(isinstance(i, dict) for i in v))
        }
        if scalars and prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{_quote_key(k)} = {_toml_value(v)}")
        for k, v in node.items():
            path = f"{prefix}.{_quote_key(k)}" if prefix else _quote_key(k)
            if isinstance(v, dict):
                table(path, v)
            elif isinstance(v, list) and any(isinstance(i, dict) for i in v):
                for item in v:
                    lines.append(f"[[{path}]]")
                    for ik, iv in item.items():
                        lines.append(f"{_quote_key(ik)} = {_toml_value(iv)}")

    table("", tree)
    return "\n".join(lines) + "\n"


def _quote_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def write_config(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(to_toml(tree), encoding="utf-8")
    return path


class RelayProcess:
    """``fhir-iapt serve --config FILE`` as a child process on a free loopback port."""

    def __init__(self, workdir: Path, tree: dict[str, Any]) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        tree["server"]["port"] = self.port
        self.config = write_config(workdir / "relay.toml", tree)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "relay.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        command = [
            sys.executable,
            "-c",
            "from fhir_iapt.cli import main; main()",
            "serve",
            "--config",
            str(self.config),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_IAPT_")}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"relay exited during startup:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"relay did not become ready:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it does not end; the exit code."""
        process = self._process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.terminate()
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for(predicate: Any, *, timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll ``predicate()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# --- test records ---------------------------------------------------------------------------

DIABETES_COLUMNS = (
    "clinic_record_id,nhs_number,family_name,given_name,birth_date,sex,gp_practice_ods,"
    "clinic_ods,review_date,diabetes_type,hba1c_mmol_mol,"
    + ",".join(f"phq9_q{i}" for i in range(1, 11))
    + ","
    + ",".join(f"gad7_q{i}" for i in range(1, 8))
    + ",phq2_q1,phq2_q2,gad2_q1,gad2_q2,referrer_code,referrer_name,refer,consent_refer,"
    "consent_share_outcomes,reason"
)
#: Patient values the log tests look for (a valid NHS number, a name, PHQ-9 answers).
FAMILY_NAME = "Zebedee-Quartermaine"
GIVEN_NAME = "Ottoline"


def nhs_number(seed: int) -> str:
    """A valid (modulus 11) NHS number derived from ``seed``, starting 9 (a test range)."""
    n = seed
    while (check := check_digit(digits := f"9{n % 10**8:08d}")) is None:
        n += 1
    return f"{digits}{check}"


def diabetes_row(
    record_id: str,
    nhs: str,
    *,
    refer: str = "Y",
    consent: str = "Y",
    phq9: tuple[int, ...] = (2, 3, 1, 2, 2, 1, 2, 1, 0, 1),
) -> str:
    """One row of the diabetes-csv layout."""
    gad7 = (2, 2, 1, 2, 1, 1, 2)
    return ",".join(
        [
            record_id,
            nhs,
            FAMILY_NAME,
            GIVEN_NAME,
            "1961-04-12",
            "F",
            "A81001",
            "RX101",
            "2024-03-05",
            "T2",
            "64",
            *map(str, phq9),
            *map(str, gad7),
            "2",
            "3",
            "2",
            "2",
            "G1234567",
            "Dr Example",
            refer,
            consent,
            "Y",
            "low mood",
        ]
    )


def diabetes_csv(rows: list[dict[str, Any]]) -> bytes:
    """A diabetes-csv export: ``rows`` of ``diabetes_row`` keyword arguments."""
    lines = [DIABETES_COLUMNS]
    for row in rows:
        lines.append(
            diabetes_row(
                row["record_id"],
                row["nhs"],
                **{k: v for k, v in row.items() if k not in ("record_id", "nhs")},
            )
        )
    return ("\n".join(lines) + "\n").encode("utf-8")
