"""Faults, through a real Envoy (issue 10): what happens when the filter itself, the
upstream or the client fails.

- A module that cannot load (garbage bytes, a truncated copy of the real module, a VM that
  crashes while it is configured) keeps Envoy from starting at all — under the shipped
  `failure_policy: FAIL_CLOSED` and under `FAIL_RELOAD` alike — so nothing is ever served
  unfiltered. A bad *bundle* is the same refusal one layer up: see
  `test_rest.py::test_bad_bundle_makes_envoy_refuse_the_plugin` (and
  `test_missing_upstream_secret_makes_envoy_refuse_the_plugin`), not repeated here.
- A VM that crashes at run time (`tests/faulty`, a test-only proxy-wasm module that panics
  on `x-faulty-trap: 1`), in the shipped config: with `FAIL_CLOSED` every later request is
  a 503 that never reaches the upstream; with `FAIL_RELOAD` (the rendered YAML edited, not
  the template) Envoy starts a new VM after its backoff and traffic flows again.
- An upstream that resets mid-body, a client that sends half a body and hangs (it gives up,
  or Envoy's stream idle timeout fires), an HTTP/2 client that cancels mid-body, and HTTP/2
  requests with trailers: each decided correctly, never forwarded undecided, and audited
  exactly once (Envoy's log, the access log, and the HTTP audit sink's collector) — also
  when `audit.mode: required` is still waiting for the collector as the client leaves.

One scopegate Envoy serves every test after the load/crash ones; its upstream is an
in-process HTTP/1.1 server that records what reaches it and can reset on demand.
"""

import http.client
import json
import shutil
import socket
import struct
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h2.exceptions
import pytest

import harness
from clients import H2, http1

ROOT = harness.ROOT
# Built by `make test-wasm` (a dependency of `make e2e`).
FAULTY = ROOT / "target" / "wasm32-wasip1" / "release" / "scopegate_test_faulty.wasm"

SHIPPED_POLICY = "failure_policy: FAIL_CLOSED"
# The gateway's own stream idle timeout (the shipped config keeps Envoy's 5 min default):
# short, so the "client hangs" case ends inside the test.
IDLE_TIMEOUT_S = 2


class Keys:
    def __init__(self):
        self.reader = harness.new_key()
        self.support = harness.new_key()


def fault_bundle(keys):
    """REST (decided on the headers, or on the body for writes owing friction) and SQL over
    HTTP (always decided on the whole body); records also go to the HTTP audit sink."""
    return {
        "bundle": "e2e-faults",
        "version": 1,
        "environment": "production",
        "services": [
            {"name": "rentals", "protocol": "rest", "match": {"path_prefix": "/rest"},
             "rest": {"style": "postgrest"}},
            {"name": "rentals-sql", "protocol": "sql", "match": {"path_prefix": "/sql"},
             "sql": {"dialect": "postgres", "default_schema": "public",
                     "statement": {"json_pointer": "/sql"}, "params": {"json_pointer": "/params"}},
             "limits": {"max_body_bytes": 131072}},
        ],
        "roles": [
            {"name": "reader", "allow": [
                {"service": "rentals", "resources": ["reservations", "vehicles"], "actions": ["read"]},
                {"service": "rentals-sql", "resources": ["public.reservations", "public.vehicles"],
                 "actions": ["read"]}]},
            {"name": "support", "allow": [
                {"service": "rentals", "resources": ["reservations"], "actions": ["read", "update"],
                 "records": {"tenant_id": ["acme"]}},
                {"service": "rentals", "resources": ["reservations"], "actions": ["create"],
                 "friction": "approval"}]},
        ],
        "keys": [
            {"id": "fault-reader", "sha256": harness.sha256_hex(keys.reader), "role": "reader"},
            {"id": "fault-support", "sha256": harness.sha256_hex(keys.support), "role": "support"},
        ],
        "audit": {"sink": {"cluster": "collector", "flush_ms": 100, "batch": 50}},
    }


def bearer(key):
    return {"authorization": f"Bearer {key}"}


def edit_config(envoy, old, new):
    """Edits one harness Envoy's rendered YAML (never the template) before it starts."""
    text = envoy.config.read_text()
    assert text.count(old) == 1, f"{old!r} is not in the rendered config exactly once"
    envoy.config.write_text(text.replace(old, new))


def with_policy(envoy, policy):
    if policy != "FAIL_CLOSED":
        edit_config(envoy, SHIPPED_POLICY, f"failure_policy: {policy}")
    assert f"failure_policy: {policy}" in envoy.config.read_text()
    return envoy


# ---------------------------------------------------------------- the upstream

class FaultUpstream:
    """An HTTP/1.1 upstream in a thread. Each request is recorded (method, path, headers,
    body bytes received) and answered 200 with `connection: close`; a request carrying
    `x-fault: reset-mid-body` is recorded after its headers and RESET_AFTER body bytes, and
    then the connection is reset (SO_LINGER 0: an RST, not a FIN); with
    `x-fault: reset-mid-answer` the answer's headers (announcing ANSWER_BYTES) and
    RESET_AFTER bytes of its body are sent, then the connection is reset."""

    RESET_AFTER = 1000
    ANSWER_BYTES = 10000

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()

    def seen(self, request_id=None):
        with self.lock:
            return [r for r in self.requests if request_id is None or r["headers"].get("x-request-id") == request_id]

    def serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        conn.settimeout(15)
        f = conn.makefile("rb")
        try:
            line = f.readline().decode("latin-1").strip()
            if not line:
                return
            method, target, _ = line.split(" ", 2)
            headers = {}
            while True:
                h = f.readline().decode("latin-1")
                if h in ("\r\n", "\n", ""):
                    break
                name, _, value = h.partition(":")
                headers[name.strip().lower()] = value.strip()
            rec = {"method": method, "path": target, "headers": headers}
            if headers.get("x-fault") == "reset-mid-body":
                rec["body_bytes"] = len(f.read(self.RESET_AFTER))
                rec["fault"] = "reset"
                with self.lock:
                    self.requests.append(rec)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body = b""
                while True:
                    size = int(f.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while f.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    body += f.read(size)
                    f.readline()
            else:
                body = f.read(int(headers.get("content-length") or 0))
            rec["body_bytes"] = len(body)
            with self.lock:
                self.requests.append(rec)
            if headers.get("x-fault") == "reset-mid-answer":
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n" % self.ANSWER_BYTES + b"[" + b" " * (self.RESET_AFTER - 1))
                time.sleep(0.2)  # the start of the answer goes out before the reset
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            answer = json.dumps({"ok": True, "method": method, "path": target}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(answer), answer))
        except (OSError, ValueError):
            pass
        finally:
            f.close()
            conn.close()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def fault_keys():
    return Keys()


@pytest.fixture(scope="module")
def fault_upstream():
    u = FaultUpstream().start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def modules():
    """A private copy of the built scopegate module (it may be rebuilt while the tests
    run), a truncated copy of it, and a file of garbage bytes."""
    if not harness.WASM.exists():
        pytest.fail(f"{harness.WASM} missing: run `make build` first")
    d = Path(tempfile.mkdtemp(prefix="scopegate-faults-"))
    real = d / "scopegate_filter.wasm"
    shutil.copyfile(harness.WASM, real)
    data = real.read_bytes()
    assert data[:4] == b"\0asm"
    (d / "truncated.wasm").write_bytes(data[: len(data) * 2 // 3])
    (d / "garbage.wasm").write_bytes(b"this is not a WebAssembly module\n" * 128)
    yield {"real": real, "truncated": d / "truncated.wasm", "garbage": d / "garbage.wasm"}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def faulty_wasm():
    if not FAULTY.exists():
        pytest.fail("the test-only module tests/faulty is not built: make test-wasm")
    return FAULTY


@pytest.fixture(scope="module")
def gate(modules, fault_upstream, fault_keys, collector):
    """scopegate in the shipped config (plus a 2 s stream idle timeout) in front of the
    fault upstream, its audit sink pointed at the collector."""
    e = harness.Envoy(fault_bundle(fault_keys), fault_upstream.port, wasm=modules["real"],
                      collector_port=collector.port)
    assert SHIPPED_POLICY in e.config.read_text()
    edit_config(e, "          stat_prefix: scopegate\n",
                f"          stat_prefix: scopegate\n          stream_idle_timeout: {IDLE_TIMEOUT_S}s\n")
    e.start()
    yield e
    e.stop()


# ---------------------------------------------------------------- audit helpers

def audited(gate, collector, request_id, timeout=10):
    """The one audit record of `request_id`: waits until it is in Envoy's log, in the
    access log and at the collector, then checks there is exactly one in each (a duplicate
    from on_log would be in the log before the sink's next flush reaches the collector)."""
    def log():
        return [r for r in gate.audit_records() if r.get("request_id") == request_id]

    def sink():
        return [r for r in collector.records() if r.get("request_id") == request_id]

    def access():
        return [a for a in gate.access_log() if a.get("request_id") == request_id]
    harness.wait_for(lambda: log() and sink() and access(), timeout, f"audit record of {request_id}")
    recs, sent, lines = log(), sink(), access()
    assert len(recs) == 1, f"one audit record per request in Envoy's log: {recs}"
    assert len(sent) == 1, f"one audit record per request at the collector: {sent}"
    assert sent[0] == recs[0], "the sink sends the record Envoy logged"
    assert len(lines) == 1, lines
    return recs[0], lines[0]


# ---------------------------------------------------------------- 1. a module that cannot load

LOAD_FAILURES = {
    "garbage": "Failed to parse corrupted Wasm module",
    "truncated": "Failed to parse corrupted Wasm module",
    "crash-on-configure": "proxy_on_configure failed",
}


@pytest.mark.parametrize("policy", ["FAIL_CLOSED", "FAIL_RELOAD"])
@pytest.mark.parametrize("kind", list(LOAD_FAILURES))
def test_a_module_that_cannot_load_keeps_envoy_down(request, modules, fault_upstream, fault_keys, kind, policy):
    if kind == "crash-on-configure":
        # The test module panics in on_configure when its configuration says so.
        wasm = request.getfixturevalue("faulty_wasm")
        bundle = json.dumps({"x-faulty-crash-on-configure": True})
    else:
        wasm, bundle = modules[kind], fault_bundle(fault_keys)
    e = with_policy(harness.Envoy(bundle, fault_upstream.port, wasm=wasm), policy)
    before = len(fault_upstream.seen())
    # Knock on the listener for as long as Envoy lives: nothing may ever answer.
    code, log, answered = e.knock_until_exit(
        lambda: http1(e.port, "GET", "/rest/vehicles", bearer(fault_keys.reader)).status)
    assert code != 0, "Envoy must refuse to start"
    assert LOAD_FAILURES[kind] in log, log[-3000:]
    assert "Plugin scopegate failed to load" in log
    assert "Unable to create Wasm plugin scopegate" in log
    assert answered == [], "nothing answered on the listener"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", e.port), timeout=2).close()
    assert len(fault_upstream.seen()) == before


# ---------------------------------------------------------------- 2. a VM that crashes at run time

def test_shipped_template_fails_closed():
    text = harness.TEMPLATE.read_text()
    assert text.count(SHIPPED_POLICY) == 1 and "FAIL_OPEN" not in text and "fail_open" not in text


def raw_request(port, rid, key, declared, body_part):
    """An HTTP/1.1 `POST /sql` on a raw socket, announcing `declared` body bytes and
    sending `body_part`; the socket is left open."""
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall((f"POST /sql HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\n"
               f"content-type: application/json\r\ncontent-length: {declared}\r\nx-request-id: {rid}\r\n\r\n").encode()
              + body_part)
    return s


def read_status(s, timeout=10):
    """The status of the HTTP/1.1 answer on a raw socket (then closes it)."""
    s.settimeout(timeout)
    answer = b""
    try:
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            assert chunk, f"closed without an answer: {answer!r}"
            answer += chunk
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split(b" ", 2)[1])


def statuses_for(envoy, seconds, keys):
    """Sends a mix (HTTP/1.1 GET and POST with a body, HTTP/2) for `seconds`: their statuses."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(http1(envoy.port, "GET", "/rest/vehicles", bearer(keys.reader)).status)
        out.append(http1(envoy.port, "POST", "/sql", {**bearer(keys.reader), "content-type": "application/json"},
                         '{"sql": "SELECT id FROM vehicles"}').status)
        c = H2(envoy.port)
        try:
            out.append(c.request("GET", "/rest/vehicles", bearer(keys.reader)).status)
        finally:
            c.close()
        time.sleep(0.1)
    return out


def test_vm_crash_with_the_shipped_fail_closed_refuses_everything_after(faulty_wasm, fault_upstream, fault_keys):
    e = with_policy(harness.Envoy(fault_bundle(fault_keys), fault_upstream.port, wasm=faulty_wasm), "FAIL_CLOSED")
    e.start()
    h2c = None
    try:
        before = len(fault_upstream.seen())
        ok = http1(e.port, "GET", "/rest/vehicles", bearer(fault_keys.reader))
        assert ok.status == 200, ok
        assert len(fault_upstream.seen()) == before + 1

        # Two requests the VM holds (their bodies incomplete) when it crashes.
        rest = b'id FROM vehicles"}'
        held1 = raw_request(e.port, "held-1", fault_keys.reader, len(b'{"sql": "SELECT ') + len(rest),
                            b'{"sql": "SELECT ')
        h2c = H2(e.port)
        held2 = h2c.start("POST", "/sql", {**bearer(fault_keys.reader), "x-request-id": "held-2"})
        h2c.data(held2, b'{"sql": "SELECT ')
        h2c.pump(0.3)
        assert not h2c.answered(held2) and len(fault_upstream.seen()) == before + 1

        crashed = http1(e.port, "GET", "/rest/vehicles", {**bearer(fault_keys.reader), "x-faulty-trap": "1"})
        assert crashed.status == 503, crashed
        harness.wait_for(lambda: "proxy_on_request_headers failed" in e.log(), 5, "the trap in Envoy's log")
        assert "deliberate VM crash" in e.log()

        # The held requests end now: refused, not continued without their filter.
        try:
            held1.sendall(rest)
        except OSError:
            pass  # Envoy may already have answered and closed
        assert read_status(held1) == 503
        try:
            h2c.data(held2, rest, end_stream=True)
        except h2.exceptions.StreamClosedError:
            pass  # Envoy may already have answered and reset the stream
        assert h2c.response(held2).status == 503

        # Longer than FAIL_RELOAD's default 1 s backoff: the VM stays dead, every request
        # on every protocol is refused by Envoy and none reaches the upstream.
        after = statuses_for(e, 2.0, fault_keys)
        assert after and set(after) == {503}, after
        assert len(fault_upstream.seen()) == before + 1, "nothing reached the upstream after the crash"
        stats = e.stats()
        assert stats.get("envoy_wasm_scopegate_vm_reload{}", 0) == 0
        assert stats.get("envoy_wasm_scopegate_vm_reload_success{}", 0) == 0
        # A dead VM writes no audit record; Envoy's access log still has every refusal,
        # answered by Envoy itself (no upstream host).
        total = 2 + 2 + len(after)
        harness.wait_for(lambda: len(e.access_log()) >= total, 5, f"{total} access log lines")
        lines = e.access_log()
        assert len(lines) == total
        assert [(x["status"], x["upstream"]) for x in lines[1:]] == [(503, None)] * (total - 1), lines
    finally:
        if h2c is not None:
            h2c.close()
        e.stop()


def test_vm_crash_with_fail_reload_starts_a_new_vm(faulty_wasm, fault_upstream, fault_keys):
    e = with_policy(harness.Envoy(fault_bundle(fault_keys), fault_upstream.port, wasm=faulty_wasm), "FAIL_RELOAD")
    e.start()
    try:
        before = len(fault_upstream.seen())
        assert http1(e.port, "GET", "/rest/vehicles", bearer(fault_keys.reader)).status == 200
        crashed = http1(e.port, "GET", "/rest/vehicles", {**bearer(fault_keys.reader), "x-faulty-trap": "1"})
        assert crashed.status == 503, crashed
        statuses = []

        def recovered():
            statuses.append(http1(e.port, "GET", "/rest/vehicles", bearer(fault_keys.reader)).status)
            return statuses[-1] == 200
        harness.wait_for(recovered, 10, "a reloaded VM")
        # While the new VM was not there yet requests were refused, never passed unfiltered.
        assert set(statuses) <= {200, 503}, statuses
        assert len(fault_upstream.seen()) == before + 1 + statuses.count(200)
        assert e.stats()["envoy_wasm_scopegate_vm_reload_success{}"] >= 1
        # The new VM is the same filter: it still crashes on the trap, and recovers again.
        assert http1(e.port, "GET", "/rest/vehicles", {**bearer(fault_keys.reader), "x-faulty-trap": "1"}).status == 503
    finally:
        e.stop()


# ---------------------------------------------------------------- 3. the upstream resets mid-body

def send_h2_body(c, sid, body):
    """Sends a body larger than one DATA frame, within the peer's flow-control window."""
    while body:
        n = min(len(body), c.conn.max_outbound_frame_size, c.conn.local_flow_control_window(sid))
        if n == 0:
            c.pump(0.5)  # wait for a WINDOW_UPDATE
            continue
        c.data(sid, body[:n], end_stream=n == len(body))
        body = body[n:]


def big_select():
    """An allowed SQL request of ~64 KB (the parameter is the bulk)."""
    return json.dumps({"sql": "SELECT id, model FROM vehicles WHERE model = $1", "params": ["x" * 64000]}).encode()


@pytest.mark.parametrize("proto", ["http1", "h2"])
def test_upstream_reset_mid_body_is_a_503_audited_as_allow(gate, fault_upstream, fault_keys, collector, proto):
    rid = harness.new_key("fault-reset-")
    body = big_select()
    headers = {**bearer(fault_keys.reader), "content-type": "application/json", "x-request-id": rid,
               "x-fault": "reset-mid-body"}
    if proto == "http1":
        r = http1(gate.port, "POST", "/sql", headers, body)
    else:
        c = H2(gate.port)
        try:
            sid = c.start("POST", "/sql", headers)
            send_h2_body(c, sid, body)
            r = c.response(sid)
        finally:
            c.close()
    assert r.status == 503, r
    # Allowed, so forwarded once (no retry): the upstream got the headers and the start of
    # the body, with the agent's key stripped, then reset.
    [seen] = fault_upstream.seen(rid)
    assert seen["fault"] == "reset" and seen["body_bytes"] == FaultUpstream.RESET_AFTER
    assert seen["headers"]["x-scopegate-key"] == "fault-reader"
    assert fault_keys.reader not in json.dumps(seen)
    rec, line = audited(gate, collector, rid)
    assert (rec["decision"], rec["status"], rec["service"], rec["key"]) == ("allow", 503, "rentals-sql", "fault-reader")
    assert rec["operations"][0]["resource"] == "public.vehicles"
    assert (line["status"], line["scopegate"]["decision"]) == (503, "allow")
    # The access log says why (Envoy's response flags: the upstream ended the connection).
    assert line["response_flags"] in ("UC", "UR", "URX"), line


@pytest.mark.parametrize("proto", ["http1", "h2"])
def test_upstream_reset_mid_answer_is_audited_with_the_status_sent(gate, fault_upstream, fault_keys, collector, proto):
    """The upstream answers 200, sends part of the body, then resets: the client gets a cut
    answer, and the request's one record says allow with the status Envoy sent (as the
    access log does)."""
    rid = harness.new_key("fault-answer-")
    headers = {**bearer(fault_keys.reader), "x-request-id": rid, "x-fault": "reset-mid-answer"}
    if proto == "http1":
        with pytest.raises(http.client.IncompleteRead):
            http1(gate.port, "GET", "/rest/vehicles", headers)
    else:
        c = H2(gate.port)
        try:
            r = c.request("GET", "/rest/vehicles", headers)
        finally:
            c.close()
        assert r.status == 200 and int(r.headers["content-length"]) == FaultUpstream.ANSWER_BYTES
        assert len(r.body) < FaultUpstream.ANSWER_BYTES, "the stream was reset mid-answer"
    assert len(fault_upstream.seen(rid)) == 1
    rec, line = audited(gate, collector, rid)
    assert (rec["decision"], rec["status"], rec["service"]) == ("allow", 200, "rentals")
    assert (line["status"], line["scopegate"]["decision"]) == (200, "allow")
    # The status was sent before the reset; the response flags show the answer was cut.
    assert line["response_flags"] not in (None, "", "-"), line


# ---------------------------------------------------------------- 4. the client sends half a body and hangs

HALF = {
    "allowed": "SELECT id FROM vehicles WHERE model = '",
    "denied": "SELECT id FROM vehicles; DELETE FROM reservations WHERE model = '",
}


def half_a_body(sql):
    """The first 1000 bytes of a 2000-byte JSON body."""
    start = ('{"sql": "' + sql).encode()
    return start + b"x" * (1000 - len(start))


@pytest.mark.parametrize("ending", ["client-closes", "idle-timeout"])
@pytest.mark.parametrize("sql", list(HALF))
def test_half_a_body_then_silence_forwards_nothing_and_is_audited_incomplete(
        gate, fault_upstream, fault_keys, collector, sql, ending):
    rid = harness.new_key("fault-half-")
    s = raw_request(gate.port, rid, fault_keys.reader, 2000, half_a_body(HALF[sql]))
    try:
        # Held: no answer and nothing forwarded while the body is incomplete.
        s.settimeout(1.0)
        with pytest.raises(socket.timeout):
            s.recv(1)
        assert fault_upstream.seen(rid) == []
        if ending == "idle-timeout":
            assert read_status(s, timeout=IDLE_TIMEOUT_S + 10) == 408
    finally:
        s.close()
    rec, line = audited(gate, collector, rid)
    assert (rec["decision"], rec["key"], rec["service"]) == ("incomplete", "fault-reader", "rentals-sql")
    assert "nothing was forwarded" in rec["reason"]
    assert rec["status"] == (408 if ending == "idle-timeout" else None), rec
    assert fault_upstream.seen(rid) == []


def test_access_log_line_of_an_incomplete_request_names_the_decision(gate, fault_upstream, fault_keys, collector):
    """The template's access log promises "the same facts as its audit record". For a
    request that never completed, the record says `incomplete` (key, service known from the
    headers); the access log line should say so too, not leave the scopegate fields empty."""
    rid = harness.new_key("fault-incomplete-log-")
    s = raw_request(gate.port, rid, fault_keys.reader, 2000, half_a_body(HALF["allowed"]))
    try:
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)
    finally:
        s.close()
    rec, line = audited(gate, collector, rid)
    assert rec["decision"] == "incomplete"
    assert fault_upstream.seen(rid) == []
    assert (line["scopegate"]["decision"], line["scopegate"]["key"], line["scopegate"]["service"]) == \
        ("incomplete", "fault-reader", "rentals-sql"), line


def test_half_a_body_already_over_the_limit_is_413_without_waiting(gate, fault_upstream, fault_keys, collector):
    """The one decision a half body can support: it is already larger than the service's
    limit (128 KiB), so it is refused at once, not held until the client gives up."""
    rid = harness.new_key("fault-big-")
    part = b'{"sql": "SELECT id FROM vehicles WHERE model = \'' + b"x" * 140000
    s = raw_request(gate.port, rid, fault_keys.reader, 300000, part)
    assert read_status(s, timeout=IDLE_TIMEOUT_S - 0.5) == 413  # before the idle timeout
    rec, line = audited(gate, collector, rid)
    assert (rec["decision"], rec["status"]) == ("too_large", 413)
    assert line["scopegate"]["decision"] == "too_large"
    assert fault_upstream.seen(rid) == []


def test_h2_client_cancelling_mid_body_is_audited_incomplete(gate, fault_upstream, fault_keys, collector):
    rid = harness.new_key("fault-cancel-")
    c = H2(gate.port)
    try:
        sid = c.start("POST", "/sql", {**bearer(fault_keys.reader), "content-type": "application/json",
                                       "x-request-id": rid})
        c.data(sid, b'{"sql": "SELECT id FROM vehicles; DELETE FROM ')
        c.pump(0.5)
        assert not c.answered(sid) and fault_upstream.seen(rid) == []
        c.conn.reset_stream(sid)  # CANCEL
        c.flush()
        # The connection lives on: the next stream on it is served.
        ok = c.request("POST", "/sql", {**bearer(fault_keys.reader), "content-type": "application/json"},
                       body=b'{"sql": "SELECT id FROM vehicles"}')
        assert ok.status == 200, ok
    finally:
        c.close()
    rec, _ = audited(gate, collector, rid)
    assert (rec["decision"], rec["service"]) == ("incomplete", "rentals-sql")
    assert fault_upstream.seen(rid) == []


class HeldCollector:
    """An audit collector in a thread that keeps every record it receives at once, but
    answers only when released: a collector that is slow to acknowledge."""

    def __init__(self):
        self.records = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with outer.lock:
                    outer.records.extend(json.loads(x) for x in body.decode().splitlines() if x.strip())
                outer.release.wait(timeout=30)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, request_id):
        with self.lock:
            return [r for r in self.records if r.get("request_id") == request_id]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_client_leaving_while_required_audit_is_pending_is_audited_once(modules, fault_upstream, fault_keys):
    """`audit.mode: required` holds an allowed request until the collector acknowledges
    its record. The collector has received the record but not yet answered when the
    client gives up: nothing is forwarded, and the collector must still hold exactly one
    record of the request (docs/audit-and-observability.md: one record per request)."""
    held = HeldCollector()
    b = fault_bundle(fault_keys)
    b["audit"] = {"mode": "required", "sink": {"cluster": "collector", "flush_ms": 100, "batch": 50,
                                               "timeout_ms": 10000}}
    e = harness.Envoy(b, fault_upstream.port, wasm=modules["real"], collector_port=held.port)
    try:
        e.start()
        rid = harness.new_key("fault-leaves-")
        s = socket.create_connection(("127.0.0.1", e.port), timeout=10)
        s.sendall((f"GET /rest/vehicles HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {fault_keys.reader}\r\n"
                   f"x-request-id: {rid}\r\n\r\n").encode())
        harness.wait_for(lambda: held.of(rid), 10, "the record at the collector")
        s.close()  # the client gives up before the collector acknowledged
        harness.wait_for(lambda: [r for r in e.audit_records() if r["request_id"] == rid], 10, "on_log")
        # A later request's record is queued behind anything this one still queued: once it
        # is at the collector, a second record of `rid` would be too.
        sentinel = harness.new_key("fault-sentinel-")
        assert http1(e.port, "GET", "/rest/vehicles", {"x-request-id": sentinel}).status == 401
        harness.wait_for(lambda: held.of(sentinel), 10, "the sentinel's record at the collector")
        assert fault_upstream.seen(rid) == [], "never forwarded"
        assert [r for r in e.audit_records() if r["request_id"] == rid] != []
        recs = held.of(rid)
        assert len(recs) == 1, f"one record per request at the collector, got {len(recs)}: {recs}"
    finally:
        held.stop()
        e.stop()


# ---------------------------------------------------------------- 5. HTTP/2 with trailers, audited

def test_h2_requests_with_trailers_are_each_audited_once(gate, fault_upstream, fault_keys, collector):
    """test_rest.py and test_sql.py show these are held until the trailers and decided on
    the whole body; here each one is also audited exactly once with its decision and
    final status, and only the allowed ones reach the upstream, whole."""
    json_ct = {"content-type": "application/json"}
    cases = [
        # (method, path, key, body, status, decision)
        ("PATCH", "/rest/reservations?tenant_id=eq.acme&id=eq.r-2", fault_keys.support,
         b'{"customer": "Grace H."}', 200, "allow"),
        ("DELETE", "/rest/reservations", fault_keys.reader, b'{"x": 1}', 403, "deny"),
        ("POST", "/rest/reservations", fault_keys.support,
         b'{"id": "r-50", "tenant_id": "acme", "customer": "Eve"}', 428, "challenge"),
        ("POST", "/sql", fault_keys.reader, b'{"sql": "SELECT id, model FROM vehicles"}', 200, "allow"),
        ("POST", "/sql", fault_keys.reader, b'{"sql": "SELECT * FROM vehicles; DELETE FROM vehicles"}', 403, "deny"),
        # Headers, then trailers, no DATA at all: decided in the trailers callback too.
        ("POST", "/sql", fault_keys.reader, b"", 403, "deny"),
    ]
    key_ids = {fault_keys.reader: "fault-reader", fault_keys.support: "fault-support"}
    tag = harness.new_key("fault-h2t-")
    c = H2(gate.port)
    try:
        got = []
        for i, (method, path, key, body, _, _) in enumerate(cases):
            sid = c.start(method, path, {**bearer(key), **json_ct, "x-request-id": f"{tag}-{i}"})
            if body:
                half = len(body) // 2
                c.data(sid, body[:half])
                c.data(sid, body[half:])
            c.trailers(sid, {"x-checksum": "abc"})
            got.append(c.response(sid).status)
    finally:
        c.close()
    assert got == [case[4] for case in cases]
    for i, (method, path, key, body, status, decision) in enumerate(cases):
        rid = f"{tag}-{i}"
        rec, line = audited(gate, collector, rid)
        assert (rec["decision"], rec["status"], rec["method"]) == (decision, status, method), rec
        assert (line["scopegate"]["decision"], line["status"]) == (decision, status)
        seen = fault_upstream.seen(rid)
        if decision == "allow":
            assert len(seen) == 1 and seen[0]["body_bytes"] == len(body), seen
            # Decided in the trailers callback, the held headers rewritten there: the
            # agent's credential stripped, its identity added.
            h = seen[0]["headers"]
            assert "authorization" not in h and h["x-scopegate-key"] == key_ids[key], h
        else:
            assert seen == [], seen
