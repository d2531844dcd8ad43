"""Hostile input (tests/hostile/, manifest.json says what each file must become) over Kafka
and over HTTP: every item gets a DLQ entry with its reason (or a 4xx with a reason), the
harmless-but-weird texts become cases with the text kept verbatim, and the engine keeps
running. Files may contain __ID__, __NOW__, __LON__, __LAT__ (filled in per run)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from streams import topics as T
from tests.integration.conftest import fresh_point, make_report, submit, wait_for

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parent.parent / "hostile"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))


def load(name: str) -> tuple[str, bytes]:
    """A corpus item with a fresh report id, the current time and a fresh point."""
    rid = str(uuid.uuid4())
    lon, lat = fresh_point()
    raw = (CORPUS / name).read_bytes()
    for token, value in ((b"__ID__", rid), (b"__NOW__", datetime.now(UTC).isoformat()),
                         (b"__LON__", str(lon)), (b"__LAT__", str(lat))):
        raw = raw.replace(token, value.encode())
    return rid, raw


def dlq_entry_for(rid: str):
    return lambda d: d.get("report_id") == rid or rid in d.get("original_excerpt", "")


def test_corpus_covers_the_hostile_kinds():
    names = set(MANIFEST)
    assert {p.name for p in CORPUS.iterdir()} - {"manifest.json"} == names
    reasons = {m["reason"] for m in MANIFEST.values()}
    assert {"invalid_json", "invalid_utf8", "validation", "not_an_object",
            "outside_coverage", "schema_version"} <= reasons
    assert sum(m["expect"] == "case" for m in MANIFEST.values()) >= 3


def test_hostile_corpus_over_kafka(broker, engine):
    items = {name: load(name) for name in MANIFEST}
    submit(broker.bootstrap, [raw for _, raw in items.values()])
    for name, (rid, raw) in items.items():
        want = MANIFEST[name]
        if want["expect"] == "dlq":
            d = wait_for(broker.bootstrap, T.DLQ, dlq_entry_for(rid), timeout=60)[0]
            assert d["reason"] == want["reason"], (name, d["reason"], d["message"])
            assert d["message"] and d["original_b64"], name
        else:
            ev = wait_for(broker.bootstrap, T.CASE_EVENTS,
                          lambda e, rid=rid: e["type"] == "reported"
                          and e["data"]["report"]["report_id"] == rid, timeout=60)[0]
            sent = json.loads(raw)["description"]
            assert ev["data"]["report"]["description"] == sent, name  # verbatim, unescaped
    assert engine.proc.poll() is None


def test_duplicated_report_ids_yield_one_case(broker, engine):
    r = make_report("0604", description="duplicated id")
    submit(broker.bootstrap, [r, r, r])
    reported = wait_for(broker.bootstrap, T.CASE_EVENTS,
                        lambda e: e["type"] == "reported"
                        and e["data"]["report"]["report_id"] == r["report_id"], timeout=60)
    assert len({e["case_id"] for e in reported}) == 1
    assert len({e["event_id"] for e in reported}) == 1


def test_oversized_payloads_over_kafka(broker, engine):
    """10 MB: the producer refuses it (max request size 1 MB by default, as in Kafka). The
    largest a default client sends (just under 1 MB) is rejected by intake (64 KB limit),
    and its DLQ entry, which keeps 256 KiB of it, still fits Kafka's 1 MiB record limit."""
    rid = str(uuid.uuid4())
    head = json.dumps(make_report("0601", report_id=rid))[:-1].encode()

    def payload(size: int) -> bytes:
        return head + b', "description": "' + b"x" * (size - len(head) - 40) + b'"}'

    async def send(raw: bytes) -> None:
        prod = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await prod.start()
        try:
            await (await prod.send(T.REPORTS, raw))
        finally:
            await prod.stop()

    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(send(payload(10 * 1024 * 1024)))
    near_limit = payload(1_000_000)
    asyncio.run(send(near_limit))
    d = wait_for(broker.bootstrap, T.DLQ, dlq_entry_for(rid), timeout=60)[0]
    assert d["reason"] == "too_large"
    assert d["original_size"] == len(near_limit) and d["original_truncated"] is True
    ok = make_report("0601", description="after the big one")
    submit(broker.bootstrap, [ok])
    wait_for(broker.bootstrap, T.CASE_EVENTS, lambda e: e["type"] == "reported"
             and e["data"]["report"]["report_id"] == ok["report_id"], timeout=60)
    assert engine.proc.poll() is None


def test_record_without_value_is_dead_lettered_and_intake_goes_on(broker, engine):
    """Tombstones (a key, no value; an empty key, no value) on the reports topic:
    one ``null_value`` DLQ entry each, and the report sent after them becomes a case."""
    key = f"tombstone-{uuid.uuid4()}"

    async def send() -> None:
        prod = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await prod.start()
        try:
            await (await prod.send(T.REPORTS, None, key=key.encode()))
            await (await prod.send(T.REPORTS, None, key=b"", partition=0))  # empty key too
        finally:
            await prod.stop()

    asyncio.run(send())
    after = make_report("0601", description="after the tombstones")
    submit(broker.bootstrap, [after])
    wait_for(broker.bootstrap, T.CASE_EVENTS, lambda e: e["type"] == "reported"
             and e["data"]["report"]["report_id"] == after["report_id"], timeout=60)
    nulls = wait_for(broker.bootstrap, T.DLQ, lambda d: d.get("reason") == "null_value",
                     n=2, timeout=60)
    assert len(nulls) >= 2 and {d["original_size"] for d in nulls} == {0}
    assert engine.proc.poll() is None


def test_hostile_corpus_over_http(engine):
    base = f"http://127.0.0.1:{engine.web_port}/api/v1/reports"
    auth = {"Authorization": "Bearer demo-supervisor", "Content-Type": "application/json"}
    with httpx.Client(timeout=30) as http:
        for name, want in MANIFEST.items():
            rid, raw = load(name)
            r = http.post(base, content=raw, headers=auth)
            if want["expect"] == "case":
                assert r.status_code == 202, (name, r.status_code, r.text[:300])
                continue
            assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
            body = r.json()
            assert body.get("reason") or body.get("message") or body.get("error"), (name, body)
        r = http.post(base, content=b"{" + b" " * (10 * 1024 * 1024) + b"}", headers=auth)
        assert r.status_code == 413, r.text[:300]
    assert engine.proc.poll() is None


def test_reused_report_id_with_other_content_is_recorded_in_the_dlq(broker, engine):
    first = make_report("0601", description="first report")
    submit(broker.bootstrap, [first])
    wait_for(broker.bootstrap, T.CASE_EVENTS, lambda e: e["type"] == "reported"
             and e["data"]["report"]["report_id"] == first["report_id"], timeout=60)
    submit(broker.bootstrap, [{**first, "description": "another problem, same id"}])
    d = wait_for(broker.bootstrap, T.DLQ, lambda d: d.get("reason") == "duplicate_conflict"
                 and d.get("report_id") == first["report_id"], timeout=60)[0]
    assert "used before for a report with other content" in d["message"]
    assert "another problem, same id" in base64.b64decode(d["original_b64"]).decode()


def _hostile_records() -> list[tuple[str, bytes | None, bytes, list]]:
    """(what, key, value, headers) of records no client of ours would send, each unique."""
    def report_with(**kw) -> bytes:
        return json.dumps(make_report("0601", **kw)).encode()

    n = uuid.uuid4().hex
    deep = b"[" * 100_000 + b"]" * 100_000
    return [  # (a record without a value: test_record_without_value_is_dead_lettered_...)
        ("null key, junk value", None, f"not json {n}".encode(), []),
        ("huge headers", None, f'{{"nonce": "{n}"}}'.encode(),
         [(f"h{i}", b"x" * 4096) for i in range(100)]),
        ("latin-1 bytes", None, f'{{"description": "caf\xe9 {n}"}}'.encode("latin-1"), []),
        ("utf-16 json", None, f'{{"nonce": "{n}"}}'.encode("utf-16"), []),
        ("overlong utf-8", None, b'{"d": "\xc0\xaf' + n.encode() + b'"}', []),
        ("lone surrogate", None, b'{"description": "\\ud800 ' + n.encode() + b'"}', []),
        ("nul bytes", None, b"\x00\x00" + n.encode(), []),
        ("array", None, f'[1, 2, "{n}"]'.encode(), []),
        ("deep nesting", None, deep + n.encode(), []),
        ("string longitude", None, report_with(location={"lon": "121.5", "lat": 31.3,
                                                         "crs": "wgs84"}), []),
        ("epoch reported_at", None, report_with(reported_at=1764300000), []),
        ("1 MB value", None, json.dumps(make_report(
            "0601", description="x" * 1_000_000)).encode()[:1_040_000], []),
    ]


def test_hostile_kafka_records_interleaved_with_valid_reports(broker, engine):
    """Whatever a record holds, intake dead-letters it once, with a reason, and the valid
    reports around it all become cases: intake never stalls. (The DLQ is shared with the
    other tests: entries are told apart by the sha256 of each record's unique value.)"""
    import hashlib

    hostile = _hostile_records()
    valid = [make_report("0601", description=f"valid {i}") for i in range(len(hostile) + 1)]

    async def send() -> None:
        prod = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=2 << 20)
        await prod.start()
        try:
            for i, (_what, key, value, headers) in enumerate(hostile):
                v = valid[i]
                await (await prod.send(T.REPORTS, json.dumps(v).encode(),
                                       key=v["report_id"].encode()))
                await (await prod.send(T.REPORTS, value, key=key, headers=headers))
            last = valid[-1]
            await (await prod.send(T.REPORTS, json.dumps(last).encode(),
                                   key=last["report_id"].encode()))
        finally:
            await prod.stop()

    asyncio.run(send())
    want = {r["report_id"] for r in valid}
    reported = wait_for(broker.bootstrap, T.CASE_EVENTS, lambda e: e["type"] == "reported"
                        and e["data"]["report"]["report_id"] in want, n=len(want), timeout=90)
    assert {e["data"]["report"]["report_id"] for e in reported} == want
    sums = {hashlib.sha256(v).hexdigest(): what for what, _k, v, _h in hostile}
    assert len(sums) == len(hostile)  # each one unique, so each DLQ entry names one record
    dlq = wait_for(broker.bootstrap, T.DLQ, lambda d: d.get("original_sha256") in sums,
                   n=len(sums), timeout=60)
    seen = {}
    for d in dlq:
        seen.setdefault(sums[d["original_sha256"]], []).append(d["reason"])
    assert sorted(seen) == sorted(sums.values())  # every hostile record is accounted for
    assert all(len(reasons) == 1 for reasons in seen.values()), seen  # ... once
    assert seen["string longitude"] == ["validation"] and seen["1 MB value"] == ["too_large"]
    assert seen["latin-1 bytes"] == ["invalid_utf8"]
    assert engine.proc.poll() is None
