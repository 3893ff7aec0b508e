"""Session fixtures: one PostgreSQL, one REST API over it, one Envoy running scopegate
with the bundle below. Every test starts from the seed rows."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness  # noqa: E402

UPSTREAM_TOKEN = "upstream-" + harness.new_key("")


class Keys:
    """Plaintext keys the tests present; the bundle holds only their sha256."""

    def __init__(self):
        self.reader = harness.new_key()
        self.support = harness.new_key()
        self.janitor = harness.new_key()
        self.expired = harness.new_key()
        self.staging = harness.new_key()


def bundle(keys):
    return {
        "bundle": "e2e",
        "version": 1,
        "environment": "production",
        "services": [
            {"name": "rentals", "protocol": "rest", "match": {"path_prefix": "/rest"},
             "rest": {"style": "postgrest"}, "limits": {"max_body_bytes": 4096},
             "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "RENTALS_UPSTREAM_TOKEN"}},
            {"name": "rentals-df", "protocol": "rest", "match": {"path_prefix": "/api/v2/rentals"},
             "rest": {"style": "dreamfactory"},
             "upstream_auth": {"header": "x-dreamfactory-api-key", "env": "RENTALS_UPSTREAM_TOKEN"}},
        ],
        "roles": [
            {"name": "reader", "allow": [
                {"service": "rentals", "resources": ["reservations", "vehicles"], "actions": ["read"]},
                {"service": "rentals-df", "resources": ["reservations", "vehicles"], "actions": ["read"]}]},
            {"name": "support", "allow": [
                {"service": "rentals", "resources": ["reservations"], "actions": ["read", "update"],
                 "records": {"tenant_id": ["acme"]}},
                {"service": "rentals", "resources": ["reservations"], "actions": ["create", "delete"],
                 "friction": "approval"},
                {"service": "rentals-df", "resources": ["reservations"], "actions": ["read", "delete"]}]},
            {"name": "janitor", "allow": [
                {"service": "rentals", "resources": ["scratch", "payments"], "actions": ["read", "delete"],
                 "unbounded": True}]},
        ],
        "keys": [
            {"id": "agent-reader", "sha256": harness.sha256_hex(keys.reader), "role": "reader",
             "environments": ["production"], "expires": "2099-01-01T00:00:00Z"},
            {"id": "agent-support", "sha256": harness.sha256_hex(keys.support), "role": "support"},
            {"id": "agent-janitor", "sha256": harness.sha256_hex(keys.janitor), "role": "janitor"},
            {"id": "agent-expired", "sha256": harness.sha256_hex(keys.expired), "role": "reader",
             "expires": "2020-01-01T00:00:00Z"},
            {"id": "agent-staging", "sha256": harness.sha256_hex(keys.staging), "role": "reader",
             "environments": ["staging"]},
        ],
        "guards": [
            {"services": ["*"], "resources": ["payments", "*backup*"], "actions": ["destructive"], "effect": "deny"},
        ],
        "public": [{"service": "rentals", "methods": ["GET"], "path": "/rest/health"}],
    }


@pytest.fixture(scope="session")
def keys():
    return Keys()


@pytest.fixture(scope="session")
def pg():
    p = harness.Postgres().start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def upstream(pg):
    u = harness.Upstream(pg.dsn, UPSTREAM_TOKEN).start()
    yield u
    u.stop()


@pytest.fixture(scope="session")
def gateway(upstream, keys):
    e = harness.Envoy(bundle(keys), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN}).start()
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def fresh(request):
    """Seed rows and an empty upstream request log before every test that uses them."""
    if "pg" in request.fixturenames:
        request.getfixturevalue("pg").seed()
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()


@pytest.fixture(scope="module")
def collector():
    """An audit collector (tests/upstream/collector.py) for one test module."""
    c = harness.Collector().start()
    yield c
    c.stop()
