"""A throwaway PostgreSQL server for tests: found or installed, started, and removed again.

    server = PostgresServer.start()     # raises Unavailable with a reason if it cannot
    server.url                           # postgresql+psycopg://sweeper:<pw>@127.0.0.1:<port>/sweep
    server.stop()                        # pg_ctl stop -m fast, then the temp folder is removed

The server binaries are looked for under /usr/lib/postgresql/*/bin (Debian's layout); when
absent and running as root, Debian's ``postgresql`` package is installed with apt-get. The
cluster lives in a fresh temporary folder, listens on 127.0.0.1 only, on a free port, with its
Unix socket in that folder; fsync is off (nothing here needs to survive a crash). As root, the
server runs as the unprivileged user ``postgres`` (created if missing), which owns the folder.
Local socket connections are trusted (used only to create the role and database); TCP
connections need a password (scram-sha-256), so the URL tests carry one.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"
ROLE, DATABASE = "sweeper", "sweep"
INSTALL_TIMEOUT_SECONDS = 900
START_TIMEOUT_SECONDS = 60


class Unavailable(Exception):
    """No PostgreSQL server can be run here; the message says why (a pytest skip reason)."""


def _is_root() -> bool:
    return os.geteuid() == 0


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl, or None."""
    def version(path: str) -> tuple:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.parent.name))

    candidates = [p for p in glob.glob("/usr/lib/postgresql/*/bin/initdb") if os.access(p, os.X_OK)]
    for initdb in sorted(candidates, key=version, reverse=True):
        bin_dir = Path(initdb).parent
        if (bin_dir / "pg_ctl").exists() and (bin_dir / "postgres").exists():
            return bin_dir
    return None


def _tail(text: str | bytes | None, lines: int = 5) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " | ".join((text or "").strip().splitlines()[-lines:])


def install() -> Path:
    """Install Debian's ``postgresql`` package (root only) and return its bin folder."""
    if not _is_root():
        raise Unavailable(
            "PostgreSQL server not installed (no /usr/lib/postgresql/*/bin/initdb) "
            "and not root to apt-get install it"
        )
    if shutil.which("apt-get") is None:
        raise Unavailable("PostgreSQL server not installed and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
        try:
            result = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(
                f"`{' '.join(command)}` did not finish in {INSTALL_TIMEOUT_SECONDS} s"
            ) from None
        if result.returncode != 0:
            raise Unavailable(
                f"`{' '.join(command)}` failed (exit {result.returncode}): "
                f"{_tail(result.stderr or result.stdout)}"
            )
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise Unavailable(
            "installed Debian's postgresql package, but found no /usr/lib/postgresql/*/bin/initdb"
        )
    return bin_dir


def _ensure_server_user() -> str:
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise Unavailable(
                f"cannot create the system user {SERVER_USER!r} to run PostgreSQL: "
                f"{_tail(result.stderr)}"
            )
    return SERVER_USER


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path  # the temporary folder: data/, the socket, the log
    port: int
    password: str
    run_as: str | None  # the unprivileged user the server runs as when we are root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{ROLE}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def redacted_url(self) -> str:
        return self.url.replace(self.password, "***")

    # -----------------------------------------------------------------------------------------

    @classmethod
    def start(cls) -> "PostgresServer":
        """Find or install PostgreSQL, initdb a temporary cluster, start it and create the
        database."""
        bin_dir = find_bin_dir() or install()
        run_as = _ensure_server_user() if _is_root() else None
        # As root, the folder must be reachable by the server's user: /tmp is, whatever TMPDIR is.
        base = "/tmp" if run_as and os.path.isdir("/tmp") else None
        root = Path(tempfile.mkdtemp(prefix="sweep-pg-", dir=base))
        server = cls(bin_dir, root, 0, "pw-" + secrets.token_hex(12), run_as)
        try:
            if run_as:
                entry = pwd.getpwnam(run_as)
                os.chown(root, entry.pw_uid, entry.pw_gid)
            os.chmod(root, 0o700)
            server._initdb()
            for attempt in range(
                3
            ):  # another process may take the free port before the server does
                server.port = free_port()
                if server._pg_ctl_start():
                    break
            else:
                raise Unavailable(f"PostgreSQL did not start: {_tail(server._log(), 8)}")
            server._create_role_and_database()
        except BaseException:
            server.stop()
            raise
        return server

    def _command(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else args

    def _run(
        self, args: list[str], *, input: str | None = None, timeout: float = 120, check: bool = True
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        result = subprocess.run(self._command(args), input=input, capture_output=True, text=True,
                                timeout=timeout, cwd=self.root, env=env)
        if check and result.returncode != 0:
            raise Unavailable(
                f"`{Path(args[0]).name}` failed (exit {result.returncode}): "
                f"{_tail(result.stderr or result.stdout)}"
            )
        return result

    def _log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def _initdb(self) -> None:
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )

    def _pg_ctl_start(self) -> bool:
        options = " ".join([
            f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.root}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        ])
        result = self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
             "-w", "-t", str(START_TIMEOUT_SECONDS), "-o", options, "start"],
            timeout=START_TIMEOUT_SECONDS + 30, check=False,
        )
        return result.returncode == 0

    def _create_role_and_database(self) -> None:
        sql = (
            f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}';\n"
            f"CREATE DATABASE {DATABASE} OWNER {ROLE};\n"
        )
        # The password goes through stdin, not the command line.
        self._run(self._psql_command("postgres", "-q", "-f", "-"), input=sql)

    def url_for(self, database: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + database

    def create_database(self, database: str) -> str:
        """A new empty database owned by the test role; returns its URL."""
        self.psql(f"CREATE DATABASE {database} OWNER {ROLE}", database="postgres")
        return self.url_for(database)

    def psql(self, sql: str, database: str = DATABASE) -> str:
        """Run ``sql`` as the superuser over the Unix socket; returns psql's output."""
        return self._run(self._psql_command(database, "-A", "-t", "-c", sql)).stdout

    def _psql_command(self, database: str, *arguments: str) -> list[str]:
        """psql as the superuser on ``database`` over the Unix socket, stopping at an error."""
        return [
            str(self.bin_dir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", str(self.root),
            "-p", str(self.port), "-U", "postgres", "-d", database, *arguments,
        ]

    def stop(self) -> None:
        """Stop the server (fast shutdown), killing it if that fails, and remove the folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                result = self._run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    ],
                    timeout=60,
                    check=False,
                )
                if result.returncode != 0:
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """Kill the server as a crash would (SIGKILL to the postmaster); ``stop`` still cleans
        up after it."""
        self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, 9)  # SIGKILL the postmaster this object started; its children exit with it
        except (ProcessLookupError, PermissionError):
            return
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
