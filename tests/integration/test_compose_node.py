"""deploy/kafka/compose-node.sh against the real Kafka 4.1.1 tools (no Docker needed).

The compose Kafka nodes run that script before the apache/kafka image's own start: it renders
the server properties from ``KAFKA_*`` as the image does and formats the storage with every
principal's SCRAM credential. Here its format command runs on the real ``StorageTool``, and
the image's own setup step (``kafka.docker.KafkaDockerWrapper``, in the same jars) renders the
same properties and finds the storage formatted, which the image's launch script tolerates.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from streams.kafka_server import classpath
from tests.unit.test_compose import NODE_SCRIPT, POLICY, _node_env


def _java(main: str, *args: str, env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess:
    return subprocess.run(["java", "-Xmx256m", "-cp", classpath(), main, *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_node_script_formats_with_scram_and_the_image_renders_the_same(tmp_path: Path):
    env = _node_env("kafka-1", tmp_path / "node", KAFKA_LOG_DIRS=str(tmp_path / "data"))
    dry = subprocess.run(["bash", str(NODE_SCRIPT)], env=env, capture_output=True, text=True,
                         timeout=30)
    assert dry.returncode == 0, dry.stderr
    rendered, fmt = dry.stdout.split("# format\n")
    tool, command, *args = fmt.split()
    assert (Path(tool).name, command) == ("kafka-storage.sh", "format")

    done = _java("kafka.tools.StorageTool", command, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Formatting metadata directory" in done.stdout
    assert (tmp_path / "data" / "meta.properties").is_file()
    again = _java("kafka.tools.StorageTool", command, *args)  # a container restart
    assert again.returncode == 0, again.stdout + again.stderr

    dirs = {d: tmp_path / d for d in ("defaults", "mounted", "final")}
    for d in dirs.values():
        d.mkdir()
    (dirs["defaults"] / "server.properties").write_text("")
    image_env = {k: v for k, v in env.items() if k != "GRID_NODE_DRY_RUN"}
    setup = _java("kafka.docker.KafkaDockerWrapper", "setup",
                  "--default-configs-dir", str(dirs["defaults"]),
                  "--mounted-configs-dir", str(dirs["mounted"]),
                  "--final-configs-dir", str(dirs["final"]), env=image_env)
    # the image's launch script goes on when the output says so (grep -i "already formatted")
    assert "already formatted" in (setup.stdout + setup.stderr).lower()
    image = (dirs["final"] / "server.properties").read_text()
    assert {line for line in image.splitlines() if line.strip()} == set(rendered.splitlines())
    assert len(POLICY) == sum(a.startswith("--add-scram=") for a in args)
