"""A real PostgreSQL for the ledger tests: Debian's server binaries, a fresh cluster in a temporary directory,
listening on a free loopback port, stopped when the tests end.

PostgreSQL refuses to run as root. Run as root (as `make test` may be), the cluster belongs to the `postgres`
system user that Debian's package creates and every server command runs through `runuser -u postgres`.
Missing binaries or a server that does not start fail the tests with the reason and the fix; they never skip.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from pool_demo.local_prometheus import free_port

SERVER_USER = "postgres"
"""Owner of the cluster when the tests run as root (created by Debian's postgresql package)."""


def server_binaries() -> Path:
    """/usr/lib/postgresql/<newest version>/bin, or a test failure naming the package to install."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*") if (p / "bin" / "initdb").is_file() and (p / "bin" / "pg_ctl").is_file()),
        key=lambda p: int(p.name) if p.name.isdigit() else 0,
    )
    if not versions:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) are not in /usr/lib/postgresql/<version>/bin: the ledger "
            "tests need them; run `make system-deps` (apt-get install postgresql)",
            pytrace=False,
        )
    return versions[-1] / "bin"


@dataclass(frozen=True)
class LocalPostgres:
    url: str
    """postgresql://… of the maintenance database `postgres`, trust authentication on 127.0.0.1."""
    port: int

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database, empty or a copy of the database `template`; returns its URL."""
        engine = sa.create_engine(
            self.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        copy = f' TEMPLATE "{template}"' if template else ""
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
        engine.dispose()
        return self.database_url(name)

    def database_url(self, name: str) -> str:
        """URL of the database `name` on this server."""
        return self.url.rsplit("/", 1)[0] + f"/{name}"


def ledger_target(kind: str, folder: Path, server: Callable[[], LocalPostgres], template: str | None = None) -> str:
    """A ledger for one test: `kind` sqlite → a file in `folder`; postgresql → a new database on `server()`
    named after `folder` (a copy of `template` when given)."""
    if kind == "sqlite":
        return str(folder / "ledger.db")
    name = f"ledger_{hashlib.sha1(str(folder).encode()).hexdigest()[:12]}"
    return server().create_database(name, template)


@contextmanager
def local_postgres() -> Iterator[LocalPostgres]:
    """Start a throw-away cluster; stop it and remove its files at the end."""
    binaries = server_binaries()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(
                f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as (it refuses root); "
                "install Debian's postgresql package, which creates it",
                pytrace=False,
            )
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.fail("running as root needs runuser (util-linux) to start PostgreSQL as postgres", pytrace=False)
        prefix = [runuser, "-u", SERVER_USER, "--"]
    # Not under pytest's tmp_path: its parents are private to root, and the server user must reach its files.
    workdir = Path(tempfile.mkdtemp(prefix="ledger-postgres-"))
    data = workdir / "data"
    log = workdir / "server.log"
    if as_root:
        os.chown(workdir, owner.pw_uid, owner.pw_gid)

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)

    port = free_port()
    try:
        done = run(
            str(binaries / "initdb"), "-D", str(data), "-U", "ledger", "--auth=trust", "-E", "UTF8", "--locale=C"
        )
        if done.returncode:
            pytest.fail(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}", pytrace=False)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data}"
        done = run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        if done.returncode:
            server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(
                f"PostgreSQL did not start: {done.stderr.strip() or done.stdout.strip()}\n{server_log}", pytrace=False
            )
        try:
            yield LocalPostgres(url=f"postgresql://ledger@127.0.0.1:{port}/postgres", port=port)
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
