"""Apache Kafka brokers as local processes: fetch the server from Maven Central, run a
KRaft cluster of 1 or 3 combined broker+controller nodes on loopback, with data on disk.

* :func:`fetch` copies the runtime classpath pinned by ``deploy/kafka/pom.xml`` into
  ``~/.cache/grid/kafka/<version>/`` (``GRID_KAFKA_CACHE``) with ``mvn
  dependency:copy-dependencies``; a second call is a no-op.
* :class:`EmbeddedKafka` formats each node's storage on first use, starts the JVMs, waits
  until every node is registered, creates the grid topics and stops the nodes again.
  ``kill``/``stop_node``/``start_node``/``pause``/``resume`` act on one node (fault tests).
  Its data directory keeps the cluster id and ports (``cluster.json``): a cluster started
  again on the same directory has every topic, committed offset and changelog back.

The broker settings are the ones of ``docker-compose.yml`` (RF 3 and ``min.insync.replicas``
2 with three nodes, no topic auto-creation), plus a zero initial rebalance delay.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from streams.broker import (
    BrokerError,
    api_versions_ok,
    die_with_parent,
    ensure_topics,
    free_port,
    terminate,
    wait_stopped,
)

log = logging.getLogger(__name__)

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kafka"
POM = DEPLOY / "pom.xml"
LOG_CONFIG = DEPLOY / "log4j2.properties"
MIN_JAVA = 17


def kafka_version(pom: Path = POM) -> str:
    """The Apache Kafka release pinned by the POM."""
    m = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom.read_text())
    if not m:
        raise BrokerError(f"{pom} has no <kafka.version>")
    return m.group(1).strip()


def cache_dir(version: str | None = None) -> Path:
    """Where the classpath of ``version`` lives: ``$GRID_KAFKA_CACHE/<version>``."""
    root = Path(os.environ.get("GRID_KAFKA_CACHE") or Path.home() / ".cache" / "grid" / "kafka")
    return root / (version or kafka_version())


def java_major(java: str = "java") -> int | None:
    """The major version of ``java`` on PATH (``None`` if there is none)."""
    exe = shutil.which(java)
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def java_ok() -> bool:
    """Whether a Java runtime able to run the broker (17 or newer) is on PATH."""
    return (java_major() or 0) >= MIN_JAVA


def fetch(quiet: bool = True) -> Path:
    """The broker's classpath directory, fetched with Maven on first use (idempotent).

    Raises :class:`BrokerError` naming what is missing (Java, Maven) or Maven's output."""
    pom_sum = hashlib.sha256(POM.read_bytes()).hexdigest()
    target = cache_dir()
    stamp = target / ".complete"
    if stamp.is_file() and stamp.read_text().strip() == pom_sum:
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not installed: apt-get install maven")
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={partial}", "-DincludeScope=runtime"]
    if quiet:
        cmd.insert(2, "-q")
    done = subprocess.run(cmd, capture_output=quiet, text=True)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise BrokerError(f"mvn could not fetch Apache Kafka {kafka_version()}:\n"
                          f"{(done.stdout or '')[-3000:]}{(done.stderr or '')[-2000:]}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    stamp.write_text(pom_sum + "\n")
    return target


def classpath() -> str:
    """The ``-cp`` value for the broker JVM (fetches first if needed)."""
    return os.pathsep.join(str(p) for p in sorted(fetch().glob("*.jar")))


@dataclass
class Node:
    """One combined broker+controller process."""

    node_id: int
    port: int
    controller_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EmbeddedKafka:
    """A local Apache Kafka KRaft cluster of ``nodes`` JVM processes on loopback.

    ``with EmbeddedKafka(nodes=3, data_dir=d) as k: k.bootstrap`` starts it, creates
    ``topics`` (name -> partitions; RF = min(3, nodes)) and stops every node on exit.
    ``data_dir`` defaults to a fresh temporary directory; ``port`` fixes node 1's client
    port (the others take the next ones). Each node logs to ``<data_dir>/node-N.log``.
    A started cluster dies with the process that started it (``PR_SET_PDEATHSIG``), so
    start it from a thread that lives as long as the cluster.
    """

    def __init__(
        self,
        nodes: int = 1,
        data_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        topics: dict[str, int] | None = None,
        heap: str = "512m",
        ready_timeout: float = 90.0,
        extra_config: dict[str, str] | None = None,
        secure: bool = False,
    ) -> None:
        if nodes not in (1, 3):
            raise ValueError("nodes must be 1 or 3")
        if data_dir is None:
            import tempfile

            data_dir = tempfile.mkdtemp(prefix="grid-kafka-")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.host = host
        self.topics = dict(topics or {})
        self.heap = heap
        self.ready_timeout = ready_timeout
        self.extra_config = dict(extra_config or {})
        self.secure = secure
        self.cluster_id, self.nodes = self._load_or_plan(nodes, port)
        self.policy: dict = {}
        self.passwords: dict[str, str] = {}
        if secure:
            from streams import kafka_acl

            self.policy = kafka_acl.load_policy()
            self.passwords = kafka_acl.credentials(self.data_dir, self.policy)

    def security(self, principal: str = "admin") -> dict:
        """Client keyword arguments that authenticate as ``principal`` (none when the
        cluster is not secured)."""
        from streams.broker import client_security

        return client_security(principal, self.passwords[principal]) if self.secure else {}

    # -- layout ------------------------------------------------------------------------
    @property
    def replication(self) -> int:
        return min(3, len(self.nodes))

    @property
    def bootstrap(self) -> str:
        """``host:port,host:port,...`` for Kafka clients."""
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def url(self) -> str:
        """``kafka://host:port,...`` (the form ``GRID_BROKER`` and Faust take)."""
        return "kafka://" + self.bootstrap

    @property
    def version(self) -> str:
        return kafka_version()

    def node(self, node_id: int) -> Node:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(f"no node {node_id}; nodes are {[n.node_id for n in self.nodes]}")

    def log_path(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}.log"

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of every node's log (for failure reports)."""
        out = []
        for n in self.nodes:
            path = self.log_path(n.node_id)
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- node {n.node_id} ---\n" + "\n".join(text))
        return "\n".join(out)

    def _load_or_plan(self, nodes: int, port: int | None) -> tuple[str, list[Node]]:
        meta = self.data_dir / "cluster.json"
        if meta.is_file():
            saved = json.loads(meta.read_text())
            if len(saved["nodes"]) != nodes:
                raise BrokerError(
                    f"{self.data_dir} holds a {len(saved['nodes'])}-node cluster, not {nodes}: "
                    "use another --data directory or the same --nodes")
            if saved.get("secure", False) != self.secure:
                was = "secured" if saved.get("secure") else "open (no --secure)"
                raise BrokerError(f"{self.data_dir} holds a cluster that was {was}: start it "
                                  "the same way, or use another --data directory")
            return saved["cluster_id"], [Node(n["id"], n["port"], n["controller_port"])
                                         for n in saved["nodes"]]
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        plan = []
        for i in range(1, nodes + 1):
            client = port + i - 1 if port else free_port(self.host)
            plan.append(Node(i, client, free_port(self.host)))
        return cluster_id, plan

    def _save(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "cluster.json").write_text(json.dumps({
            "cluster_id": self.cluster_id, "kafka_version": self.version, "secure": self.secure,
            "nodes": [{"id": n.node_id, "port": n.port, "controller_port": n.controller_port}
                      for n in self.nodes]}, indent=1) + "\n")

    def _config(self, n: Node) -> Path:
        voters = ",".join(f"{m.node_id}@{self.host}:{m.controller_port}" for m in self.nodes)
        rf = self.replication
        props = {
            "process.roles": "broker,controller",
            "node.id": str(n.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"{self._client}://{self.host}:{n.port},CONTROLLER://{self.host}:"
                         f"{n.controller_port}",
            "advertised.listeners": f"{self._client}://{self.host}:{n.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": self._client,
            "listener.security.protocol.map":
                f"{self._client}:{self._client},CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / f"node-{n.node_id}"),
            "num.partitions": "8",
            "default.replication.factor": str(rf),
            "min.insync.replicas": "2" if rf >= 3 else "1",
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": "2" if rf >= 3 else "1",
            "transaction.state.log.num.partitions": "8",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "-1",
            **self._secure_config(),
            **self.extra_config,
        }
        path = self.data_dir / f"node-{n.node_id}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    @property
    def _client(self) -> str:
        return "SASL_PLAINTEXT" if self.secure else "PLAINTEXT"

    def _secure_config(self) -> dict[str, str]:
        """SASL SCRAM on the client listener (brokers talk to each other as ``admin``) and
        the standard authorizer refusing whatever is not granted. The controller listener
        stays PLAINTEXT on loopback; its anonymous peers are the nodes themselves."""
        if not self.secure:
            return {}
        from streams.broker import SASL_MECHANISM
        from streams.kafka_acl import super_users

        jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="admin" password="{self.passwords["admin"]}";')
        supers = [f"User:{p}" for p in super_users(self.policy)] + ["User:ANONYMOUS"]
        return {
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
            f"listener.name.sasl_plaintext.{SASL_MECHANISM.lower()}.sasl.jaas.config": jaas,
            "authorizer.class.name":
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": ";".join(supers),
        }

    # -- processes -----------------------------------------------------------------------
    def _java(self, n: Node, main: str, *args: str) -> list[str]:
        return ["java", f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG_CONFIG}",
                f"-Dgrid.kafka.log={self.log_path(n.node_id)}",
                "-cp", classpath(), main, *args]

    def _format(self, n: Node, config: Path) -> None:
        if (self.data_dir / f"node-{n.node_id}" / "meta.properties").is_file():
            return
        from streams.broker import SASL_MECHANISM

        scram = [f"--add-scram={SASL_MECHANISM}=[name={p},password={pw}]"
                 for p, pw in self.passwords.items()]
        done = subprocess.run(
            self._java(n, "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}",
                       f"--config={config}", "--ignore-formatted", *scram),
            capture_output=True, text=True)
        if done.returncode != 0:
            raise BrokerError(f"formatting node {n.node_id} failed:\n{done.stdout}{done.stderr}")

    def start_node(self, node_id: int) -> None:
        """Start one node (format its storage on first use); returns without waiting."""
        n = self.node(node_id)
        if n.running:
            return
        if not java_ok():
            raise BrokerError(f"Apache Kafka needs Java {MIN_JAVA}+ on PATH "
                              "(apt-get install openjdk-17-jre-headless)")
        config = self._config(n)
        self._format(n, config)
        with open(self.log_path(n.node_id), "ab") as out:
            out.write(f"\n=== grid: starting node {n.node_id} at {time.ctime()} ===\n".encode())
            n.proc = subprocess.Popen(
                self._java(n, "kafka.Kafka", str(config)), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent)

    def start(self) -> Self:
        """Start every node, wait until the cluster serves, create :attr:`topics`."""
        self._save()
        for n in self.nodes:
            self.start_node(n.node_id)
        try:
            self.wait_ready()
            if self.secure:
                from streams.kafka_acl import apply_acls

                apply_acls(self.bootstrap.split(","), self.passwords["admin"], self.policy)
            if self.topics:
                ensure_topics(self.bootstrap, self.topics, replication=self.replication,
                              timeout=60, security=self.security())
        except BaseException:
            self.stop()
            raise
        log.info("Apache Kafka %s ready on %s", self.version, self.bootstrap)
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every running node answers and all of them are registered brokers."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    raise BrokerError(f"Kafka node {n.node_id} exited with "
                                      f"{n.proc.returncode}:\n{self.log_tail()}")
            live = [n for n in self.nodes if n.running]
            if all(api_versions_ok(self.host, n.port) for n in live) and \
                    self.registered_brokers() >= len(live):
                return
            time.sleep(0.2)
        raise BrokerError(f"Apache Kafka on {self.bootstrap} not ready within "
                          f"{timeout or self.ready_timeout:.0f} s:\n{self.log_tail()}")

    def registered_brokers(self) -> int:
        """How many brokers the cluster metadata lists (0 if no node answers)."""
        from kafka.admin import KafkaAdminClient

        live = [f"{self.host}:{n.port}" for n in self.nodes if n.running]
        try:
            admin = KafkaAdminClient(bootstrap_servers=live, request_timeout_ms=3000,
                                     **self.security())
        except Exception:  # not up yet, whatever the client says
            return 0
        try:
            return len(admin.describe_cluster()["brokers"])
        except Exception:  # not serving yet
            return 0
        finally:
            admin.close()

    def stop_node(self, node_id: int, timeout: float = 30.0) -> int | None:
        """Stop one node cleanly (SIGTERM: controlled shutdown), SIGKILL after ``timeout``."""
        n = self.node(node_id)
        proc, n.proc = n.proc, None
        if proc is None:
            return None
        terminate([proc], timeout)
        return proc.returncode

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, as in a crash."""
        n = self.node(node_id)
        proc, n.proc = n.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def pause(self, node_id: int | None = None) -> None:
        """Freeze one node, or every node (SIGSTOP): clients see a stalled, not a closed,
        socket."""
        self._signal(node_id, signal.SIGSTOP)
        for n in self.nodes if node_id is None else [self.node(node_id)]:
            assert n.proc is not None
            wait_stopped(n.proc.pid)

    def resume(self, node_id: int | None = None) -> None:
        """Continue one paused node, or every node (SIGCONT)."""
        self._signal(node_id, signal.SIGCONT)

    def _signal(self, node_id: int | None, sig: signal.Signals) -> None:
        for n in self.nodes if node_id is None else [self.node(node_id)]:
            if not n.running:
                raise BrokerError(f"node {n.node_id} is not running")
            assert n.proc is not None
            n.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node at once (SIGTERM), SIGKILL what is left after ``timeout``
        (idempotent)."""
        procs = [p for n in self.nodes if (p := n.proc) is not None]
        for n in self.nodes:
            n.proc = None
        terminate(procs, timeout)

    @property
    def running(self) -> bool:
        return any(n.running for n in self.nodes)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedKafka {self.version} {self.bootstrap} {self.data_dir}>"
