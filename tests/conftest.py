"""Shared fixtures: one embedded broker per session (Apache Kafka, single KRaft node),
unique topics, and subprocesses (workers) that are always stopped and whose logs are shown
on failure.

Everything under tests/unit/ is marked ``unit`` and everything under tests/integration/
``integration`` automatically; the fault tests (test_faults.py, test_reliability.py) are
also marked ``fault``. The tiers: ``-m unit``, ``-m "integration and not fault"``, ``-m fault``.

The broker kind: ``GRID_TEST_BROKER=kafka`` (default) runs every test but those marked
``tansu_only`` on Apache Kafka; ``GRID_TEST_BROKER=tansu`` runs only the tests marked
``tansu`` or ``tansu_only`` on the Tansu fallback broker (and turns on its workarounds,
``GRID_BROKER_KIND=tansu``, for this process and the workers it starts).
"""

from __future__ import annotations

import os

TEST_BROKER = os.environ.get("GRID_TEST_BROKER", "kafka").strip().lower()
if TEST_BROKER not in ("kafka", "tansu"):
    raise SystemExit(f"GRID_TEST_BROKER={TEST_BROKER!r}: expected kafka or tansu")
os.environ["GRID_BROKER_KIND"] = TEST_BROKER  # before anything imports streams

import contextlib  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
UNIT_DIR = Path(__file__).resolve().parent / "unit"

# Logs of the running test's broker and subprocesses, shown when it fails.
_LOGS: dict[str, list[Path]] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        parents = Path(str(item.path)).parents
        if INTEGRATION_DIR in parents:
            item.add_marker(pytest.mark.integration)
        elif UNIT_DIR in parents:
            item.add_marker(pytest.mark.unit)
        on_tansu = item.get_closest_marker("tansu") or item.get_closest_marker("tansu_only")
        if TEST_BROKER == "tansu":
            (keep if on_tansu else drop).append(item)
        else:
            (drop if item.get_closest_marker("tansu_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def show_on_failure(path: Path, nodeid: str | None = None) -> None:
    """Append the tail of ``path`` to the report of test ``nodeid`` (default: the test whose
    body is running) if it fails; a file registered outside a test's body without a
    ``nodeid`` (a shared fixture's worker) is shown for every failing test."""
    if nodeid is None:
        current = os.environ.get("PYTEST_CURRENT_TEST", "")
        nodeid = current.rsplit(" ", 1)[0] if current.endswith("(call)") else "session"
    _LOGS.setdefault(nodeid, []).append(path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.failed:  # the test's own workers last: a truncated report keeps its tail
        def workers_last(paths: list[Path]) -> list[Path]:
            return sorted(paths, key=lambda p: p.name.startswith("worker-"))
        for path in (workers_last(_LOGS.get("session", []))
                     + workers_last(_LOGS.get(item.nodeid, []))):
            if path.exists():
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-80:])
                report.sections.append((f"log {path.name} (last 80 lines)", tail))


def start_broker(tmp: Path, nodes: int = 1, nodeid: str = "session") -> object:
    """A running broker of this session's kind with ALL_TOPICS created: Apache Kafka
    (``nodes`` KRaft nodes, data in ``tmp``) or Tansu. Its logs are shown on failure."""
    from streams.broker import EmbeddedBroker, ensure_topics
    from streams.topics import ALL_TOPICS

    if TEST_BROKER == "tansu":
        log = tmp / "tansu.log"
        _LOGS.setdefault(nodeid, []).append(log)
        b = EmbeddedBroker(log_path=log, ready_timeout=30).start()
        ensure_topics(b.bootstrap, ALL_TOPICS, timeout=30)
        return b
    from streams.kafka_server import EmbeddedKafka

    k = EmbeddedKafka(nodes=nodes, data_dir=tmp / "kafka", topics=ALL_TOPICS)
    for n in k.nodes:
        _LOGS.setdefault(nodeid, []).append(k.log_path(n.node_id))
    return k.start()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The session's broker (see the module docstring) with ALL_TOPICS created."""
    b = start_broker(tmp_path_factory.mktemp("broker"))
    try:
        yield b
    finally:
        b.stop()  # type: ignore[attr-defined]


@pytest.fixture
def bootstrap(broker: object) -> str:
    return broker.bootstrap  # type: ignore[attr-defined]


def unique_name(prefix: str = "t") -> str:
    """A name no other test uses (topics, consumer groups, Faust app ids)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def new_topic(broker: object) -> Callable[..., str]:
    """Factory: ``new_topic(partitions=3, prefix="t")`` creates a fresh topic, returns its name."""
    from streams.broker import ensure_topics

    def make(partitions: int = 3, prefix: str = "t", configs: dict[str, str] | None = None) -> str:
        name = unique_name(prefix)
        ensure_topics(
            broker.bootstrap,  # type: ignore[attr-defined]
            {name: partitions},
            replication=getattr(broker, "replication", 1),
            configs={name: configs} if configs else None,
        )
        return name

    return make


class Processes:
    """Subprocesses started by one test: logs to files, always stopped at teardown."""

    def __init__(self, tmp_path: Path, nodeid: str) -> None:
        self.tmp_path = tmp_path
        self.nodeid = nodeid
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: list[str], env: dict[str, str] | None = None, name: str = "proc"
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` (``python`` means this interpreter) in the repo root."""
        if args and args[0] == "python":
            args = [sys.executable, *args[1:]]
        log = self.tmp_path / f"{name}-{len(self.procs)}.log"
        _LOGS.setdefault(self.nodeid, []).append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                args,
                cwd=REPO,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)


@pytest.fixture
def processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    """Start worker subprocesses with ``processes.start([...])``; all are stopped afterwards."""
    procs = Processes(tmp_path, request.node.nodeid)
    try:
        yield procs
    finally:
        procs.stop_all()
        _LOGS.pop(request.node.nodeid, None)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server (Debian's package) on a free loopback port; its URL."""
    from store.pg_server import PostgresServer

    with PostgresServer() as pg:
        yield pg.url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with pg_database(request.getfixturevalue("postgres")) as url:
        yield url


@contextlib.contextmanager
def pg_database(base: str, prefix: str = "s") -> Iterator[str]:
    """A fresh database on the PostgreSQL server of URL ``base``, dropped afterwards; its
    URL."""
    import sqlalchemy as sa

    name = unique_name(prefix).replace("-", "_").lower()
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
