"""Fleet mode: two Envoy replicas loading the same module and bundle, a 3-member etcd
cluster (`"state": {"store": "etcd"}`), the REST API over PostgreSQL behind them.

A single-use approval must be single use across every replica and restart, a destructive
budget of N must be N for the whole fleet, and when etcd loses its quorum every request
that needs state must be refused 503 `unavailable` (audited with its cause, nothing
forwarded) while requests that need no state still flow. PostgreSQL and the upstream's
own request log are the judges, not the status codes alone."""

import concurrent.futures
import os
import subprocess
import json
import time

import pytest

import harness
from agree import CLI
from clients import http1
from conftest import UPSTREAM_TOKEN

BUDGET = 4
PREFIX = "scopegate-e2e/"
# One authority for both replicas: the approval digest binds it, as a load balancer in
# front of a fleet would send the same one to each.
HOST = "gw.fleet.test"


class Keys:
    def __init__(self):
        self.support = harness.new_key()
        self.janitor = harness.new_key()
        self.reader = harness.new_key()


def fleet_bundle(keys):
    return {
        "bundle": "fleet", "version": 1, "environment": "production",
        "state": {"store": "etcd", "cluster": "etcd", "prefix": PREFIX, "timeout_ms": 1000},
        "services": [
            {"name": "rentals", "protocol": "rest", "match": {"path_prefix": "/rest"},
             "rest": {"style": "postgrest"},
             "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "RENTALS_UPSTREAM_TOKEN"}},
        ],
        "roles": [
            {"name": "reader", "allow": [
                {"service": "rentals", "resources": ["reservations", "vehicles", "scratch"], "actions": ["read"]}]},
            {"name": "support", "allow": [
                {"service": "rentals", "resources": ["reservations"], "actions": ["read", "delete"],
                 "friction": "approval"}]},
            {"name": "janitor", "budget": {"destructive": BUDGET, "per": "1h"}, "allow": [
                {"service": "rentals", "resources": ["scratch"], "actions": ["read", "delete"]}]},
        ],
        "keys": [
            {"id": "agent-support", "sha256": harness.sha256_hex(keys.support), "role": "support"},
            {"id": "agent-janitor", "sha256": harness.sha256_hex(keys.janitor), "role": "janitor"},
            {"id": "agent-reader", "sha256": harness.sha256_hex(keys.reader), "role": "reader"},
        ],
    }


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture(scope="module")
def etcd():
    e = harness.Etcd(3).start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def fleet(etcd, upstream, keys):
    replicas = [harness.Envoy(fleet_bundle(keys), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN},
                              etcd_ports=etcd.client_ports).start() for _ in range(2)]
    yield replicas
    for r in replicas:
        r.stop()


def send(gateway, method, path, key, extra=None):
    return http1(gateway.port, method, path, {"host": HOST, "authorization": f"Bearer {key}", **(extra or {})})


def approve(challenge, approver="alice"):
    env = {**os.environ, "SCOPEGATE_APPROVAL_KEY": harness.APPROVAL_KEY}
    out = subprocess.run([CLI, "approve", "--challenge", "-", "--approver", approver, "--yes"],
                         input=json.dumps(challenge), capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def deletes(upstream):
    return [s for s in upstream.seen() if s["method"] == "DELETE"]


def approved_delete(fleet, keys, path):
    """A challenge from replica 0, approved by a human: (path, token)."""
    r = send(fleet[0], "DELETE", path, keys.support)
    assert r.status == 428, r
    return approve(r.json())


def audited(gateway, request_id):
    def mine():
        return [x for x in gateway.audit_records() if x.get("request_id") == request_id]
    harness.wait_for(mine, 5, f"audit record {request_id}")
    return mine()


def test_one_token_one_delete_across_replicas_and_restarts(fleet, etcd, upstream, pg, keys):
    path = "/rest/reservations?id=eq.r-2"
    token = approved_delete(fleet, keys, path)
    attempts = 24
    with concurrent.futures.ThreadPoolExecutor(attempts) as pool:
        answers = list(pool.map(
            lambda i: send(fleet[i % 2], "DELETE", path, keys.support, {"x-scopegate-approval": token}),
            range(attempts)))
    statuses = sorted(a.status for a in answers)
    assert sum(200 <= s < 300 for s in statuses) == 1, statuses
    assert all(s == 403 for s in statuses if not 200 <= s < 300), statuses
    assert all("already used" in a.json()["reason"] for a in answers if a.status == 403)
    assert len(deletes(upstream)) == 1, "the upstream saw exactly one delete"
    assert "r-2" not in [r[0] for r in pg.execute("SELECT id FROM reservations")]
    # The nonce is in etcd, under a lease that outlives the token.
    used = {k: v for k, v in etcd.keys(PREFIX).items() if k.startswith(PREFIX + "scopegate:nonce:")}
    assert len(used) == 1 and all(lease for _, lease in used.values()), used

    # A restarted replica (its shared data gone) still refuses the token; so does the other.
    pg.seed()
    fleet[0].restart()
    for g in fleet:
        r = send(g, "DELETE", path, keys.support, {"x-scopegate-approval": token})
        assert r.status == 403 and "already used" in r.json()["reason"], r
    assert len(deletes(upstream)) == 1
    assert "r-2" in [r[0] for r in pg.execute("SELECT id FROM reservations")]


def test_a_budget_of_n_is_n_for_the_whole_fleet(fleet, upstream, pg, keys):
    rows = [f"s-b{i}" for i in range(3 * BUDGET)]
    pg.execute("INSERT INTO scratch VALUES " + ", ".join(f"('{r}', 'x')" for r in rows))
    with concurrent.futures.ThreadPoolExecutor(len(rows)) as pool:
        answers = list(pool.map(
            lambda ir: send(fleet[ir[0] % 2], "DELETE", f"/rest/scratch?id=eq.{ir[1]}", keys.janitor),
            enumerate(rows)))
    statuses = [a.status for a in answers]
    assert sum(200 <= s < 300 for s in statuses) == BUDGET, statuses
    assert statuses.count(429) == len(rows) - BUDGET, statuses
    left = {r[0] for r in pg.execute("SELECT id FROM scratch")}
    assert len([r for r in rows if r not in left]) == BUDGET, "PostgreSQL lost exactly the budget"
    assert len(deletes(upstream)) == BUDGET
    # Reads spend nothing and need no state.
    assert send(fleet[1], "GET", "/rest/scratch", keys.janitor).status == 200


def wait_state_works(fleet, keys, pg, timeout=30):
    """Until an approved delete goes through (an election may take a few seconds)."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        n += 1
        pg.seed()
        path = "/rest/reservations?id=eq.r-1"
        token = approved_delete(fleet, keys, path)
        r = send(fleet[n % 2], "DELETE", path, keys.support, {"x-scopegate-approval": token})
        if 200 <= r.status < 300:
            return
        assert r.status == 503 and time.monotonic() < deadline, r
        time.sleep(0.5)


def test_quorum_loss_fails_closed_and_recovers(fleet, etcd, upstream, pg, keys):
    # One member down: the cluster keeps its quorum, the fleet keeps working.
    etcd.stop_member(2)
    wait_state_works(fleet, keys, pg)
    for i in range(4):
        pg.seed()
        path = "/rest/reservations?id=eq.r-1"
        token = approved_delete(fleet, keys, path)
        r = send(fleet[i % 2], "DELETE", path, keys.support, {"x-scopegate-approval": token})
        assert 200 <= r.status < 300, r

    # Two down: no quorum. Every request that needs state is 503, audited with the cause;
    # nothing reaches the upstream; requests that need none still flow.
    etcd.stop_member(1)
    pg.seed()
    upstream.reset()
    path = "/rest/reservations?id=eq.r-1"
    token = approved_delete(fleet, keys, path)
    for i, g in enumerate(fleet):
        rid = f"fleet-noquorum-{i}"
        r = send(g, "DELETE", path, keys.support, {"x-scopegate-approval": token, "x-request-id": rid})
        assert r.status == 503, r
        assert r.json()["decision"] == "unavailable"
        [rec] = audited(g, rid)
        assert (rec["decision"], rec["status"]) == ("unavailable", 503), rec
        assert "etcd" in rec["reason"], rec
        r = send(g, "DELETE", "/rest/scratch?id=eq.s-1", keys.janitor)
        assert r.status == 503, r
        assert send(g, "GET", "/rest/vehicles", keys.reader).status == 200
    assert deletes(upstream) == []
    assert "r-1" in [r[0] for r in pg.execute("SELECT id FROM reservations")]
    # Counted (the VM adds its counts to Envoy's on its next tick).
    harness.wait_for(lambda: fleet[0].stats().get("scopegate_state_unavailable{}", 0) >= 2, 5,
                     "scopegate_state_unavailable")

    # Restored: works again. The token sent during the outage may turn out spent: the member
    # left alone may have been the leader and appended the transaction to its log, which
    # commits once a quorum is back (Raft) — the caveat docs/fleet.md states. It never
    # serves twice: either it goes through once now, or it is refused as used.
    etcd.start_member(1)
    etcd.start_member(2)
    etcd.wait_healthy()
    deadline = time.monotonic() + 30
    while True:
        r = send(fleet[0], "DELETE", path, keys.support, {"x-scopegate-approval": token})
        if r.status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert 200 <= r.status < 300 or (r.status == 403 and "already used" in r.json()["reason"]), r
    again = send(fleet[1], "DELETE", path, keys.support, {"x-scopegate-approval": token})
    assert again.status == 403 and "already used" in again.json()["reason"], again
    assert len(deletes(upstream)) == (1 if 200 <= r.status < 300 else 0)
    wait_state_works(fleet, keys, pg)
