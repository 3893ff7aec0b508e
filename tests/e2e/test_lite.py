"""The module without the SQL decoder (`make wasm-lite`, ~1 MB instead of ~3.6 MB).

It decides REST, GraphQL and MCP as the full module does — `make e2e-lite` runs the REST,
GraphQL, approval and observability suites against it (the MCP suite's bundle has a SQL
tool) — and refuses, when Envoy configures it, a bundle that asks it to decide SQL: Envoy
does not start, so nothing is ever forwarded undecided."""

import pytest

import harness
from clients import http1
from conftest import UPSTREAM_TOKEN, bundle

pytestmark = pytest.mark.skipif(not harness.LITE_WASM.exists(), reason="run `make wasm-lite` first")


def bearer(key):
    return {"authorization": f"Bearer {key}"}


def test_the_lite_module_is_small_and_decides_rest(upstream, pg, keys):
    assert harness.LITE_WASM.stat().st_size < 1_500_000
    e = harness.Envoy(bundle(keys), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN},
                      wasm=harness.LITE_WASM).start()
    try:
        r = http1(e.port, "GET", "/rest/reservations?tenant_id=eq.acme", bearer(keys.reader))
        assert r.status == 200, r
        [seen] = upstream.seen()
        assert dict(seen["headers"])["authorization"] == f"Bearer {UPSTREAM_TOKEN}"
        r = http1(e.port, "DELETE", "/rest/reservations?id=eq.r-17", bearer(keys.reader))
        assert r.status == 403 and r.json()["decision"] == "deny", r
        assert "r-17" in [row[0] for row in pg.execute("SELECT id FROM reservations")]
        assert len(upstream.seen()) == 1, "the refused DELETE never reached the upstream"
    finally:
        e.stop()


@pytest.mark.parametrize("where", ["service", "mcp tool"])
def test_the_lite_module_refuses_a_bundle_with_sql(upstream, keys, where):
    b = bundle(keys)
    b["services"].append({"name": "warehouse", "protocol": "sql", "match": {"path_prefix": "/sql"},
                          "sql": {"dialect": "postgres", "statement": {"json_pointer": "/sql"}}})
    if where == "mcp tool":
        b["services"].append({"name": "tools", "protocol": "mcp", "match": {"path_prefix": "/mcp"},
                              "mcp": {"tools": {"query": {"sql_argument": "sql", "sql_service": "warehouse"}}}})
    e = harness.Envoy(b, upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN}, wasm=harness.LITE_WASM)
    code, log, answered = e.knock_until_exit(
        lambda: http1(e.port, "GET", "/rest/vehicles", bearer(keys.reader)).status)
    assert code != 0, "Envoy must refuse the configuration"
    assert "built without the SQL decoder" in log, log[-3000:]
    assert answered == [] and upstream.seen() == []
