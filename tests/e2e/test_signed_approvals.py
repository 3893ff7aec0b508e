"""Signed approvals through a real Envoy: approvers hold their own Ed25519 keys (`scopegate
approver new`), the gateway signs its challenges (`scopegate approver gateway`, the seed in
the VM's SCOPEGATE_CHALLENGE_KEY), and `scopegate approve` checks the challenge against the
bundle before a human signs it. The row is checked in PostgreSQL."""

import json
import os
import subprocess

import pytest

import harness
from agree import CLI
from clients import http1
from conftest import UPSTREAM_TOKEN, bundle


def cli(*args, stdin=None):
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True)


@pytest.fixture(scope="module")
def signed(tmp_path_factory, upstream, keys):
    d = tmp_path_factory.mktemp("signed")
    approvers = []
    for name in ("alice", "bob"):
        out = cli("approver", "new", "--name", name, "--out", str(d / f"{name}.key"))
        assert out.returncode == 0, out.stderr
        approvers.append(json.loads(out.stdout))
    out = cli("approver", "gateway", "--out", str(d / "gateway.key"))
    assert out.returncode == 0, out.stderr
    b = {**bundle(keys), "approvals": {"approvers": approvers, "challenge_key": out.stdout.strip(),
                                       "challenge_ttl": "2m"}}
    # A SQL endpoint too (its challenges are answered before any upstream is asked).
    b["services"] = b["services"] + [{"name": "rentals-sql", "protocol": "sql", "match": {"path_prefix": "/sql"},
                                      "sql": {"dialect": "postgres", "statement": {"json_pointer": "/sql"}}}]
    support = next(r for r in b["roles"] if r["name"] == "support")
    support["allow"] = support["allow"] + [{"service": "rentals-sql", "resources": ["public.*"],
                                            "actions": ["read", "update"], "friction": "approval"}]
    (d / "bundle.json").write_text(json.dumps(b))
    assert os.stat(d / "alice.key").st_mode & 0o777 == 0o600
    gw = harness.Envoy(b, upstream.port, approval_key=None,
                       env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN,
                            "SCOPEGATE_CHALLENGE_KEY": (d / "gateway.key").read_text().strip()}).start()
    yield gw, d
    gw.stop()


def rows(pg):
    return [r[0] for r in pg.execute("SELECT id FROM reservations ORDER BY id")]


def approve(d, challenge, approver="alice", key=None, extra=()):
    return cli("approve", "--challenge", "-", "--bundle", str(d / "bundle.json"), "--approver", approver,
               "--key-file", str(d / f"{key or approver}.key"), "--yes", *extra, stdin=json.dumps(challenge))


def test_an_approver_signs_and_the_row_goes_once(signed, pg, keys):
    gw, d = signed
    path, auth = "/rest/reservations?id=eq.r-2", {"authorization": f"Bearer {keys.support}"}
    r = http1(gw.port, "DELETE", path, auth)
    assert r.status == 428, r
    challenge = r.json()
    assert challenge["signed"].startswith("c1.") and challenge["expires_in"] == 120
    out = approve(d, challenge)
    assert out.returncode == 0, out.stderr
    assert "signed by the gateway" in out.stderr and "reservations" in out.stderr
    token = out.stdout.strip()
    assert token.startswith("v2.")
    r = http1(gw.port, "DELETE", path, {**auth, "x-scopegate-approval": token})
    assert 200 <= r.status < 300, r
    assert "r-2" not in rows(pg)
    pg.seed()
    r = http1(gw.port, "DELETE", path, {**auth, "x-scopegate-approval": token})
    assert r.status == 403 and "already used" in r.json()["reason"], r
    assert "r-2" in rows(pg)


def test_the_approver_sees_the_statement_not_just_its_operation(signed, keys):
    """A data-copying UPDATE decodes to `update public.docs` with its id: the approver is
    shown the statement as sent, bound by the gateway's signature."""
    gw, d = signed
    sql = "UPDATE docs SET body = (SELECT string_agg(card_number, ',') FROM payments) WHERE id = 4"
    r = http1(gw.port, "POST", "/sql", {"authorization": f"Bearer {keys.support}",
                                        "content-type": "application/json"}, json.dumps({"sql": sql}))
    assert r.status == 428, r
    challenge = r.json()
    assert json.loads(challenge["request"]["body"])["sql"] == sql
    out = approve(d, challenge)
    assert out.returncode == 0, out.stderr
    assert "string_agg(card_number" in out.stderr and "POST /sql" in out.stderr, out.stderr
    # What is shown cannot be swapped for something milder on its way to the human.
    milder = {**challenge, "request": {**challenge["request"], "body": json.dumps({"sql": "UPDATE docs SET body = 'x' WHERE id = 4"})}}
    out = approve(d, milder)
    assert out.returncode != 0 and "altered" in out.stderr, out.stderr


def test_what_cannot_approve(signed, pg, keys):
    gw, d = signed
    path, auth = "/rest/reservations?id=eq.r-2", {"authorization": f"Bearer {keys.support}"}
    challenge = http1(gw.port, "DELETE", path, auth).json()
    # Alice's key cannot approve as Bob, and nobody unlisted approves.
    out = approve(d, challenge, approver="bob", key="alice")
    assert out.returncode != 0 and "is not `bob`'s key" in out.stderr, out.stderr
    out = approve(d, challenge, approver="mallory", key="alice")
    assert out.returncode != 0 and "not an approver" in out.stderr, out.stderr
    # A challenge altered on its way to the human is refused before anything is signed.
    payload = json.loads(harness.b64url_decode(challenge["signed"].split(".")[1]))
    payload["exp"] += 3600
    altered = {**challenge, "signed": "c1." + harness.b64url_encode(json.dumps(payload).encode()) + "."
               + challenge["signed"].split(".")[2]}
    out = approve(d, altered)
    assert out.returncode != 0 and "altered" in out.stderr, out.stderr
    # Nothing approves a challenge after it expired.
    out = approve(d, challenge, extra=("--now", "2099-01-01T00:00:00Z"))
    assert out.returncode != 0 and "expired" in out.stderr, out.stderr
    # A shared-key token (the legacy scheme) is not accepted where approvers are listed.
    env = {**os.environ, "SCOPEGATE_APPROVAL_KEY": harness.APPROVAL_KEY}
    legacy = subprocess.run([CLI, "approve", "--challenge", "-", "--approver", "alice", "--yes"],
                            input=json.dumps({k: v for k, v in challenge.items() if k != "signed"}),
                            capture_output=True, text=True, env=env)
    assert legacy.returncode == 0, legacy.stderr
    r = http1(gw.port, "DELETE", path, {**auth, "x-scopegate-approval": legacy.stdout.strip()})
    assert r.status == 403 and "shared-key" in r.json()["reason"], r
    assert "r-2" in rows(pg)
