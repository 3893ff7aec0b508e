"""scopegate in a real Envoy in front of a real REST API over a real PostgreSQL.

Every test checks the HTTP result *and* what reached the upstream or the database.
"""

import json
import time

import pytest

import harness
from clients import H2, http1
from conftest import UPSTREAM_TOKEN, bundle


def bearer(key):
    return {"authorization": f"Bearer {key}"}


def rows(pg, table):
    return [r[0] for r in pg.execute(f"SELECT id FROM {table} ORDER BY id")]


def reached(upstream, method=None):
    return [s for s in upstream.seen() if method is None or s["method"] == method]


# ---------------------------------------------------------------- allow

@pytest.mark.parametrize("proto", ["http1", "h2"])
def test_allowed_get_reaches_upstream_and_returns_rows(gateway, upstream, keys, proto):
    path = "/rest/reservations?tenant_id=eq.acme"
    if proto == "http1":
        r = http1(gateway.port, "GET", path, bearer(keys.reader))
    else:
        c = H2(gateway.port)
        r = c.request("GET", path, bearer(keys.reader))
        c.close()
    assert r.status == 200, r
    assert sorted(row["id"] for row in r.json()) == ["r-1", "r-17", "r-2"]
    assert len(reached(upstream, "GET")) == 1


def test_dreamfactory_get_by_ids(gateway, upstream, keys):
    r = http1(gateway.port, "GET", "/api/v2/rentals/_table/vehicles?ids=v-1,v-2", {"x-api-key": keys.reader})
    assert r.status == 200, r
    assert [v["id"] for v in r.json()["resource"]] == ["v-1", "v-2"]


def test_agent_key_never_reaches_upstream_and_injected_token_does(gateway, upstream, keys):
    r = http1(gateway.port, "GET", "/rest/vehicles", {
        **bearer(keys.reader),
        "x-api-key": keys.reader,  # the same key twice is fine; both are stripped
        "x-scopegate-role": "admin",  # spoofed identity is replaced
    })
    assert r.status == 200, r
    r = http1(gateway.port, "GET", "/api/v2/rentals/_table/vehicles", {"x-api-key": keys.reader})
    assert r.status == 200, r
    seen = reached(upstream)
    assert len(seen) == 2
    for s in seen:
        headers = dict(s["headers"])
        flat = json.dumps(s["headers"])
        assert keys.reader not in flat
        assert headers["x-scopegate-key"] == "agent-reader"
        assert headers["x-scopegate-role"] == "reader"
        assert [h for h in s["headers"] if h[0] == "x-scopegate-role"] == [["x-scopegate-role", "reader"]]
    assert dict(seen[0]["headers"])["authorization"] == f"Bearer {UPSTREAM_TOKEN}"
    assert "x-api-key" not in dict(seen[0]["headers"])
    assert dict(seen[1]["headers"])["x-dreamfactory-api-key"] == UPSTREAM_TOKEN
    assert "authorization" not in dict(seen[1]["headers"])


def test_credentials_other_upstreams_accept_never_reach_the_upstream(gateway, upstream, keys):
    """Supabase's `apikey`, session cookies, Hasura's admin secret and session variables,
    DreamFactory's session token, Railway's project token: stripped whatever the bundle's
    credential_headers (docs/security.md lists them)."""
    smuggled = {"apikey": "service-role-jwt", "cookie": "sb-access-token=eyJhbGciOi",
                "x-hasura-admin-secret": "hasura-secret", "x-hasura-role": "admin", "x-hasura-user-id": "user-4711",
                "x-dreamfactory-session-token": "df-session", "project-access-token": "railway-project-token",
                "proxy-authorization": "Basic YTpi", "x_hasura_admin_secret": "underscored-secret",
                "x_scopegate_role": "admin"}
    r = http1(gateway.port, "GET", "/rest/vehicles", {**bearer(keys.reader), **smuggled})
    assert r.status == 200, r
    r = http1(gateway.port, "GET", "/api/v2/rentals/_table/vehicles", {"x-api-key": keys.reader, **smuggled})
    assert r.status == 200, r
    seen = reached(upstream)
    assert len(seen) == 2
    for s in seen:
        names = {h[0] for h in s["headers"]}
        assert not names & set(smuggled), names & set(smuggled)
        flat = json.dumps(s["headers"])
        assert not any(v in flat for v in smuggled.values())


def test_public_route_needs_no_key(gateway, upstream):
    r = http1(gateway.port, "GET", "/rest/health")
    assert r.status == 200, r
    assert r.json() == {"status": "ok"}


@pytest.mark.parametrize("path,headers", [
    ("/rest/health?_method=DELETE", {}),
    ("/rest/health", {"x-http-method-override": "DELETE"}),
])
def test_public_route_is_not_public_with_a_method_override(gateway, upstream, path, headers):
    r = http1(gateway.port, "GET", path, headers)
    assert r.status == 401, r
    assert reached(upstream) == []


def test_record_scoped_update(gateway, upstream, pg, keys):
    ok = http1(gateway.port, "PATCH", "/rest/reservations?tenant_id=eq.acme&id=eq.r-1",
               {**bearer(keys.support), "content-type": "application/json"}, '{"customer": "Ada L."}')
    assert ok.status == 200, ok
    assert ok.json() == {"updated": 1}
    other = http1(gateway.port, "PATCH", "/rest/reservations?id=eq.r-3",
                  {**bearer(keys.support), "content-type": "application/json"}, '{"customer": "Mallory"}')
    assert other.status == 403, other
    assert "only for proven records (tenant_id)" in other.json()["reason"]
    assert pg.execute("SELECT customer FROM reservations WHERE id IN ('r-1', 'r-3') ORDER BY id") == [("Ada L.",), ("Linus",)]


@pytest.mark.parametrize("body", ['{"tenant_id": "globex"}', '{"tenant_id": null}', '{"customer": "x", "TENANT_ID": "globex"}'])
def test_record_scoped_update_cannot_move_rows_out_of_the_tenant(gateway, upstream, pg, keys, body):
    """Issue 17, class 5: the rows the filter names are acme's, but the body would make them
    another tenant's (or nobody's). The post-image is checked against the grant's records."""
    r = http1(gateway.port, "PATCH", "/rest/reservations?tenant_id=eq.acme&id=eq.r-1",
              {**bearer(keys.support), "content-type": "application/json"}, body)
    assert r.status == 403, r
    assert "tenant_id" in r.json()["reason"]
    assert not reached(upstream, "PATCH")
    assert pg.execute("SELECT tenant_id, customer FROM reservations WHERE id = 'r-1'") == [("acme", "Ada")]


def test_record_scoped_update_keeping_the_tenant_is_forwarded_with_its_body(gateway, upstream, pg, keys):
    r = http1(gateway.port, "PATCH", "/rest/reservations?tenant_id=eq.acme&id=eq.r-1",
              {**bearer(keys.support), "content-type": "application/json"}, '{"tenant_id": "acme", "customer": "Ada B."}')
    assert r.status == 200, r
    assert pg.execute("SELECT tenant_id, customer FROM reservations WHERE id = 'r-1'") == [("acme", "Ada B.")]


def test_unbounded_grant_allows_collection_delete(gateway, upstream, pg, keys):
    r = http1(gateway.port, "DELETE", "/rest/scratch", bearer(keys.janitor))
    assert r.status == 200, r
    assert rows(pg, "scratch") == []


# ---------------------------------------------------------------- deny

@pytest.mark.parametrize("proto", ["http1", "h2"])
def test_delete_on_ungranted_table_is_403_and_row_survives(gateway, upstream, pg, keys, proto):
    path = "/rest/reservations?id=eq.r-17"
    if proto == "http1":
        r = http1(gateway.port, "DELETE", path, bearer(keys.reader))
    else:
        c = H2(gateway.port)
        r = c.request("DELETE", path, bearer(keys.reader))
        c.close()
    assert r.status == 403, r
    body = r.json()
    assert body["decision"] == "deny"
    assert body["operations"] == [{"service": "rentals", "action": "delete", "resource": "reservations",
                                   "scope": "some", "records": {"id": ["r-17"]}}]
    assert "grants no delete" in body["reason"]
    assert body["hint"] and body["request_id"]
    assert "r-17" in rows(pg, "reservations")
    assert reached(upstream) == []


def test_dreamfactory_delete_record_not_granted(gateway, upstream, pg, keys):
    r = http1(gateway.port, "DELETE", "/api/v2/rentals/_table/vehicles/v-1", {"x-api-key": keys.support})
    assert r.status == 403, r
    assert "v-1" in rows(pg, "vehicles")
    assert reached(upstream) == []


@pytest.mark.parametrize("path", [
    "/rest/reservations",                                # no filter at all
    "/rest/reservations?limit=1",                        # modifiers are not filters
    "/rest/reservations?id=neq.nobody",                  # bounds nothing
    "/rest/reservations?customer=like.*",                # wildcard-only pattern
    "/rest/reservations?or=(id.eq.r-1,customer.not.is.null)",
])
def test_collection_delete_is_scope_all_and_denied_without_unbounded(gateway, upstream, pg, keys, path):
    r = http1(gateway.port, "DELETE", path, bearer(keys.support))
    assert r.status == 403, r
    body = r.json()
    assert body["operations"][0]["scope"] == "all"
    assert "scope all" in body["reason"]
    assert len(rows(pg, "reservations")) == 4
    assert reached(upstream) == []


def test_dreamfactory_collection_delete_is_scope_all(gateway, upstream, pg, keys):
    r = http1(gateway.port, "DELETE", "/api/v2/rentals/_table/reservations", {"x-api-key": keys.support})
    assert r.status == 403, r
    assert r.json()["operations"][0]["scope"] == "all"
    ok = http1(gateway.port, "DELETE", "/api/v2/rentals/_table/reservations?ids=r-2", {"x-api-key": keys.support})
    assert ok.status == 200, ok
    assert rows(pg, "reservations") == ["r-1", "r-17", "r-3"]


def test_guard_denies_even_an_unbounded_grant(gateway, upstream, pg, keys):
    r = http1(gateway.port, "DELETE", "/rest/payments?id=eq.p-1", bearer(keys.janitor))
    assert r.status == 403, r
    assert r.json()["rule"] == "guards[0]"
    assert rows(pg, "payments") == ["p-1", "p-2"]
    assert reached(upstream) == []


# ---------------------------------------------------------------- 401

@pytest.mark.parametrize("headers,reason", [
    ({}, "no credential"),
    ({"authorization": "Bearer sgk_not_a_key"}, "unknown key"),
    ({"x-api-key": "sgk_not_a_key"}, "unknown key"),
    ({"authorization": "Basic dXNlcjpwYXNz"}, "no credential"),
    ("expired", "has expired"),
    ("staging", "not valid in environment `production`"),
    ("conflict", "two different credentials"),
])
def test_unauthenticated_is_401(gateway, upstream, keys, headers, reason):
    if headers == "expired":
        headers = bearer(keys.expired)
    elif headers == "staging":
        headers = bearer(keys.staging)
    elif headers == "conflict":
        headers = {**bearer(keys.reader), "x-api-key": keys.support}
    r = http1(gateway.port, "GET", "/rest/vehicles", headers)
    assert r.status == 401, r
    assert r.json()["decision"] == "unauthenticated"
    assert reason in r.json()["reason"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert reached(upstream) == []


def test_repeated_credential_header_is_refused(gateway, upstream, keys):
    r = http1(gateway.port, "GET", "/rest/vehicles", [("x-api-key", keys.reader), ("x-api-key", keys.support)])
    assert r.status == 401, r
    assert "repeated" in r.json()["reason"]


# ---------------------------------------------------------------- ambiguity

@pytest.mark.parametrize("method,path,headers", [
    ("GET", "/rest/reservations", {"x-http-method-override": "DELETE"}),
    ("POST", "/rest/reservations", {"x-http-method": "DELETE"}),
    ("DELETE", "/rest/reservations;id=eq.r-1", {}),
    ("DELETE", "/rest/reservations?id=eq.r-1;x", {}),
    ("DELETE", "/rest/reserv%61tions?id=bogus.r-1", {}),
    ("DELETE", "/rest/reservations?_method=GET&id=eq.r-1", {}),
    ("DELETE", "/api/v2/rentals/_table/reservations?ids=r-1&ids=r-2", {}),
    ("DELETE", "/api/v2/rentals/_table/reservations?filter=1%3D1", {}),
    ("DELETE", "/api/v2/rentals/_table/reservations?related=x", {}),
    ("GET", "/REST/reservations", {}),
    ("DELETE", "/rest/reservations/r-1", {}),
])
def test_ambiguous_requests_are_denied_and_nothing_is_deleted(gateway, upstream, pg, keys, method, path, headers):
    r = http1(gateway.port, method, path, {**bearer(keys.support), **headers},
              "{}" if method in ("POST", "PATCH") else None)
    assert r.status in (400, 403), r
    if r.status == 403:
        assert r.json()["decision"] == "deny"
    assert len(rows(pg, "reservations")) == 4
    assert reached(upstream) == []


@pytest.mark.parametrize("path", [
    "/rest/payments%2F..%2Freservations",  # encoded slash: Envoy rejects (REJECT_REQUEST)
    "/rest/x/../payments?id=eq.p-1",        # normalised by Envoy to /rest/payments, then guarded
    "//rest//payments?id=eq.p-1",           # merged by Envoy, then guarded
])
def test_path_tricks_reach_nothing(gateway, upstream, pg, keys, path):
    r = http1(gateway.port, "DELETE", path, bearer(keys.janitor))
    assert r.status in (400, 403), r
    assert rows(pg, "payments") == ["p-1", "p-2"]
    assert reached(upstream) == []


# ---------------------------------------------------------------- bodies, challenges, HTTP/2 trailers

def test_approval_friction_is_428_with_a_digest_and_nothing_forwarded(gateway, upstream, pg, keys):
    r = http1(gateway.port, "DELETE", "/rest/reservations?id=eq.r-2", bearer(keys.support))
    assert r.status == 428, r
    body = r.json()
    assert body["decision"] == "challenge" and body["friction"] == "approval"
    assert body["challenge"].startswith("sha256:") and body["expires_in"] > 0
    assert body["rule"] == "roles[1].allow[1]"
    assert "r-2" in rows(pg, "reservations")
    assert reached(upstream) == []


def test_challenge_digest_binds_the_body(gateway, upstream, keys):
    hdrs = {**bearer(keys.support), "content-type": "application/json"}
    a = http1(gateway.port, "POST", "/rest/reservations", hdrs, '{"id":"r-9","tenant_id":"acme","customer":"A"}')
    b = http1(gateway.port, "POST", "/rest/reservations", hdrs, '{"id":"r-9","tenant_id":"acme","customer":"B"}')
    a2 = http1(gateway.port, "POST", "/rest/reservations", hdrs, '{"id":"r-9","tenant_id":"acme","customer":"A"}')
    assert (a.status, b.status, a2.status) == (428, 428, 428)
    assert a.json()["challenge"] == a2.json()["challenge"] != b.json()["challenge"]
    assert reached(upstream) == []


def test_h2_request_with_trailers_is_held_until_decided(gateway, upstream, pg, keys):
    c = H2(gateway.port)
    try:
        sid = c.start("POST", "/rest/reservations", {**bearer(keys.support), "content-type": "application/json"})
        c.data(sid, b'{"id":"r-50","tenant_id":"acme",')
        c.data(sid, b'"vehicle_id":"v-1","customer":"Eve"}')
        c.pump(0.5)
        # The body is complete but the stream is not: nothing may have been decided or
        # forwarded yet.
        assert not c.answered(sid)
        assert reached(upstream) == []
        c.trailers(sid, {"x-checksum": "abc"})
        r = c.response(sid)
    finally:
        c.close()
    assert r.status == 428, r
    assert r.json()["challenge"].startswith("sha256:")
    assert reached(upstream) == []
    assert "r-50" not in rows(pg, "reservations")


def test_h2_denied_request_with_body_and_trailers_never_reaches_upstream(gateway, upstream, pg, keys):
    c = H2(gateway.port)
    try:
        r = c.request("DELETE", "/rest/reservations", bearer(keys.reader), body=b'{"x":1}', trailers={"x-t": "1"})
    finally:
        c.close()
    assert r.status == 403, r
    assert len(rows(pg, "reservations")) == 4
    assert reached(upstream) == []


def test_h2_allowed_request_with_trailers_is_forwarded(gateway, upstream, pg, keys):
    c = H2(gateway.port)
    try:
        r = c.request("PATCH", "/rest/reservations?tenant_id=eq.acme&id=eq.r-2",
                      {**bearer(keys.support), "content-type": "application/json"},
                      body=b'{"customer": "Grace H."}', trailers={"x-t": "1"})
    finally:
        c.close()
    assert r.status == 200, r
    assert pg.execute("SELECT customer FROM reservations WHERE id = 'r-2'") == [("Grace H.",)]


def test_body_over_the_service_limit_is_413(gateway, upstream, keys):
    big = json.dumps({"id": "r-99", "tenant_id": "acme", "customer": "x" * 8000})
    r = http1(gateway.port, "POST", "/rest/reservations", {**bearer(keys.support), "content-type": "application/json"}, big)
    assert r.status == 413, r
    assert r.json()["decision"] == "too_large"
    assert "4096" in r.json()["reason"]
    assert reached(upstream) == []


# ---------------------------------------------------------------- audit

def test_one_audit_record_per_request_with_final_status(gateway, upstream, keys):
    tag = harness.new_key("audit-")
    sent = [
        ("GET", "/rest/vehicles", bearer(keys.reader)),
        ("DELETE", "/rest/vehicles?id=eq.v-1", bearer(keys.reader)),
        ("GET", "/rest/vehicles", {}),
        ("DELETE", "/rest/reservations?id=eq.r-2", bearer(keys.support)),
    ]
    for i, (method, path, headers) in enumerate(sent):
        http1(gateway.port, method, path, {**headers, "x-request-id": f"{tag}-{i}"})
    ids = [f"{tag}-{i}" for i in range(len(sent))]

    def mine():
        return [r for r in gateway.audit_records() if r["request_id"] in ids]
    deadline = time.monotonic() + 5
    while len(mine()) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # a duplicate record would show up by now
    recs = sorted(mine(), key=lambda r: r["request_id"])
    assert [r["request_id"] for r in recs] == ids, "exactly one record per request"
    assert [(r["decision"], r["status"], r["method"]) for r in recs] == [
        ("allow", 200, "GET"), ("deny", 403, "DELETE"), ("unauthenticated", 401, "GET"), ("challenge", 428, "DELETE")]
    for rec in recs:
        assert rec["bundle"] == "e2e" and rec["environment"] == "production" and rec["enforced"] is True
        for k in ("ts", "request_id", "key", "role", "service", "path", "operations", "reason", "rule", "digest", "approval"):
            assert k in rec
        text = json.dumps(rec)
        for secret in (keys.reader, keys.support, UPSTREAM_TOKEN):
            assert secret not in text
    assert recs[0]["key"] == "agent-reader" and recs[0]["operations"][0]["resource"] == "vehicles"
    assert recs[2]["key"] is None
    assert recs[3]["digest"].startswith("sha256:") and recs[3]["rule"] == "roles[1].allow[1]"
    assert recs[0]["digest"] is None and recs[1]["digest"] is None


# ---------------------------------------------------------------- configuration

def test_bad_bundle_makes_envoy_refuse_the_plugin(upstream, keys):
    b = bundle(keys)
    b["keys"][0]["role"] = "ghost"
    b["roles"][0]["allow"][0]["actions"] = ["read", "obliterate"]
    e = harness.Envoy(b, upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN})
    code, log = e.run_until_exit()
    assert code != 0
    assert "roles[0].allow[0].actions[1]: unknown action `obliterate`" in log
    assert "keys[0].role: unknown role `ghost`" in log
    assert "Unable to create Wasm plugin scopegate" in log


def test_missing_upstream_secret_makes_envoy_refuse_the_plugin(upstream, keys):
    e = harness.Envoy(bundle(keys), upstream.port, env={})
    code, log = e.run_until_exit()
    assert code != 0
    assert "services[0].upstream_auth.env: environment variable `RENTALS_UPSTREAM_TOKEN` is not set" in log
