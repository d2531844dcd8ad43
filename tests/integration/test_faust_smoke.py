"""A tiny Faust worker (tests/integration/smoke_app.py) on the session's broker:
group join, batched agent, changelog-backed table, Prometheus metrics, and table
recovery after the worker is killed with SIGKILL (memory and RocksDB stores)."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.broker import create_topics, free_port
from streams.kafka_io import collect_records, produce_json
from tests.conftest import TEST_BROKER

PARTITIONS = 4
KEYS = [f"street-{i}" for i in range(5)]


def smoke_env(broker, app_id: str, tmp_path, store: str = "memory://", web_port: int = 0):
    return {
        "SMOKE_BROKER": broker.url,
        "SMOKE_APP_ID": app_id,
        "SMOKE_IN": f"{app_id}-in",
        "SMOKE_OUT": f"{app_id}-out",
        "SMOKE_PARTITIONS": str(PARTITIONS),
        "SMOKE_STORE": store,
        "SMOKE_DATA_DIR": str(tmp_path / "data"),
        "SMOKE_WEB_PORT": str(web_port),
    }


async def _send(broker, env: dict[str, str], seqs: range) -> None:
    msgs = [{"k": KEYS[i % len(KEYS)], "seq": i} for i in seqs]
    await produce_json(broker.bootstrap, env["SMOKE_IN"], msgs, key_fn=lambda m: m["k"])


async def _outputs(broker, env, until, timeout: float = 90.0):
    return await collect_records(broker.bootstrap, env["SMOKE_OUT"], until, timeout=timeout)


async def _committed(broker, group: str, topic: str) -> dict[int, int]:
    cons = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
    await cons.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: (await cons.committed(tp)) or 0 for tp in tps}
    finally:
        await cons.stop()


@pytest.mark.tansu
async def test_faust_worker_batches_into_a_table(broker, processes, tmp_path):
    app_id = f"smoke-{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = smoke_env(broker, app_id, tmp_path, web_port=port)
    await create_topics(broker.bootstrap,
                        {env["SMOKE_IN"]: PARTITIONS, env["SMOKE_OUT"]: PARTITIONS})
    processes.start(["python", "-m", "tests.integration.smoke_app"], env=env, name="worker")
    await _send(broker, env, range(50))

    recs = await _outputs(broker, env, lambda rs: len(rs) >= 50)
    by_key: dict[str, list[int]] = defaultdict(list)
    for r in recs:
        by_key[r.key].append(r.value["count"])
    assert {k: sorted(v) for k, v in by_key.items()} == {k: list(range(1, 11)) for k in KEYS}

    # Table writes made inside a take() batch land in the changelog partition of the
    # event that caused them, i.e. the key's own source partition.
    source_partition = {r.key: r.value["partition"] for r in recs}
    changelog = await collect_records(
        broker.bootstrap, f"{app_id}-counts-changelog", lambda rs: len(rs) >= 50, timeout=30
    )
    assert {(r.key.strip('"'), r.partition) for r in changelog} == set(source_partition.items())

    metrics = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    )
    prefix = app_id.replace("-", "_")
    assert f"{prefix}_messages_received_total".encode() in metrics


# Known Tansu 0.6 anomaly, seen under CI load: after a SIGKILL the restarted member is
# sometimes assigned only Faust's __assignor topic (generation reset to 1) and never its input
# partitions. That is the broker, not the table recovery under test: on Tansu the scenario is
# re-run (visible as "rerun" in the summary), and a second failure fails the suite. On Apache
# Kafka it is not re-run.
@pytest.mark.tansu
@pytest.mark.flaky(reruns=2 if TEST_BROKER == "tansu" else 0)
@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_killed_worker_recovers_its_table(broker, processes, tmp_path, store):
    app_id = f"smoke-{uuid.uuid4().hex[:10]}"
    env = smoke_env(broker, app_id, tmp_path, store=store)
    await create_topics(broker.bootstrap,
                        {env["SMOKE_IN"]: PARTITIONS, env["SMOKE_OUT"]: PARTITIONS})
    first = processes.start(["python", "-m", "tests.integration.smoke_app"], env=env, name="w1")
    await _send(broker, env, range(50))
    outs = await _outputs(broker, env, lambda rs: len(rs) >= 50)

    # Wait until the worker has committed everything, so no input is processed twice.
    # (Expected offsets are counted, not asked for: Tansu's ListOffsets(latest) is
    # wrong after a multi-record batch, see docs/streams-infra.md.)
    ends = dict.fromkeys(range(PARTITIONS), 0)
    for r in outs:
        ends[r.value["partition"]] += 1
    committed: dict[int, int] = {}
    for _ in range(60):
        committed = await _committed(broker, app_id, env["SMOKE_IN"])
        if committed == ends:
            break
        await asyncio.sleep(0.5)
    assert committed == ends
    first.send_signal(signal.SIGKILL)
    first.wait(10)

    processes.start(["python", "-m", "tests.integration.smoke_app"], env=env, name="w2")
    await _send(broker, env, range(1000, 1001))  # KEYS[0] once more
    recs = await _outputs(broker, env, lambda rs: any(r.value["seq"] == 1000 for r in rs),
                          timeout=150)
    last = next(r.value for r in recs if r.value["seq"] == 1000)
    assert last["count"] == 11  # 10 recovered from the changelog/store, plus this one
    assert len(recs) == 51  # nothing before the kill was processed again
