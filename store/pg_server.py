"""A throwaway PostgreSQL server on loopback, for tests and benchmarks (Debian's packages).

:class:`PostgresServer` runs ``initdb`` into a fresh directory and ``postgres`` on a free
port, as the ``postgres`` user when started by root (PostgreSQL refuses to run as root).
The server dies with its starter (``PR_SET_PDEATHSIG``). Production uses a managed server;
this is for ``./dev test`` and ``grid bench store``.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` with initdb, or the one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    return Path(exe).parent if exe else None


class PostgresServer:
    """``with PostgresServer() as pg: pg.url`` — an empty database ``grid`` on loopback."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self.bin = bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
        self._tmp = None if data_dir else tempfile.mkdtemp(prefix="grid-pg-")
        self.dir = Path(data_dir or self._tmp)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.user = "grid"
        self._as = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/grid"

    def _preexec(self) -> None:
        if self._as is not None:  # drop root first: a credential change clears the deathsig
            os.setgid(self._as.pw_gid)
            os.setuid(self._as.pw_uid)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, preexec_fn=self._preexec,
                       cwd=self.dir)

    def start(self) -> PostgresServer:
        pgdata = self.dir / "data"
        if self._as is not None:
            os.chown(self.dir, self._as.pw_uid, self._as.pw_gid)
        if not (pgdata / "PG_VERSION").exists():
            self._run(str(self.bin / "initdb"), "-D", str(pgdata), "-U", self.user,
                      "-A", "trust", "-E", "UTF8", "--no-sync")
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 (owned by the process)
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(pgdata), "-p", str(self.port),
             "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._preexec, cwd=self.dir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited; see {self.dir / 'postgres.log'}")
            ok = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                                 str(self.port)], capture_output=True).returncode == 0
            if ok:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"postgres did not accept connections within 60 s on "
                               f"port {self.port}; see {self.dir / 'postgres.log'}")
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", self.user, "grid"], capture_output=True)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
