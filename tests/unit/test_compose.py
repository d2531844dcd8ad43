"""docker-compose.yml is internally consistent (no Docker engine here: parse and check)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from grid.cli import SUBCOMMANDS
from streams.broker import SASL_MECHANISM, bootstrap_of, client_security
from streams.kafka_acl import load_policy, super_users
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
KAFKA = {
    name: s for name, s in SERVICES.items() if str(s.get("image", "")).startswith("apache/kafka")
}
WORKER = SERVICES["worker"]
WORKER_ENV = {k: str(v) for k, v in WORKER["environment"].items()}
# What `grid worker` reads: every Settings field as GRID_<FIELD>, plus GRID_HOME and the
# Kafka credentials (streams.broker.client_security).
WORKER_READS = set(Settings.env_names().values()) | {
    "GRID_HOME", "GRID_KAFKA_USER", "GRID_KAFKA_PASSWORD"}
POLICY = load_policy()
# Services that talk to Kafka: every one that is given a broker address.
CLIENTS = {name: s for name, s in SERVICES.items() if "GRID_BROKER" in s.get("environment", {})}
NODE_SCRIPT = REPO / "deploy/kafka/compose-node.sh"


def _default(value: str) -> str:
    """``${VAR:-default}`` -> ``default`` (compose interpolation)."""
    m = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return m.group(1) if m else value


def _password_var(value: str) -> str:
    """``${GRID_KAFKA_X_PASSWORD:?hint}`` -> ``GRID_KAFKA_X_PASSWORD`` (required, no default)."""
    m = re.fullmatch(r"\$\{(GRID_KAFKA_\w+_PASSWORD):\?[^}]+\}", value)
    assert m, f"{value!r} is not a required GRID_KAFKA_<PRINCIPAL>_PASSWORD"
    return m.group(1)


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` against ``env``."""
    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


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
        quorum = {k: k2["networks"]["kafka-quorum"]["aliases"][0] for k, k2 in KAFKA.items()}
        assert set(voters.values()) == {f"{quorum[k]}:{listeners['CONTROLLER'][1]}" for k in KAFKA}
        assert voters[env["KAFKA_NODE_ID"]] == f"{quorum[name]}:{listeners['CONTROLLER'][1]}"
        assert listeners["CONTROLLER"][0] == quorum[name]  # bound to the quorum network only
        assert advertised["INTERNAL"] == (name, listeners["INTERNAL"][1])
        published = {int(p.split(":")[0]) for p in s.get("ports", [])}
        assert published == {advertised["EXTERNAL"][1]} == {listeners["EXTERNAL"][1]}
        protocols = dict(
            p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        assert set(listeners) <= set(protocols)


@pytest.mark.parametrize("service", ["worker", "kafka-init"])
def test_bootstrap_servers_are_declared_kafka_listeners(service):
    env = SERVICES[service]["environment"]
    internal = {
        f"{name}:{_hostports(s['environment']['KAFKA_LISTENERS'])['INTERNAL'][1]}"
        for name, s in KAFKA.items()
    }
    assert set(bootstrap_of(env["GRID_BROKER"]).split(",")) == internal


def test_worker_env_is_what_the_worker_reads():
    assert set(WORKER_ENV) <= WORKER_READS, set(WORKER_ENV) - WORKER_READS
    assert {"GRID_BROKER", "GRID_WEB_PORT", "GRID_PARTITIONS", "GRID_DATA_DIR"} <= set(WORKER_ENV)
    assert int(WORKER_ENV["GRID_REPLICATION"]) <= len(KAFKA)
    assert WORKER_ENV["GRID_WEB_HOST"] == "0.0.0.0"  # Prometheus scrapes from another container
    assert _default(WORKER_ENV["GRID_PARTITIONS"]) == _default(
        str(SERVICES["kafka-init"]["environment"]["GRID_PARTITIONS"])
    )
    assert WORKER_ENV["GRID_REPLICATION"] == str(
        SERVICES["kafka-init"]["environment"]["GRID_REPLICATION"]
    )


def test_worker_is_scalable_and_runs_grid_worker():
    assert "ports" not in WORKER  # published host ports would clash with --scale worker=N
    assert "container_name" not in WORKER
    assert WORKER["command"][:2] == ["grid", "worker"] and "worker" in SUBCOMMANDS
    assert str(WORKER_ENV["GRID_WEB_PORT"]) in {str(p) for p in WORKER["expose"]}
    assert WORKER["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_init_service_waits_for_every_broker_and_creates_acls_then_topics():
    deps = SERVICES["kafka-init"]["depends_on"]
    assert set(deps) == set(KAFKA)
    assert all(d["condition"] == "service_healthy" for d in deps.values())
    assert all("healthcheck" in s for s in KAFKA.values())
    cmd = SERVICES["kafka-init"]["command"]
    assert cmd[:2] == ["python", "-c"]
    assert 0 <= cmd[2].index("apply_acls(") < cmd[2].index("ensure_topics(")
    assert "all_topics(" in cmd[2] and "security=client_security()" in cmd[2]
    compile(cmd[2], "kafka-init", "exec")  # the inline script is valid Python


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


# -- security: SASL SCRAM and the ACLs of deploy/kafka/principals.yaml (docs/ops.md) ----------

def _granted(principal: str, kind: str, name: str, operation: str) -> bool:
    """Whether ``principals.yaml`` lets ``principal`` do ``operation`` on ``kind`` ``name``."""
    grants = POLICY[principal]
    if grants.get("super"):
        return True
    for resource, ops in grants.get(kind, {}).items():
        hit = (name.startswith(resource[:-1]) if resource.endswith("*") else name == resource)
        if hit and (operation in ops or "ALL" in ops):
            return True
    return False


def test_every_kafka_client_authenticates_as_its_own_principal():
    assert set(CLIENTS) == {"kafka-init", "worker", "projector"}
    for name, s in CLIENTS.items():
        env = s["environment"]
        user = env["GRID_KAFKA_USER"]
        assert user in POLICY, f"{name}: {user} is not in principals.yaml"
        # its own principal's password, nobody else's
        assert _password_var(env["GRID_KAFKA_PASSWORD"]) == f"GRID_KAFKA_{user.upper()}_PASSWORD"
    assert CLIENTS["worker"]["environment"]["GRID_KAFKA_USER"] == "worker"
    assert CLIENTS["projector"]["environment"]["GRID_KAFKA_USER"] == "projector"
    assert CLIENTS["kafka-init"]["environment"]["GRID_KAFKA_USER"] in super_users(POLICY)


def test_worker_app_id_is_inside_the_worker_principals_grants():
    """Faust's group and changelog topics and the intake group are named after the app id."""
    app = WORKER_ENV["GRID_APP_ID"]
    assert _granted("worker", "group", app, "READ")
    assert _granted("worker", "group", f"{app}-intake", "READ")
    assert _granted("worker", "topic", f"{app}-cases-changelog", "WRITE")
    assert not _granted("gateway", "group", app, "READ")  # the matcher can say no


def test_client_security_speaks_what_the_listeners_expect(monkeypatch):
    env = next(iter(KAFKA.values()))["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    mechanisms = env["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    assert mechanisms == [SASL_MECHANISM] == [env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"]]
    for name, s in CLIENTS.items():
        monkeypatch.setenv("GRID_KAFKA_USER", s["environment"]["GRID_KAFKA_USER"])
        monkeypatch.setenv("GRID_KAFKA_PASSWORD", "pw")
        sec = client_security()
        assert sec["sasl_plain_username"] == s["environment"]["GRID_KAFKA_USER"]
        assert sec["sasl_mechanism"] in mechanisms
        for server in bootstrap_of(s["environment"]["GRID_BROKER"]).split(","):
            host, port = server.rsplit(":", 1)
            listeners = _hostports(KAFKA[host]["environment"]["KAFKA_LISTENERS"])
            (listener,) = [n for n, (_, p) in listeners.items() if p == int(port)]
            assert protocols[listener] == sec["security_protocol"], (name, server)
    # Every listener but the controllers' authenticates: no plaintext way in for clients.
    assert {p for n, p in protocols.items() if n != "CONTROLLER"} == {"SASL_PLAINTEXT"}


def test_controller_listener_is_on_a_network_only_the_nodes_join():
    networks = COMPOSE["networks"]
    assert networks["kafka-quorum"]["internal"] is True
    members = {n for n, s in SERVICES.items() if "kafka-quorum" in (s.get("networks") or {})}
    assert members == set(KAFKA)
    for s in KAFKA.values():
        assert "default" in s["networks"]  # the services reach INTERNAL there


def test_every_principal_gets_a_scram_credential_on_every_node():
    for name, s in KAFKA.items():
        env = s["environment"]
        principals = env["GRID_SCRAM_PRINCIPALS"].split()
        assert sorted(principals) == sorted(POLICY), name
        for p in principals:
            assert _password_var(env[f"GRID_KAFKA_{p.upper()}_PASSWORD"]) == (
                f"GRID_KAFKA_{p.upper()}_PASSWORD")
        assert s["command"] == ["/opt/grid/compose-node.sh"]
        mounts = dict(v.split(":")[:2] for v in s["volumes"])
        assert mounts["./deploy/kafka/compose-node.sh"] == s["command"][0]
    assert NODE_SCRIPT.stat().st_mode & stat.S_IXUSR  # the image runs it as a command


def _node_env(service: str, tmp_path: Path, **override: str) -> dict[str, str]:
    """The environment compose gives ``service``, passwords ``pw-<principal>``."""
    passwords = {f"GRID_KAFKA_{p.upper()}_PASSWORD": f"pw-{p}" for p in POLICY}
    env = {k: _interpolate(str(v), passwords) for k, v in KAFKA[service]["environment"].items()}
    env.update(GRID_NODE_CONFIG_DIR=str(tmp_path), GRID_NODE_DRY_RUN="1", **override)
    return {"PATH": os.environ["PATH"], **env}


def _run_node(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(NODE_SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=30)


def test_node_script_renders_the_secure_settings_of_grid_kafka_start(tmp_path):
    """compose-node.sh (dry run) renders what `grid kafka start --secure` configures."""
    from streams.kafka_server import EmbeddedKafka

    done = _run_node(_node_env("kafka-2", tmp_path / "node"))
    assert done.returncode == 0, done.stderr
    rendered, fmt = done.stdout.split("# format\n")
    props = dict(line.split("=", 1) for line in rendered.splitlines())
    k = EmbeddedKafka(nodes=3, data_dir=tmp_path / "local", secure=True)
    local = k._secure_config()
    for key in ("sasl.enabled.mechanisms", "sasl.mechanism.inter.broker.protocol",
                "authorizer.class.name", "allow.everyone.if.no.acl.found", "super.users"):
        assert props[key] == local[key], key
    assert props["node.id"] == "2" and props["inter.broker.listener.name"] == "INTERNAL"
    assert not [key for key in props if key.startswith("grid")]  # only KAFKA_* are rendered
    # each SASL listener logs the brokers in as admin, as the local client listener does
    jaas = local[f"listener.name.sasl_plaintext.{SASL_MECHANISM.lower()}.sasl.jaas.config"]
    jaas = jaas.replace(f'password="{k.passwords["admin"]}"', 'password="pw-admin"')
    for listener in ("internal", "external"):
        assert props[f"listener.name.{listener}.{SASL_MECHANISM.lower()}.sasl.jaas.config"] == jaas
    args = fmt.split()
    assert args[:2] == ["/opt/kafka/bin/kafka-storage.sh", "format"]
    assert f"--cluster-id={COMPOSE['x-kafka-env']['CLUSTER_ID']}" in args
    assert "--ignore-formatted" in args  # a restart keeps the credentials and the data
    assert sorted(a for a in args if a.startswith("--add-scram")) == sorted(
        f"--add-scram={SASL_MECHANISM}=[name={p},password=pw-{p}]" for p in POLICY)
    admin = (tmp_path / "node" / "admin.properties").read_text()
    assert f"sasl.mechanism={SASL_MECHANISM}\n" in admin and 'username="admin"' in admin
    assert 'password="pw-admin"' in admin
    assert stat.S_IMODE((tmp_path / "node" / "admin.properties").stat().st_mode) == 0o600


def test_node_script_refuses_a_missing_password(tmp_path):
    env = _node_env("kafka-1", tmp_path)
    env.pop("GRID_KAFKA_HOTLINE_PASSWORD")
    done = _run_node(env)
    assert done.returncode == 64
    assert "GRID_KAFKA_HOTLINE_PASSWORD is not set" in done.stderr


def test_healthcheck_authenticates_with_the_config_the_node_script_writes():
    test = COMPOSE["x-kafka-health"]["test"][1]
    config_dir = COMPOSE["x-kafka-env"]["GRID_NODE_CONFIG_DIR"]
    assert f"--command-config {config_dir}/admin.properties" in test
    port = _hostports(next(iter(KAFKA.values()))["environment"]["KAFKA_LISTENERS"])["INTERNAL"][1]
    assert f"--bootstrap-server localhost:{port}" in test


def test_init_service_reads_the_mounted_policy():
    init = SERVICES["kafka-init"]
    mounts = dict(v.split(":")[:2] for v in init["volumes"])
    assert mounts["./deploy/kafka/principals.yaml"] == init["environment"]["GRID_KAFKA_POLICY"]


def test_every_service_that_talks_to_kafka_starts_after_the_acls():
    for name in set(CLIENTS) - {"kafka-init"}:
        dep = SERVICES[name]["depends_on"]["kafka-init"]
        assert dep["condition"] == "service_completed_successfully", name


def test_compose_env_defines_every_password_compose_asks_for(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("compose_env",
                                                  REPO / "deploy/kafka/compose_env.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = mod.write_env(tmp_path)
    first = dict(line.split("=", 1) for line in path.read_text().splitlines())
    compose = (REPO / "docker-compose.yml").read_text()
    asked = set(re.findall(r"\$\{(GRID_(?:KAFKA_\w+|POSTGRES)_PASSWORD)", compose))
    assert asked == set(first) == {f"GRID_KAFKA_{p.upper()}_PASSWORD" for p in POLICY} | {
        "GRID_POSTGRES_PASSWORD"}
    assert len(set(first.values())) == len(first) and all(len(v) >= 16 for v in first.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = dict(line.split("=", 1) for line in mod.write_env(tmp_path).read_text().splitlines())
    assert again == first  # stable: the nodes' storage was formatted with these


def test_projector_and_workers_share_one_postgres_store():
    """The workers read the store the projector service fills; nobody replays the log."""
    from streams.readmodel import group_of

    proj = SERVICES["projector"]
    env = {k: str(v) for k, v in proj["environment"].items()}
    assert proj["command"] == ["grid", "projector"] and "projector" in SUBCOMMANDS
    assert env["GRID_STORE_URL"] == WORKER_ENV["GRID_STORE_URL"]
    url = _interpolate(env["GRID_STORE_URL"], {"GRID_POSTGRES_PASSWORD": "pw"})
    assert url == "postgresql+psycopg://grid:pw@postgres:5432/grid"
    pg = SERVICES["postgres"]["environment"]
    assert (pg["POSTGRES_USER"], pg["POSTGRES_DB"]) == ("grid", "grid")
    assert WORKER_ENV["GRID_PROJECTOR"] == "false"
    for s in (proj, WORKER):
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
    group = group_of(env["GRID_APP_ID"], url, private=False)
    assert group == "grid-projector"
    assert _granted("projector", "group", group, "READ")
    for topic in ("grid.case-events.v1", "grid.dispatch.v1", "grid.alerts.v1"):
        assert _granted("projector", "topic", topic, "READ")
    assert not _granted("projector", "topic", "grid.reports.v1", "WRITE")
