"""A throwaway PostgreSQL cluster (the machine's own ``initdb`` / ``pg_ctl``) for tests and bench.

:class:`PostgresCluster` makes a cluster in a fresh temporary folder, listening on a free
loopback port (and a unix socket in that folder), ``trust`` authentication for one superuser,
and removes it all on :meth:`stop`. Run as root, the server runs as the ``postgres`` user (or
``nobody``), since PostgreSQL refuses to run as root. ``durable=False`` (the tests' default)
turns fsync off: a test cluster never needs to survive a power cut; the bench keeps it on.

The binaries are found on ``PATH`` or in ``/usr/lib/postgresql/<version>/bin`` (Debian's
``postgresql`` package, which ``.ci/run`` installs when they are missing).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
from fhir_server import free_port

USER = "fhir_iapt"


def _bindir() -> Path:
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL's initdb was not found (PATH, /usr/lib/postgresql/*/bin): install the"
            " server, e.g. apt-get install postgresql (.ci/run does)"
        )
    return versions[-1].parent


def _server_user() -> dict[str, Any]:
    """Popen arguments that run the server as a non-root user when this process is root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


class PostgresCluster:
    """One throwaway cluster on ``127.0.0.1:<port>``; :meth:`url` gives a database's URL."""

    def __init__(self, *, durable: bool = False, max_connections: int = 300) -> None:
        self.bindir = _bindir()
        self.durable = durable
        self.max_connections = max_connections
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="fhir-iapt-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as = _server_user()
        self.started = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.root,
            **self._as,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        if self._as:
            os.chown(self.root, self._as["user"], self._as["group"])
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": str(self.max_connections),
            "shared_buffers": "64MB",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.started = True

    def stop(self) -> None:
        """Stop the server (immediate: nothing here is kept) and remove the folder."""
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def pause(self) -> None:
        """Stop the server, keeping its data (as a database restart or outage does)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start a paused server again on the same port and data."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
