"""Out-of-band approval through a real Envoy in front of the real REST API and PostgreSQL.

The agent's destructive request is held with a 428 challenge; the test plays the human
with `scopegate approve` (holding the approval key, which the gateway's VM also holds);
the agent retries the identical request with the token. Then every way of misusing a
token is tried: replay, another body, expiry, a forged token. The row is checked in
PostgreSQL after each step, and every step is found in the audit log."""

import json
import os
import subprocess
import time

import pytest

import harness
from agree import CLI
from clients import http1
from conftest import UPSTREAM_TOKEN, bundle


def bearer(key):
    return {"authorization": f"Bearer {key}"}


def rows(pg, table):
    return [r[0] for r in pg.execute(f"SELECT id FROM {table} ORDER BY id")]


def approve(challenge, approver="alice", key=harness.APPROVAL_KEY, extra=()):
    """The human: reads the challenge, prints a token."""
    env = {**os.environ, "SCOPEGATE_APPROVAL_KEY": key}
    out = subprocess.run([CLI, "approve", "--challenge", "-", "--approver", approver, "--yes", *extra],
                         input=json.dumps(challenge), capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "approval requested by key `agent-support`" in out.stderr
    return out.stdout.strip()


def audit(gateway, request_id):
    def mine():
        return [x for x in gateway.audit_records() if x.get("request_id") == request_id]
    harness.wait_for(mine, 5, f"audit record {request_id}")
    time.sleep(0.1)
    return mine()


DELETE_R2 = ("DELETE", "/rest/reservations?id=eq.r-2")


def test_approved_delete_happens_once(gateway, upstream, pg, keys):
    method, path = DELETE_R2
    r = http1(gateway.port, method, path, {**bearer(keys.support), "x-request-id": "ap-1"})
    assert r.status == 428, r
    challenge = r.json()
    assert challenge["key"] == "agent-support" and challenge["approvals"] == 1
    assert "r-2" in rows(pg, "reservations")

    token = approve(challenge)
    assert token.startswith("v1.")
    r = http1(gateway.port, method, path, {**bearer(keys.support), "x-scopegate-approval": token, "x-request-id": "ap-2"})
    assert 200 <= r.status < 300, r
    assert "r-2" not in rows(pg, "reservations")
    [seen] = [s for s in upstream.seen() if s["method"] == "DELETE"]
    headers = dict(seen["headers"])
    assert "x-scopegate-approval" not in headers and headers["x-scopegate-key"] == "agent-support"

    # The same token again: refused, even though the request is identical.
    pg.seed()
    r = http1(gateway.port, method, path, {**bearer(keys.support), "x-scopegate-approval": token, "x-request-id": "ap-3"})
    assert r.status == 403, r
    assert "already used" in r.json()["reason"]
    assert "r-2" in rows(pg, "reservations")

    [c] = audit(gateway, "ap-1")
    [a] = audit(gateway, "ap-2")
    [d] = audit(gateway, "ap-3")
    assert (c["decision"], c["status"], c["digest"]) == ("challenge", 428, challenge["challenge"])
    assert (a["decision"], a["approval"], a["digest"]) == ("allow", "alice", challenge["challenge"])
    assert a["status"] in (200, 204) and a["reason"].startswith("approved by alice")
    assert (d["decision"], d["status"]) == ("deny", 403)


def test_a_changed_body_needs_a_new_approval(gateway, upstream, pg, keys):
    hdrs = {**bearer(keys.support), "content-type": "application/json"}
    body = '{"id":"r-50","tenant_id":"acme","vehicle_id":"v-1","customer":"Ada"}'
    r = http1(gateway.port, "POST", "/rest/reservations", hdrs, body)
    assert r.status == 428, r
    token = approve(r.json())
    changed = body.replace("Ada", "Adb")  # one byte
    r = http1(gateway.port, "POST", "/rest/reservations", {**hdrs, "x-scopegate-approval": token}, changed)
    assert r.status == 403, r
    assert "another request" in r.json()["reason"]
    assert "r-50" not in rows(pg, "reservations")
    # The token still allows the request it was issued for (a refused use does not spend it).
    r = http1(gateway.port, "POST", "/rest/reservations", {**hdrs, "x-scopegate-approval": token}, body)
    assert 200 <= r.status < 300, r
    assert "r-50" in rows(pg, "reservations")


@pytest.mark.parametrize("what,extra,key,why", [
    ("expired", ["--now", "2026-01-01T00:00:00Z", "--ttl", "1m"], harness.APPROVAL_KEY, "expired"),
    ("forged with another key", [], "not-the-gateway-approval-key-0123456789abcdef", "bad signature"),
])
def test_bad_tokens_are_refused(gateway, upstream, pg, keys, what, extra, key, why):
    method, path = DELETE_R2
    r = http1(gateway.port, method, path, bearer(keys.support))
    token = approve(r.json(), key=key, extra=extra)
    r = http1(gateway.port, method, path, {**bearer(keys.support), "x-scopegate-approval": token})
    assert r.status == 403, r
    assert why in r.json()["reason"], r.json()
    assert "r-2" in rows(pg, "reservations")
    assert not [s for s in upstream.seen() if s["method"] == "DELETE"]


def test_a_token_for_one_key_does_not_serve_another(gateway, upstream, pg, keys):
    # The janitor cannot delete reservations at all; the support key's token does not
    # change that, and no other key can use it.
    method, path = DELETE_R2
    token = approve(http1(gateway.port, method, path, bearer(keys.support)).json())
    r = http1(gateway.port, method, path, {**bearer(keys.janitor), "x-scopegate-approval": token})
    assert r.status == 403, r
    assert "r-2" in rows(pg, "reservations")


def test_approval_key_never_leaves_the_gateway(gateway, keys):
    r = http1(gateway.port, *DELETE_R2, bearer(keys.support))
    approve(r.json())
    r2 = http1(gateway.port, *DELETE_R2, {**bearer(keys.support), "x-scopegate-approval": "v1.e30.AAAA"})
    for resp in (r, r2):
        assert harness.APPROVAL_KEY not in resp.body.decode()
    assert harness.APPROVAL_KEY not in gateway.log()


def test_approve_from_a_saved_request(gateway, keys, tmp_path):
    """`scopegate approve --request --bundle` decides the saved request itself."""
    b = tmp_path / "bundle.json"
    b.write_text(json.dumps(bundle(keys)))
    req = tmp_path / "delete.http"
    req.write_text(f"DELETE /rest/reservations?id=eq.r-2 HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
                   f"Authorization: Bearer {keys.support}\r\n\r\n")
    env = {**os.environ, "SCOPEGATE_APPROVAL_KEY": harness.APPROVAL_KEY}
    out = subprocess.run([CLI, "approve", "--request", str(req), "--bundle", str(b), "--approver", "bob", "--yes"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    r = http1(gateway.port, *DELETE_R2, {**bearer(keys.support), "x-scopegate-approval": out.stdout.strip()})
    assert 200 <= r.status < 300, r
    # Not awaiting approval: refused by the CLI.
    req.write_text(f"GET /rest/reservations HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
                   f"Authorization: Bearer {keys.support}\r\n\r\n")
    out = subprocess.run([CLI, "approve", "--request", str(req), "--bundle", str(b), "--approver", "bob", "--yes"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "not awaiting approval" in out.stderr


@pytest.fixture(scope="module")
def budget_gateway(upstream, keys):
    b = bundle(keys)
    b["roles"][1]["budget"] = {"destructive": 1, "per": "1h"}
    e = harness.Envoy(b, upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN}).start()
    yield e
    e.stop()


def test_destructive_budget_is_429_when_spent(budget_gateway, upstream, pg, keys):
    g = budget_gateway
    # One approved delete fits the budget; the next, although approved, does not.
    for rid, want in (("r-1", 200), ("r-2", 429)):
        path = f"/rest/reservations?id=eq.{rid}"
        token = approve(http1(g.port, "DELETE", path, bearer(keys.support)).json())
        r = http1(g.port, "DELETE", path, {**bearer(keys.support), "x-scopegate-approval": token,
                                           "x-request-id": f"budget-{rid}"})
        if want == 200:
            assert 200 <= r.status < 300, r
        else:
            assert r.status == 429, r
            assert r.json()["decision"] == "over_budget"
            assert "budget of 1 destructive operations per 1h" in r.json()["reason"]
    assert rows(pg, "reservations").count("r-1") == 0 and "r-2" in rows(pg, "reservations")
    [rec] = audit(g, "budget-r-2")
    assert (rec["decision"], rec["status"]) == ("over_budget", 429)


def test_missing_approval_key_makes_envoy_refuse_the_plugin(upstream, keys):
    e = harness.Envoy(bundle(keys), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN}, approval_key=None)
    code, log = e.run_until_exit()
    assert code != 0
    assert "SCOPEGATE_APPROVAL_KEY` is not set" in log
