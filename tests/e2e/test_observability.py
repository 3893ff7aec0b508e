"""Every call audited and observable, through a real Envoy: the JSON access log carries
scopegate's decision from filter state, /stats/prometheus its counters, a real collector
(tests/upstream/collector.py) receives exactly one record per request from the HTTP audit
sink — also under 30 s of wrk load — and `required` audit stops traffic when the collector
is down. Shadow mode forwards what it would refuse and says so."""

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

import harness
from clients import http1
from conftest import UPSTREAM_TOKEN, bundle
from agree import CLI
from test_approval import approve, rows


def bearer(key):
    return {"authorization": f"Bearer {key}"}


def sink_bundle(keys, **audit):
    b = bundle(keys)
    b["audit"] = {"sink": {"cluster": "collector", "flush_ms": 100, "batch": 50}, **audit}
    return b


@pytest.fixture(scope="module")
def observed(upstream, keys, collector):
    e = harness.Envoy(sink_bundle(keys), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN},
                      collector_port=collector.port).start()
    yield e
    e.stop()


def clear(collector):
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{collector.port}/__clear", method="POST"),
                           timeout=5).read()


def mixed(keys):
    """(method, path, headers, expected status) of every kind."""
    return [
        ("GET", "/rest/reservations?tenant_id=eq.acme", bearer(keys.reader), 200),
        ("DELETE", "/rest/reservations?id=eq.r-1", bearer(keys.reader), 403),
        ("GET", "/rest/vehicles", {}, 401),
        ("DELETE", "/rest/reservations?id=eq.r-2", bearer(keys.support), 428),
        ("GET", "/rest/health", {}, 200),
        ("GET", "/nowhere", bearer(keys.reader), 403),
    ]


def test_access_log_carries_the_decision(observed, keys):
    for i, (m, p, h, status) in enumerate(mixed(keys)):
        r = http1(observed.port, m, p, {**h, "x-request-id": f"al-{i}"})
        assert r.status == status, (p, r)

    def lines():
        return {x["request_id"]: x for x in observed.access_log() if str(x.get("request_id", "")).startswith("al-")}
    harness.wait_for(lambda: len(lines()) == 6, 5, "access log lines")
    got = lines()
    assert [got[f"al-{i}"]["scopegate"]["decision"] for i in range(6)] == \
        ["allow", "deny", "unauthenticated", "challenge", "allow", "deny"]
    deny = got["al-1"]
    assert deny["status"] == 403
    assert (deny["scopegate"]["key"], deny["scopegate"]["role"], deny["scopegate"]["service"]) == \
        ("agent-reader", "reader", "rentals")
    # The whole audit record as decided: the operation names the row it would touch.
    assert deny["scopegate"]["operations"] == [{"service": "rentals", "action": "delete", "resource": "reservations",
                                                 "scope": "some", "records": {"id": ["r-1"]}}]
    assert "not covered" in deny["scopegate"]["reason"]
    assert deny["scopegate"]["query"] == "id=eq.r-1"
    assert got["al-3"]["scopegate"]["rule"] == "roles[1].allow[1]"
    assert got["al-0"]["scopegate"]["enforced"] is True
    assert got["al-2"]["scopegate"]["key"] is None


def test_prometheus_counters(observed, keys):
    # Counts reach Envoy's counters on the VM's tick (every second): let earlier tests' settle.
    time.sleep(1.2)
    before = observed.stats()
    labelled_before = {(x["decision"], x["service"], x["role"]): v
                       for x, v in observed.labelled("scopegate_decisions")}
    for m, p, h, status in mixed(keys):
        assert http1(observed.port, m, p, h).status == status
    bad = http1(observed.port, "POST", "/rest/reservations", {**bearer(keys.support), "content-type": "application/json"},
                "{not json")
    # The support role's grant on reservations has records: its POST body is decoded (the
    # values it writes), so a body that is not JSON is refused.
    assert bad.status == 403, bad
    after = {}

    def delta(name):
        return after.get(name + "{}", 0) - before.get(name + "{}", 0)

    def counted():
        # Counts reach Envoy's counters on the VM's next tick (within a second).
        after.update(observed.stats())
        return delta("scopegate_requests_total") >= 7
    harness.wait_for(counted, 5, "scopegate_requests_total + 7")
    time.sleep(0.3)
    after.update(observed.stats())
    assert delta("scopegate_requests_total") == 7
    assert (delta("scopegate_requests_allow"), delta("scopegate_requests_deny"),
            delta("scopegate_requests_unauthenticated"), delta("scopegate_challenges")) == (2, 3, 1, 1)
    # Per decision, service and role: labels at /stats/prometheus (the template's stats_tags).
    def labelled():
        return {(x["decision"], x["service"], x["role"]): v for x, v in observed.labelled("scopegate_decisions")}
    now = labelled()
    assert all(set(x) == {"decision", "service", "role"} for x, _ in observed.labelled("scopegate_decisions"))
    grew = {k: v - labelled_before.get(k, 0) for k, v in now.items() if v != labelled_before.get(k, 0)}
    assert grew == {
        ("allow", "rentals", "reader"): 1, ("deny", "rentals", "reader"): 1, ("unauthenticated", "none", "none"): 1,
        ("challenge", "rentals", "support"): 1, ("allow", "rentals", "none"): 1, ("deny", "none", "reader"): 1,
        ("deny", "rentals", "support"): 1,
    }, grew


def test_one_record_per_request_in_a_burst(observed, keys, collector):
    clear(collector)
    time.sleep(0.3)
    clear(collector)
    sent = []
    for i in range(240):
        m, p, h, status = mixed(keys)[i % 6]
        r = http1(observed.port, m, p, {**h, "x-request-id": f"burst-{i}"})
        assert r.status == status
        sent.append(f"burst-{i}")

    def mine():
        return [r for r in collector.records() if str(r.get("request_id", "")).startswith("burst-")]
    harness.wait_for(lambda: len(mine()) >= 240, 10, "240 audit records at the collector")
    time.sleep(0.5)
    ids = [r["request_id"] for r in mine()]
    assert sorted(ids) == sorted(sent), "exactly one record per request"
    assert {r["decision"] for r in mine()} == {"allow", "deny", "unauthenticated", "challenge"}
    assert all(r["status"] is not None for r in mine())
    assert observed.stats().get("scopegate_audit_records_dropped{}", 0) == 0


def test_required_audit_fails_closed_when_the_collector_is_down(upstream, keys):
    down = harness.free_port()  # nothing listens there
    e = harness.Envoy(sink_bundle(keys, mode="required"), upstream.port,
                      env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN}, collector_port=down).start()
    try:
        upstream.reset()
        r = http1(e.port, "GET", "/rest/reservations", bearer(keys.reader))
        assert r.status == 503, r
        body = r.json()
        assert body["decision"] == "unavailable" and "audit is required" in body["reason"]
        assert upstream.seen() == [], "not forwarded"
        harness.wait_for(lambda: e.stats().get("scopegate_audit_records_dropped{}", 0) >= 1, 5, "a drop counted")
        assert e.stats()["scopegate_audit_sink_failures{}"] >= 1
    finally:
        e.stop()


def test_required_audit_forwards_after_the_collector_took_the_record(upstream, keys, collector):
    e = harness.Envoy(sink_bundle(keys, mode="required"), upstream.port,
                      env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN}, collector_port=collector.port).start()
    try:
        clear(collector)
        upstream.reset()
        r = http1(e.port, "GET", "/rest/reservations", {**bearer(keys.reader), "x-request-id": "req-audit-1"})
        assert r.status == 200, r
        recs = [x for x in collector.records() if x.get("request_id") == "req-audit-1"]
        assert len(recs) == 1 and recs[0]["decision"] == "allow"
        assert len(upstream.seen()) == 1
    finally:
        e.stop()


def test_shadow_mode_forwards_and_records_what_it_would_refuse(upstream, pg, keys):
    b = bundle(keys)
    b["mode"] = "shadow"
    e = harness.Envoy(b, upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN}).start()
    try:
        upstream.reset()
        r = http1(e.port, "GET", "/rest/payments", {**bearer(keys.reader), "x-request-id": "shadow-1"})
        assert r.status == 200, r  # the reader may not read payments: in shadow mode it still does
        [seen] = upstream.seen()
        assert dict(seen["headers"])["authorization"] == f"Bearer {UPSTREAM_TOKEN}"

        def mine():
            return [x for x in e.audit_records() if x.get("request_id") == "shadow-1"]
        harness.wait_for(mine, 5, "shadow audit record")
        [rec] = mine()
        assert (rec["decision"], rec["enforced"], rec["status"]) == ("deny", False, 200)
        # Counts reach Envoy's counters on the VM's next tick (within a second).
        harness.wait_for(lambda: e.stats().get("scopegate_shadow_not_enforced{}", 0) >= 1, 5, "the counter")
        time.sleep(0.3)
        assert e.stats()["scopegate_shadow_not_enforced{}"] == 1
    finally:
        e.stop()


WRK_SCRIPT = """
local reqs = {}
local i = 0
function init(args)
  local reader, support = args[1], args[2]
  reqs = {
    wrk.format("GET", "/rest/reservations?tenant_id=eq.acme", {["authorization"] = "Bearer " .. reader}),
    wrk.format("DELETE", "/rest/reservations?id=eq.r-1", {["authorization"] = "Bearer " .. reader}),
    wrk.format("GET", "/rest/vehicles", {}),
    wrk.format("DELETE", "/rest/reservations?id=eq.r-2", {["authorization"] = "Bearer " .. support}),
    wrk.format("GET", "/rest/payments", {["authorization"] = "Bearer " .. reader}),
  }
end
function request()
  i = i + 1
  return reqs[(i % #reqs) + 1]
end
"""


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_records_equal_requests_under_30s_of_load(observed, keys, collector, tmp_path):
    # Quiet first: every earlier request's record has reached the collector.
    time.sleep(1.0)
    before = observed.stats()
    # Every request Envoy received on the listener (completed, or reset when wrk stops).
    total = 'envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="scopegate"}'
    served_before = before.get(total, 0)
    records_before = len(collector.records())
    script = tmp_path / "mixed.lua"
    script.write_text(WRK_SCRIPT)
    seconds = int(os.environ.get("SCOPEGATE_LOAD_SECONDS", "30"))
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", str(script), observed.url, "--",
                          keys.reader, keys.support], capture_output=True, text=True, timeout=seconds + 60)
    assert out.returncode == 0, out.stderr
    print(out.stdout)

    def served():
        return observed.stats().get(total, 0) - served_before
    n = served()
    assert n > 1000, out.stdout
    harness.wait_for(lambda: len(collector.records()) - records_before >= n, 30, f"{n} audit records")
    time.sleep(1)
    records = len(collector.records()) - records_before
    stats = observed.stats()
    dropped = stats.get("scopegate_audit_records_dropped{}", 0)
    print(f"served {n:.0f} requests in {seconds}s; collector received {records}; dropped {dropped:.0f}")
    assert records == n and dropped == 0


def test_records_survive_a_warning_log_level_and_name_the_deleted_row(upstream, pg, keys, collector):
    """Envoy at `-l warning`, a usual production setting, hides the Wasm `info` line: the
    operator is told at start, and the record of an approved delete still reaches the
    collector and the access log, naming the row it deleted, the query, the client and the
    user agent. With `audit.log: warn` the line is in Envoy's log too."""
    e = harness.Envoy(sink_bundle(keys), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN},
                      collector_port=collector.port, log_level="warning").start()
    try:
        harness.wait_for(lambda: "hides the audit records" in e.log(), 5, "the startup warning")
        assert "audit.log: warn" in e.log()
        clear(collector)
        path = "/rest/reservations?id=eq.r-2"
        hdrs = {**bearer(keys.support), "user-agent": "agent-sdk/2.1"}
        r = http1(e.port, "DELETE", path, {**hdrs, "x-request-id": "lvl-1"})
        assert r.status == 428, r
        token = approve(r.json())
        r = http1(e.port, "DELETE", path, {**hdrs, "x-scopegate-approval": token, "x-request-id": "lvl-2"})
        assert 200 <= r.status < 300, r
        assert "r-2" not in rows(pg, "reservations")

        def mine():
            return [x for x in collector.records() if x.get("request_id") == "lvl-2"]
        harness.wait_for(mine, 5, "the approved delete's record at the collector")
        [rec] = mine()
        assert (rec["decision"], rec["approval"], rec["key"], rec["status"]) == \
            ("allow", "alice", "agent-support", r.status)
        assert rec["operations"] == [{"service": "rentals", "action": "delete", "resource": "reservations",
                                      "scope": "some", "records": {"id": ["r-2"]}}]
        assert rec["query"] == "id=eq.r-2" and rec["user_agent"] == "agent-sdk/2.1"
        assert rec["client"].startswith("127.0.0.1:"), rec["client"]
        print("record of the approved delete:", json.dumps(rec))
        harness.wait_for(lambda: any(x.get("request_id") == "lvl-2" for x in e.access_log()), 5, "access log")
        [line] = [x for x in e.access_log() if x.get("request_id") == "lvl-2"]
        assert line["scopegate"] == rec, "the access log carries the record the collector got"
        assert e.audit_records() == [], "no info line at -l warning"
    finally:
        e.stop()
    # `audit.log: warn`: the line survives -l warning, and nothing needs saying.
    b = sink_bundle(keys, log="warn")
    e = harness.Envoy(b, upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN},
                      collector_port=collector.port, log_level="warning").start()
    try:
        r = http1(e.port, "GET", "/rest/reservations?tenant_id=eq.acme", {**bearer(keys.reader), "x-request-id": "lvl-3"})
        assert r.status == 200
        harness.wait_for(lambda: [x for x in e.audit_records() if x.get("request_id") == "lvl-3"], 5, "the warn line")
        assert "hides the audit records" not in e.log()
    finally:
        e.stop()


def test_chained_records_verify_at_the_collector(upstream, pg, keys, collector, tmp_path):
    """`audit.chain`: the records the collector received verify with `scopegate audit
    verify`; one removed, or one edited, is found."""
    e = harness.Envoy(sink_bundle(keys, chain=True), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN},
                      collector_port=collector.port).start()
    try:
        clear(collector)
        for i in range(30):
            m, p, h, status = mixed(keys)[i % 6]
            assert http1(e.port, m, p, {**h, "x-request-id": f"ch-{i}"}).status == status
        harness.wait_for(lambda: len([r for r in collector.records() if "chain" in r]) >= 30, 10, "30 chained records")
    finally:
        e.stop()
    lines = [x for x in collector.raw_lines() if '"chain"' in x]
    f = tmp_path / "records.jsonl"

    def verify(lines):
        f.write_text("\n".join(lines) + "\n")
        return subprocess.run([CLI, "audit", "verify", str(f)], capture_output=True, text=True)
    ok = verify(lines)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "30 chained records in 1 stream" in ok.stdout, ok.stdout
    bad = verify(lines[:10] + lines[11:])
    assert bad.returncode == 1 and "records missing" in bad.stdout, bad.stdout
    edited = list(lines)
    edited[5] = edited[5].replace('"request_id":"ch-', '"request_id":"xh-', 1)
    assert edited[5] != lines[5]
    bad = verify(edited)
    assert bad.returncode == 1 and "altered" in bad.stdout, bad.stdout
