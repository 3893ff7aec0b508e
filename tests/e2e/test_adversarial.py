"""The adversarial suite (tests/adversarial/) through a real Envoy, and through the CLI.

tests/adversarial/cases.jsonl holds requests that try to get past scopegate — parser
differentials, encodings, duplicated headers and keys, method overrides, path tricks,
SQL/GraphQL/MCP disguises — beside legitimate look-alikes that must stay allowed. Each
case is sent byte for byte (repeated headers kept, content-length from the body) over a
raw socket to one Envoy running the built module with tests/adversarial/bundle.json, in
front of a recording upstream (tests/upstream/echo.py) that answers everything. Per case:

- the status is the decision's (allow: the upstream's 2xx; deny 403, unauthenticated 401,
  too_large 413, challenge 428; an MCP deny/challenge on the session wire may be a 200
  carrying the JSON-RPC error — see docs/decision-records.md);
- `x-scopegate-decision`, when present, is the expected decision (it must be on refusals);
- a refused request never reached the upstream; an allowed one reached it once, without
  the agent's credential or any `x-scopegate-*` header the agent sent.

A case's optional `"envoy"` member says what Envoy itself does before the filter sees the
request: `{"status": 400}` (Envoy answers), or `{"expect": "allow"}` (Envoy's path
normalisation changes what the filter judges). `scopegate test` ignores it.

The same file also runs through `scopegate test` (the engine natively), so both ways are
part of `make test`."""

import http.client
import json
import os
import socket
import subprocess
from base64 import b64decode
from pathlib import Path

import pytest

import harness

HERE = harness.ROOT / "tests" / "adversarial"
BUNDLE, CASES, KEYS = HERE / "bundle.json", HERE / "cases.jsonl", HERE / "bundle.keys"
CLI = os.environ.get("SCOPEGATE_CLI", str(harness.ROOT / "target" / "release" / "scopegate"))
STATUS = {"allow": None, "deny": 403, "unauthenticated": 401, "too_large": 413, "challenge": 428,
          "over_budget": 429}
AUTHORITY = "gateway.test"  # what `scopegate test` uses as :authority


def load_keys():
    keys = {}
    for line in KEYS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, key = line.partition("=")
            keys[name.strip()] = key.strip()
    return keys


def load_cases():
    out = []
    for i, line in enumerate(CASES.read_text().splitlines()):
        if line.strip() and not line.lstrip().startswith("//"):
            case = json.loads(line)
            case["index"] = i
            out.append(case)
    return out


CASE_LIST = load_cases()


def case_id(case):
    return case["name"].replace(" ", "_")


def body_of(case):
    """The body bytes, as `scopegate test` builds them."""
    if "body_base64" in case:
        return b64decode(case["body_base64"])
    body = case.get("body")
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else json.dumps(body, separators=(",", ":")).encode()


def header_list(case, keys):
    """The headers, in the order `scopegate test` gives them to the engine: the key of
    `as` as a bearer token, the case's own (a list keeps repeats), then a JSON
    content-type when there is a body and the case gave none."""
    out = []
    if case.get("as"):
        out.append(("authorization", f"Bearer {keys[case['as']]}"))
    h = case.get("headers") or {}
    out += list(h.items()) if isinstance(h, dict) else [tuple(p) for p in h]
    if body_of(case) and not any(n.lower() == "content-type" for n, _ in out):
        out.append(("content-type", "application/json"))
    return out


def raw_request(case, keys, request_id):
    body = body_of(case)
    lines = [f"{case.get('method', 'GET')} {case['path']} HTTP/1.1", f"host: {AUTHORITY}"]
    lines += [f"{n}: {v}" for n, v in header_list(case, keys)]
    if body or case.get("method", "GET") in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body)}")
    lines += [f"x-request-id: {request_id}", "connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.body = status, body
        self.headers = {}
        for name, value in headers:
            self.headers.setdefault(name.lower(), value)

    def __repr__(self):
        return f"<{self.status} {self.headers.get('x-scopegate-decision')} {self.body[:400]!r}>"


def send(port, data, method):
    """One request on its own connection, its reply read by its framing (content-length,
    chunked, none for HEAD) — not to the close, which Envoy delays (delayed_close_timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        r = http.client.HTTPResponse(s, method=method.upper())
        r.begin()
        try:
            body = r.read()
        except http.client.IncompleteRead as e:
            body = e.partial
        return Reply(r.status, r.getheaders(), body)


@pytest.fixture(scope="module")
def adv_echo():
    u = harness.Upstream("", "", script="echo.py").start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def adv_gateway(adv_echo):
    e = harness.Envoy(BUNDLE.read_text(), adv_echo.port).start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def adv_keys():
    return load_keys()


def jsonrpc_decisions(body):
    """The decisions carried by a JSON-RPC error answer (one per request of a batch)."""
    msg = json.loads(body)
    msgs = msg if isinstance(msg, list) else [msg]
    return {m["error"]["data"]["decision"] for m in msgs}


@pytest.mark.parametrize("case", CASE_LIST, ids=case_id)
def test_case_through_envoy(adv_gateway, adv_echo, adv_keys, case):
    keys = adv_keys
    request_id = f"adv-{case['index']}"
    envoy = case.get("envoy") or {}
    expect = envoy.get("expect", case["expect"])
    method = case.get("method", "GET")
    r = send(adv_gateway.port, raw_request(case, keys, request_id), method)
    arrived = [s for s in adv_echo.seen() if ["x-request-id", request_id] in s["headers"]]

    if "status" in envoy:
        # Envoy refuses the request itself; the filter never sees it.
        assert arrived == [], f"BYPASS: Envoy was to refuse this ({envoy['why']}), the upstream got it: {r}"
        assert r.status == envoy["status"], f"Envoy was to answer {envoy['status']} ({envoy['why']}): {r}"
        assert "x-scopegate-decision" not in r.headers, r
        return

    decision = r.headers.get("x-scopegate-decision")
    if expect == "allow":
        assert 200 <= r.status < 300, r
        assert decision is None, r
        assert len(arrived) == 1, arrived
        sent = {n for n, _ in arrived[0]["headers"]}
        # The agent's credential and its x-scopegate-* headers never reach the upstream.
        assert not sent & {"authorization", "x-api-key", "x-scopegate-confirm", "x-scopegate-approval"}, sent
        forwarded = dict(arrived[0]["headers"])
        # The upstream is told who called (bundle key ids are the key file's names).
        key_id = case.get("as") or next(
            (k for k, v in keys.items() for n, hv in header_list(case, keys) if v and v in hv), None)
        if key_id:
            assert forwarded.get("x-scopegate-key") == key_id, forwarded
        return

    assert arrived == [], f"BYPASS: expected {expect}, the upstream received the request: {r}"
    assert decision == expect, f"expected {expect}: {r}"
    if r.status == 200 and case["group"] == "mcp" and expect in ("deny", "challenge"):
        # The session wire answers a refused request that has an id with a 200 carrying
        # the JSON-RPC error (the 1.x SDK ends the session on any other status).
        assert jsonrpc_decisions(r.body) == {expect}, r
    else:
        assert r.status == STATUS[expect], r


def test_cli_runs_the_same_cases():
    """`scopegate test` over the same file: every case as expected, natively."""
    r = subprocess.run([CLI, "test", str(BUNDLE), str(CASES), "--keys", str(KEYS)],
                       capture_output=True, text=True, timeout=300)
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert r.returncode == 0, "\n".join(failed) or r.stderr
    assert f"{len(CASE_LIST)} passed, 0 failed" in r.stdout, r.stdout[-500:]


def test_the_suite_keeps_its_shape():
    """The suite's floor (issue 10): at least 220 cases, every protocol and the HTTP
    envelope represented, a quarter of them legitimate look-alikes that must stay allowed,
    and few Envoy overrides, each explained."""
    by = {}
    for c in CASE_LIST:
        by.setdefault(c["group"], []).append(c)
    assert len(CASE_LIST) >= 220
    assert {g: len(v) >= (30 if g == "envelope" else 45) for g, v in by.items()} == \
        {"rest": True, "sql": True, "graphql": True, "mcp": True, "envelope": True}
    assert sum(c["expect"] == "allow" for c in CASE_LIST) >= len(CASE_LIST) / 4
    overrides = [c for c in CASE_LIST if "envoy" in c]
    assert len(overrides) <= 12 and all(c["envoy"].get("why") for c in overrides)
    assert len({c["name"] for c in CASE_LIST}) == len(CASE_LIST), "case names are unique"
    assert Path(CLI).exists()
