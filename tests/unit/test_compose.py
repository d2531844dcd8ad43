"""docker-compose.yml is internally consistent (no Docker engine here: parse and check)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from grid.cli import SUBCOMMANDS
from streams.broker import bootstrap_of
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
KAFKA = {
    name: s for name, s in SERVICES.items() if str(s.get("image", "")).startswith("apache/kafka")
}
WORKER = SERVICES["worker"]
WORKER_ENV = {k: str(v) for k, v in WORKER["environment"].items()}
# What `grid worker` reads: every Settings field as GRID_<FIELD>, plus GRID_HOME.
WORKER_READS = {f"GRID_{f.name.upper()}" for f in fields(Settings)} | {"GRID_HOME"}


def _default(value: str) -> str:
    """``${VAR:-default}`` -> ``default`` (compose interpolation)."""
    m = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return m.group(1) if m else value


def _hostports(listeners: str) -> dict[str, tuple[str, int]]:
    """``PLAINTEXT://kafka-1:9092,CONTROLLER://:9093`` -> {name: (host, port)}."""
    out = {}
    for item in listeners.split(","):
        name, rest = item.split("://")
        host, port = rest.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


def test_three_kraft_brokers_with_rf3_and_min_isr2():
    assert len(KAFKA) == 3
    ids = {s["environment"]["KAFKA_NODE_ID"] for s in KAFKA.values()}
    assert len(ids) == 3
    for s in KAFKA.values():
        env = s["environment"]
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        rf = int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"])
        assert rf == 3 <= len(KAFKA)
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == rf
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2 < rf
        assert len({k["environment"]["CLUSTER_ID"] for k in KAFKA.values()}) == 1


def test_quorum_voters_and_listeners_match_services():
    for name, s in KAFKA.items():
        env = s["environment"]
        listeners = _hostports(env["KAFKA_LISTENERS"])
        advertised = _hostports(env["KAFKA_ADVERTISED_LISTENERS"])
        voters = dict(v.split("@") for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        assert set(voters.values()) == {f"{k}:{listeners['CONTROLLER'][1]}" for k in KAFKA}
        assert voters[env["KAFKA_NODE_ID"]] == f"{name}:{listeners['CONTROLLER'][1]}"
        assert advertised["PLAINTEXT"] == (name, listeners["PLAINTEXT"][1])
        published = {int(p.split(":")[0]) for p in s.get("ports", [])}
        assert published == {advertised["EXTERNAL"][1]} == {listeners["EXTERNAL"][1]}
        protocols = dict(
            p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        assert set(listeners) <= set(protocols)


@pytest.mark.parametrize("service", ["worker", "topics"])
def test_bootstrap_servers_are_declared_kafka_listeners(service):
    env = SERVICES[service]["environment"]
    internal = {
        f"{name}:{_hostports(s['environment']['KAFKA_LISTENERS'])['PLAINTEXT'][1]}"
        for name, s in KAFKA.items()
    }
    assert set(bootstrap_of(env["GRID_BROKER"]).split(",")) == internal


def test_worker_env_is_what_the_worker_reads():
    assert set(WORKER_ENV) <= WORKER_READS, set(WORKER_ENV) - WORKER_READS
    assert {"GRID_BROKER", "GRID_WEB_PORT", "GRID_PARTITIONS", "GRID_DATA_DIR"} <= set(WORKER_ENV)
    assert int(WORKER_ENV["GRID_REPLICATION"]) <= len(KAFKA)
    assert WORKER_ENV["GRID_WEB_HOST"] == "0.0.0.0"  # Prometheus scrapes from another container
    assert _default(WORKER_ENV["GRID_PARTITIONS"]) == _default(
        str(SERVICES["topics"]["environment"]["GRID_PARTITIONS"])
    )
    assert WORKER_ENV["GRID_REPLICATION"] == str(
        SERVICES["topics"]["environment"]["GRID_REPLICATION"]
    )


def test_worker_is_scalable_and_runs_grid_worker():
    assert "ports" not in WORKER  # published host ports would clash with --scale worker=N
    assert "container_name" not in WORKER
    assert WORKER["command"][:2] == ["grid", "worker"] and "worker" in SUBCOMMANDS
    assert str(WORKER_ENV["GRID_WEB_PORT"]) in {str(p) for p in WORKER["expose"]}
    assert WORKER["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_topics_service_waits_for_every_broker():
    deps = SERVICES["topics"]["depends_on"]
    assert set(deps) == set(KAFKA)
    assert all(d["condition"] == "service_healthy" for d in deps.values())
    assert all("healthcheck" in s for s in KAFKA.values())
    cmd = SERVICES["topics"]["command"]
    assert cmd[:2] == ["python", "-c"] and "all_topics(" in cmd[2]
    compile(cmd[2], "topics-init", "exec")  # the inline script is valid Python


def test_prometheus_scrapes_the_worker_port():
    prom_service = SERVICES["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prom_service["volumes"])
    config = yaml.safe_load((REPO / "deploy/prometheus.yml").read_text())
    assert mounts["./deploy/prometheus.yml"] in " ".join(prom_service["command"])
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    job = jobs["grid-worker"]
    assert job["metrics_path"] == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and str(sd["port"]) == WORKER_ENV["GRID_WEB_PORT"]
    assert config["rule_files"] == [mounts["./deploy/prometheus/alerts.yml"]]


def test_grafana_provisioning_points_at_prometheus_and_dashboards_dir():
    grafana = SERVICES["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    prov = REPO / "deploy/grafana/provisioning"
    (ds,) = yaml.safe_load((prov / "datasources/prometheus.yml").read_text())["datasources"]
    prom_port = SERVICES["prometheus"]["ports"][0].split(":")[1]
    assert ds["url"] == f"http://prometheus:{prom_port}"
    (provider,) = yaml.safe_load((prov / "dashboards/grid.yml").read_text())["providers"]
    assert provider["options"]["path"] == mounts["./deploy/grafana/dashboards"]


def test_referenced_files_and_volumes_exist():
    named = set(COMPOSE.get("volumes") or {})
    for name, s in SERVICES.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (REPO / src).exists(), f"{name}: {src} missing"
            else:
                assert src in named, f"{name}: volume {src} not declared"
        if "build" in s:
            assert (REPO / s["build"] / "Dockerfile").is_file()


def test_dockerfile_copies_existing_paths_and_runs_grid():
    text = (REPO / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), src
    assert 'CMD ["grid", "worker"]' in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not {"grid", "geodata", "rules", "streams", "pyproject.toml"} & set(ignored)


def test_compose_runs_the_kafka_release_that_the_pom_pins():
    from streams.kafka_server import kafka_version

    assert {s["image"] for s in KAFKA.values()} == {f"apache/kafka:{kafka_version()}"}


def test_local_three_node_cluster_has_the_compose_broker_settings(tmp_path):
    """`grid kafka start --nodes 3` and the fault tests run what compose runs."""
    from streams.kafka_server import EmbeddedKafka

    k = EmbeddedKafka(nodes=3, data_dir=tmp_path)
    props = dict(line.split("=", 1)
                 for line in k._config(k.nodes[0]).read_text().splitlines() if line)
    env = COMPOSE["x-kafka-env"]
    same = {
        "process.roles": "KAFKA_PROCESS_ROLES",
        "default.replication.factor": "KAFKA_DEFAULT_REPLICATION_FACTOR",
        "min.insync.replicas": "KAFKA_MIN_INSYNC_REPLICAS",
        "offsets.topic.replication.factor": "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "transaction.state.log.replication.factor":
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "transaction.state.log.min.isr": "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "auto.create.topics.enable": "KAFKA_AUTO_CREATE_TOPICS_ENABLE",
    }
    assert {p: props[p] for p in same} == {p: str(env[e]) for p, e in same.items()}
    assert props["controller.quorum.voters"].count("@127.0.0.1:") == 3
