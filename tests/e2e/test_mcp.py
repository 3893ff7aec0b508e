"""MCP through a real Envoy: scopegate, running the shipped policies/mcp.json, in front of
real MCP servers (the official Python SDK, each line in its own virtualenv) over
PostgreSQL, called by the SDK's real clients:

- mcp 1.x server + 1.x client: the session wire (initialize, Mcp-Session-Id, SSE answers);
- mcp 2.x server + 2.x client: the stateless 2026-07-28 wire (server/discover, Mcp-Method,
  Mcp-Name headers, JSON answers);
- mcp 2.x server + 1.x client: the session wire with JSON answers.

After every refusal the row is looked up in PostgreSQL and the server's request log is
read: the refused call never reached the server."""

import json
import subprocess
import time

import pytest

import harness
from agree import assert_cli_agrees
from clients import http1

TOKEN = "rentals-upstream-" + harness.new_key("")
BUNDLE_FILE = harness.ROOT / "policies" / "mcp.json"
CLIENT = harness.ROOT / "tests" / "e2e" / "mcp_client.py"


def venv_python(sdk):
    return harness.ROOT / f".venv-mcp{sdk}" / "bin" / "python"


KEYS = harness.demo_keys("mcp")
READER, AGENT, ANALYST = KEYS["mcp-reader"], KEYS["mcp-agent"], KEYS["mcp-analyst"]


class Stack:
    def __init__(self, pg, sdk):
        self.sdk = sdk
        self.upstream = harness.Upstream(pg.dsn, TOKEN, script="mcp_server.py", python=venv_python(sdk)).start()
        self.gateway = harness.Envoy(BUNDLE_FILE.read_text(), self.upstream.port,
                                     env={"RENTALS_UPSTREAM_TOKEN": TOKEN}).start()

    def stop(self):
        self.gateway.stop()
        self.upstream.stop()

    def calls(self):
        """tools/call and resources/read the server received: (name or uri)."""
        out = []
        for r in self.upstream.seen():
            msgs = r["body"] if isinstance(r["body"], list) else [r["body"]]
            for m in msgs:
                if isinstance(m, dict) and m.get("method") in ("tools/call", "resources/read", "prompts/get"):
                    p = m.get("params") or {}
                    out.append(p.get("name") or p.get("uri"))
        return out


@pytest.fixture(scope="module")
def mcp1(pg):
    s = Stack(pg, 1)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def mcp2(pg):
    s = Stack(pg, 2)
    yield s
    s.stop()


# (server line, client line, the wire they speak)
COMBOS = [(1, 1, "session wire, SSE answers"), (2, 2, "stateless 2026-07-28 wire, JSON answers"),
          (2, 1, "session wire, JSON answers")]


@pytest.fixture(params=COMBOS, ids=[f"server{s}-client{c}" for s, c, _ in COMBOS])
def combo(request):
    server, client, _ = request.param
    stack = request.getfixturevalue(f"mcp{server}")
    stack.upstream.reset()
    return stack, client


def run_client(sdk, stack, key, steps, headers=None):
    r = subprocess.run([str(venv_python(sdk)), str(CLIENT), stack.gateway.url + "/mcp", key, json.dumps(steps),
                        json.dumps(headers or {})],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout)["steps"]


def reservations(pg):
    return [r[0] for r in pg.execute("SELECT id FROM reservations ORDER BY id")]


def test_reader_sees_and_calls_only_its_tools(combo, pg):
    stack, client = combo
    before = reservations(pg)
    steps = run_client(client, stack, READER, [
        ["list_tools"],
        ["call", "get_vehicle", {"vehicle_id": "v-1"}],
        ["call", "delete_reservation", {"reservation_id": "r-1"}],
        ["list_resources"],
        ["list_resource_templates"],
        ["read", "rentals://fleet/summary"],
        ["read", "rentals://admin/audit"],
        ["list_prompts"],
        ["get_prompt", "summarise_reservation", {"reservation_id": "r-1"}],
        ["get_prompt", "draft_refund_email", {"reservation_id": "r-1"}],
        ["call", "run_query", {"table": "vehicles", "limit": 2}],
        ["call", "run_query", {"table": "payments"}],
        ["call", "execute_sql", {"sql": "SELECT id, model FROM vehicles WHERE id = 'v-2'"}],
        ["call", "execute_sql", {"sql": "DELETE FROM reservations WHERE id = 'r-2'"}],
    ])
    (tools, vehicle, delete, resources, templates, summary, audit, prompts, prompt, refund,
     q_ok, q_pay, sql_ok, sql_del) = steps
    # Listing shows only what the reader may call (the server has seven tools).
    assert tools == {"ok": True, "value": ["list_reservations", "get_vehicle", "execute_sql", "run_query"]}
    assert resources == {"ok": True, "value": ["rentals://fleet/summary"]}
    assert templates == {"ok": True, "value": ["rentals://vehicles/{vehicle_id}"]}
    assert prompts == {"ok": True, "value": ["summarise_reservation"]}
    # Allowed calls work.
    for s in (vehicle, summary, prompt, q_ok, sql_ok):
        assert s["ok"], s
    assert "Model 3" in json.dumps(vehicle["value"]) and "Zoe" in json.dumps(sql_ok["value"])
    # Refused calls fail as MCP errors, and never reach the server.
    for s in (delete, audit, refund, q_pay, sql_del):
        assert not s["ok"], s
    # Both clients surface scopegate's JSON-RPC error as the call's error (2.x reads it from
    # the 403 of the stateless wire, 1.x from the 200 of the session wire).
    assert "scopegate: deny" in delete["error"] and "delete_reservation" in delete["error"], delete
    assert reservations(pg) == before
    reached = stack.calls()
    for refused in ("delete_reservation", "rentals://admin/audit", "draft_refund_email"):
        assert refused not in reached, reached
    assert reached.count("run_query") == 1 and reached.count("execute_sql") == 1, reached


def test_agent_delete_waits_for_a_human(combo, pg):
    stack, client = combo
    steps = run_client(client, stack, AGENT, [
        ["list_tools"],
        ["call", "delete_reservation", {"reservation_id": "r-1"}],
        ["call", "create_reservation", {"reservation_id": "r-99", "vehicle_id": "v-2", "customer": "Edsger"}],
    ])
    tools, delete, create = steps
    assert "delete_reservation" in tools["value"] and "purge_reservations" not in tools["value"]
    assert not delete["ok"]
    assert "scopegate: challenge" in delete["error"] and "approval" in delete["error"], delete
    assert create["ok"], create
    assert "r-1" in reservations(pg) and "r-99" in reservations(pg)
    assert "delete_reservation" not in stack.calls()


def test_an_approved_call_completes_with_the_sdk_client(combo, pg):
    """The whole loop: the SDK client's call is challenged (the challenge is the JSON-RPC
    error's data), a human approves, the client retries the call in a new session with its
    own request ids — the digest binds the call's meaning (method and params), not the
    JSON-RPC id — and the row goes, once."""
    stack, client = combo
    [asked] = run_client(client, stack, AGENT, [["call", "delete_reservation", {"reservation_id": "r-1"}]])
    assert not asked["ok"] and "data" in asked, asked
    challenge = asked["data"]
    assert challenge["decision"] == "challenge" and challenge["friction"] == "approval", asked
    assert challenge["signed"].startswith("c1."), challenge
    token = harness.approve_signed(challenge, BUNDLE_FILE)
    steps = run_client(client, stack, AGENT, [
        ["call", "delete_reservation", {"reservation_id": "r-1"}],
        ["call", "delete_reservation", {"reservation_id": "r-1"}],
    ], headers={"x-scopegate-approval": token})
    first, replay = steps
    assert first["ok"], first
    assert not replay["ok"] and "already used" in replay["error"], replay
    assert "r-1" not in reservations(pg)
    assert stack.calls().count("delete_reservation") == 1


# Issue 18, class 2: update_reservation deletes the reservation when `remove` is true.
# mcp.json maps every value but `false` to `delete` (the SDK's pydantic reads "yes", 1,
# "on" as true), which the agent's grant puts behind a human's approval.
def test_an_update_that_removes_waits_for_a_human(combo, pg):
    stack, client = combo
    steps = run_client(client, stack, AGENT, [
        ["call", "update_reservation", {"reservation_id": "r-1", "remove": True}],
        ["call", "update_reservation", {"reservation_id": "r-1", "remove": "yes"}],
        ["call", "update_reservation", {"reservation_id": "r-1", "customer": "Barbara", "remove": False}],
    ])
    removing, spelled, update = steps
    for s in (removing, spelled):
        assert not s["ok"] and "scopegate: challenge" in s["error"], s
    assert update["ok"], update
    assert "r-1" in reservations(pg)
    assert pg.execute("SELECT customer FROM reservations WHERE id = 'r-1'")[0][0] == "Barbara"
    assert stack.calls() == ["update_reservation"]


# Raw requests as the 2.x client sends them on the stateless wire.
def modern(method, params=None, id_=1, name=None):
    body = {"jsonrpc": "2.0", "id": id_, "method": method,
            "params": {**(params or {}), "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                                  "io.modelcontextprotocol/clientCapabilities": {}}}}
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": "2026-07-28", "mcp-method": method}
    if name:
        headers["mcp-name"] = name
    return headers, body


def call(tool, args, id_=1):
    return modern("tools/call", {"name": tool, "arguments": args}, id_, name=tool)


def send(port, key, headers, body):
    raw = body if isinstance(body, str) else json.dumps(body)
    return http1(port, "POST", "/mcp", {**headers, "authorization": f"Bearer {key}"}, raw)


DELETE_R1 = {"reservation_id": "r-1"}


def disguises():
    h, del_body = call("delete_reservation", DELETE_R1)
    lh, list_body = call("list_reservations", {}, id_=2)
    plain = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    return [
        ("header names a harmless tool", {**h, "mcp-name": "list_reservations"}, del_body),
        ("header says tools/list", {**h, "mcp-method": "tools/list"}, del_body),
        ("batch with one forbidden call", plain, [list_body, {**del_body, "id": 3}]),
        ("tools/call as a notification", plain,
         {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_reservation", "arguments": DELETE_R1}}),
        ("unicode-escaped method and name", plain,
         '{"jsonrpc": "2.0", "id": 1, "method": "\\u0074ools/call", "params": {"name": "delete_\\u0072eservation", "arguments": {"reservation_id": "r-1"}}}'),
        ("duplicate name: first harmless, last deletes", {**h, "mcp-name": "delete_reservation"},
         '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_reservations", "name": "delete_reservation", "arguments": {"reservation_id": "r-1"}, '
         '"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}'),
        ("oversized arguments", h, {**del_body, "params": {**del_body["params"], "arguments": {**DELETE_R1, "pad": "x" * 70_000}}}),
        ("SQL tool deleting", call("execute_sql", {"sql": "DELETE FROM reservations WHERE id = 'r-1'"})[0],
         call("execute_sql", {"sql": "DELETE FROM reservations WHERE id = 'r-1'"})[1]),
        ("SQL tool, second statement deletes", call("execute_sql", {})[0],
         call("execute_sql", {"sql": "SELECT 1; DELETE FROM reservations WHERE id = 'r-1'"})[1]),
    ]


@pytest.mark.parametrize("name", [d[0] for d in disguises()])
def test_disguises_are_refused(mcp2, pg, name):
    headers, body = next((h, b) for n, h, b in disguises() if n == name)
    mcp2.upstream.reset()
    r = send(mcp2.gateway.port, READER, headers, body)
    # The stateless wire gets the real status; the session wire the error in a 200, which
    # is what its clients read; a body with no request id to answer, the real status.
    has_id = isinstance(body, list) or '"id"' in (body if isinstance(body, str) else json.dumps(body))
    modern_wire = headers.get("mcp-protocol-version") == "2026-07-28"
    assert r.status == (403 if modern_wire or not has_id else 200), r
    assert r.headers["x-scopegate-decision"] == "deny"
    err = r.json()
    err = err[0] if isinstance(err, list) else err
    assert err["jsonrpc"] == "2.0" and err["error"]["code"] == -32003, err
    assert err["error"]["data"]["decision"] == "deny"
    if isinstance(body, dict) and "id" in body:
        assert err["id"] == body["id"]
    assert "r-1" in reservations(pg)
    assert mcp2.upstream.seen() == []


# Sent straight to the server (no gateway), these run delete_reservation: a gateway that
# read the header, the first duplicate key, the first message of a batch, or skipped
# notifications would be bypassed.
REAL = ["duplicate name: first harmless, last deletes", "unicode-escaped method and name",
        "remove spelled yes"]


@pytest.mark.parametrize("name", REAL)
def test_the_disguises_are_real(mcp2, pg, name):
    if name == "remove spelled yes":
        headers, body = call("update_reservation", {"reservation_id": "r-1", "remove": "yes"})
        body = json.dumps(body)
    else:
        headers, body = next((h, b) for n, h, b in disguises() if n == name)
    if name.startswith("unicode"):
        headers = call("delete_reservation", DELETE_R1)[0]
        body = body.replace('"arguments"', '"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", '
                                           '"io.modelcontextprotocol/clientCapabilities": {}}, "arguments"')
    r = http1(mcp2.upstream.port, "POST", "/mcp", {**headers, "authorization": f"Bearer {TOKEN}"}, body)
    assert r.status == 200, r
    assert "r-1" not in reservations(pg), "the server ran delete_reservation"


def test_oversized_body_is_413(mcp2, pg):
    h, body = call("get_vehicle", {"vehicle_id": "v-1", "pad": "x" * 300_000})
    mcp2.upstream.reset()
    r = send(mcp2.gateway.port, READER, h, body)
    assert r.status == 413, r
    assert r.json()["error"]["code"] == -32013
    assert mcp2.upstream.seen() == []


def test_list_answer_is_filtered_with_its_length(mcp2):
    h, body = modern("tools/list")
    direct = http1(mcp2.upstream.port, "POST", "/mcp", {**h, "authorization": f"Bearer {TOKEN}"}, json.dumps(body))
    assert "delete_reservation" in direct.body.decode()
    r = send(mcp2.gateway.port, READER, h, body)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/json")
    assert int(r.headers["content-length"]) == len(r.body)
    names = [t["name"] for t in r.json()["result"]["tools"]]
    assert names == ["list_reservations", "get_vehicle", "execute_sql", "run_query"]
    assert r.json()["id"] == 1


def test_session_stream_answer_is_filtered(mcp1):
    """The 1.x server answers as SSE: initialize, then tools/list on the session."""
    accept = {"content-type": "application/json", "accept": "application/json, text/event-stream",
              "authorization": f"Bearer {READER}"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    r = http1(mcp1.gateway.port, "POST", "/mcp", accept, json.dumps(init))
    assert r.status == 200, r
    session = r.headers["mcp-session-id"]
    s = {**accept, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    r = http1(mcp1.gateway.port, "POST", "/mcp", s, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    assert r.status == 202, r
    r = http1(mcp1.gateway.port, "POST", "/mcp", s, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream"), r
    text = r.body.decode()
    data = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    names = [t["name"] for t in json.loads(data[-1])["result"]["tools"]]
    assert names == ["list_reservations", "get_vehicle", "execute_sql", "run_query"], text
    r = http1(mcp1.gateway.port, "DELETE", "/mcp", {"authorization": f"Bearer {READER}", "mcp-session-id": session})
    assert r.status in (200, 204), r


def test_refusal_is_audited(mcp2):
    h, body = call("delete_reservation", DELETE_R1, id_=41)
    r = send(mcp2.gateway.port, READER, {**h, "x-request-id": "mcp-audit-1"}, body)
    assert r.status == 403

    def mine():
        return [x for x in mcp2.gateway.audit_records() if x.get("request_id") == "mcp-audit-1"]
    harness.wait_for(mine, 5, "audit record")
    time.sleep(0.2)  # a duplicate would show up by now
    [rec] = mine()
    assert rec["decision"] == "deny" and rec["status"] == 403 and rec["key"] == "mcp-reader"
    # Arguments (records) stay out of the audit line, as bodies do.
    assert rec["operations"] == [{"service": "tools", "action": "delete", "resource": "delete_reservation",
                                  "scope": "some", "records": {"reservation_id": ["r-1"]}}]


CORPUS = [
    (READER, call("get_vehicle", {"vehicle_id": "v-1"})),
    (READER, call("delete_reservation", DELETE_R1)),
    (READER, call("run_query", {"table": "payments"})),
    (AGENT, call("delete_reservation", DELETE_R1)),
    (ANALYST, call("purge_reservations", {})),
    (READER, ({"content-type": "application/json"},
              {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_reservation"}})),
    (READER, modern("resources/read", {"uri": "rentals://admin/audit"}, name="rentals://admin/audit")),
]


@pytest.mark.parametrize("i", range(len(CORPUS)))
def test_cli_agrees_with_the_filter(mcp2, tmp_path, i):
    key, (headers, body) = CORPUS[i]
    assert_cli_agrees(mcp2.gateway.port, BUNDLE_FILE, tmp_path, "POST", "/mcp",
                      {**headers, "authorization": f"Bearer {key}"}, json.dumps(body))
