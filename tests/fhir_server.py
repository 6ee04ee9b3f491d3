"""A real FHIR R4 server (sekmet-fhir) run as a child process on loopback, for integration tests.

:class:`FhirServer` owns one working directory (settings file, SQLite database, log) and one
port. ``start()`` launches ``sekmet serve`` and waits until ``GET [base]/metadata`` answers;
``stop()`` ends the process (SIGTERM, then SIGKILL). Data lives in the working directory, so a
server stopped and started again still holds what it stored, on the same port: that is how a test
takes the server *down* and brings it *back*.

Why these settings: sekmet's order simulator is off (it would answer ServiceRequests by creating
resources of its own, and tests count resources); the inbound traffic log is off (it stores every
request body); inbound validation stays ``strict`` (structural R4 checks, as a real server does).
``server_auth`` can be given to make the server demand a static bearer token or SMART Backend
Services tokens from its own ``/auth/token`` endpoint.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

_STARTUP_TIMEOUT = 60.0

#: What the ``fhir_server_factory`` fixture yields: ``factory(*, start=True, server_auth=None)``.
ServerFactory = Callable[..., "FhirServer"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _sekmet_command() -> list[str]:
    beside = Path(sys.executable).parent / "sekmet"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("sekmet")
    if found is None:
        raise RuntimeError("sekmet-fhir is not installed (pip install sekmet-fhir)")
    return [found]


class FhirServer:
    """One sekmet-fhir process on ``127.0.0.1:<port>``; ``url`` is the FHIR base (``.../fhir``)."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        server_auth: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root_url}/fhir"
        self.token_url = f"{self.root_url}/auth/token"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = workdir / "server.log"
        workdir.mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {
            "base_url": self.url,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(workdir / "data"),
            "own_private_key_path": str(workdir / "keys" / "sekmet_private.pem"),
            "simulator": {"enabled": False},
            "log_inbound": False,
            "validation": {"inbound": "strict"},
        }
        if server_auth is not None:
            settings["server_auth"] = server_auth
        self._settings_path = workdir / "settings.yaml"
        self._settings_path.write_text(yaml.safe_dump(settings), encoding="utf-8")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process (no-op if running) and block until it answers ``/metadata``."""
        if self.running:
            return
        env = {
            **os.environ,
            "SEKMET_CONFIG": str(self._settings_path),
            "SEKMET_BASE_URL": self.url,
        }
        command = [
            *_sekmet_command(),
            "serve",
            "--config",
            str(self._settings_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"sekmet exited during startup:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.url}/metadata", timeout=2.0)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sekmet did not answer within {_STARTUP_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the process (no-op if stopped); the data directory is kept."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if not self._log_path.exists():
            return "(no log)"
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> FhirServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FhirServer(url={self.url!r}, running={self.running})"
