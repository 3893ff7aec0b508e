"""Agents with OAuth/OIDC tokens (bundle `identities`), through a real Envoy whose
`jwt_authn` filter verifies them against a local JWKS ahead of scopegate. The tokens are
minted here (RS256 and ES256, with `cryptography`); scopegate reads only the payload
jwt_authn verified, from dynamic metadata. Claim-mapped allow/deny/challenge; expired,
wrong audience, wrong issuer, `alg: none`, a bad signature and a forged payload header all
fail and nothing reaches the upstream; an approval issued to one identity does not serve
another; an MCP 401 points at the protected-resource metadata; REST, SQL, GraphQL and MCP
services all decide by the role a token's claims map to."""

import base64
import json
import os
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import harness
from clients import http1
from agree import CLI
from conftest import UPSTREAM_TOKEN, bundle
from test_approval import rows

ISSUER = "https://idp.example.test"
AUDIENCE = "scopegate-gateway"
RESOURCE_METADATA = "https://gateway.example.test/.well-known/oauth-protected-resource"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n, size=None):
    return b64(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


class Idp:
    """An identity provider's two signing keys and the JWKS jwt_authn trusts."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self):
        r, e = self.rsa.public_key().public_numbers(), self.ec.public_key().public_numbers()
        return json.dumps({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": uint(r.n), "e": uint(r.e)},
            {"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256",
             "x": uint(e.x, 32), "y": uint(e.y, 32)},
        ]})

    def token(self, alg="RS256", key=None, **claims):
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
        header = {"alg": alg, "typ": "JWT", "kid": {"RS256": "rsa-1", "ES256": "ec-1"}.get(alg, "rsa-1")}
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}".encode()
        if alg == "none":
            return signing.decode() + "."
        if alg == "RS256":
            sig = (key or self.rsa).sign(signing, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature((key or self.ec).sign(signing, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing.decode()}.{b64(sig)}"


def jwt_authn(idp):
    jwks = json.dumps(idp.jwks())  # a YAML string (JSON-quoted)
    return f"""          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  issuer: {ISSUER}
                  audiences: [{AUDIENCE}]
                  local_jwks: {{ inline_string: {jwks} }}
                  payload_in_metadata: jwt_payload
              rules:
              - match: {{ prefix: "/" }}
                requires:
                  requires_any:
                    requirements:
                    - provider_name: idp
                    - allow_missing_or_failed: {{}}"""


def identity_bundle(keys):
    b = bundle(keys)
    b["identities"] = {
        "resource_metadata": RESOURCE_METADATA,
        "entries": [
            # Scopes select roles: the more privileged entry first.
            {"id": "support-agents", "issuer": ISSUER, "audiences": [AUDIENCE], "scopes": ["rentals.support"],
             "claims": {"client_id": ["agent-*"]}, "role": "support", "id_claim": "client_id"},
            {"id": "readers", "issuer": ISSUER, "audiences": [AUDIENCE],
             "claims": {"groups": ["data-agents"]}, "role": "reader"},
        ],
    }
    return b


@pytest.fixture(scope="module")
def idp():
    return Idp()


@pytest.fixture(scope="module")
def gate(upstream, keys, idp):
    e = harness.Envoy(identity_bundle(keys), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN},
                      jwt_authn=jwt_authn(idp)).start()
    yield e
    e.stop()


def bearer(t):
    return {"authorization": f"Bearer {t}"}


def audit(gate, rid):
    harness.wait_for(lambda: [x for x in gate.audit_records() if x.get("request_id") == rid], 5, rid)
    [rec] = [x for x in gate.audit_records() if x.get("request_id") == rid]
    return rec


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_claims_map_to_roles(gate, upstream, pg, idp, alg):
    reader = idp.token(alg, sub="svc-reporting", groups=["data-agents"])
    r = http1(gate.port, "GET", "/rest/reservations?tenant_id=eq.acme", {**bearer(reader), "x-request-id": f"id-r-{alg}"})
    assert r.status == 200, r
    rec = audit(gate, f"id-r-{alg}")
    assert (rec["key"], rec["role"], rec["decision"]) == ("readers/svc-reporting", "reader", "allow")
    [seen] = upstream.seen()
    headers = dict(seen["headers"])
    assert headers["x-scopegate-key"] == "readers/svc-reporting" and headers["x-scopegate-role"] == "reader"
    assert headers["authorization"] == f"Bearer {UPSTREAM_TOKEN}", "the agent's token never reaches the upstream"
    # The reader may not delete: 403, nothing deleted.
    r = http1(gate.port, "DELETE", "/rest/reservations?id=eq.r-1", bearer(reader))
    assert r.status == 403 and "not covered" in r.json()["reason"], r
    assert "r-1" in rows(pg, "reservations")
    # A token whose claims no entry admits: 401.
    stranger = idp.token(alg, sub="intern", groups=["marketing"])
    r = http1(gate.port, "GET", "/rest/reservations", bearer(stranger))
    assert r.status == 401 and "no identity of the bundle matches" in r.json()["reason"], r


def test_a_scope_selects_the_role_and_approval_binds_to_the_identity(gate, upstream, pg, idp, keys):
    support = idp.token("ES256", sub="u-1", client_id="agent-7", scope="openid rentals.support")
    other = idp.token("ES256", sub="u-2", client_id="agent-8", scope="openid rentals.support")
    path = "/rest/reservations?id=eq.r-2"
    r = http1(gate.port, "DELETE", path, bearer(support))
    assert r.status == 428, r
    challenge = r.json()
    assert challenge["key"] == "support-agents/agent-7"
    env = {**os.environ, "SCOPEGATE_APPROVAL_KEY": harness.APPROVAL_KEY}
    out = subprocess.run([CLI, "approve", "--challenge", "-", "--approver", "alice", "--yes"],
                         input=json.dumps(challenge), capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    # Another identity of the same entry and role cannot use it.
    r = http1(gate.port, "DELETE", path, {**bearer(other), "x-scopegate-approval": token})
    assert r.status == 403, r
    assert "r-2" in rows(pg, "reservations")
    r = http1(gate.port, "DELETE", path, {**bearer(support), "x-scopegate-approval": token})
    assert 200 <= r.status < 300, r
    assert "r-2" not in rows(pg, "reservations")


def test_tokens_that_must_not_authenticate(gate, upstream, pg, idp, keys):
    now = int(time.time())
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = dict(sub="svc", groups=["data-agents"])
    cases = {
        "expired": idp.token("RS256", **good, exp=now - 60, iat=now - 400),
        "wrong audience": idp.token("RS256", **good, aud="another-api"),
        "wrong issuer": idp.token("RS256", **good, iss="https://evil.example.test"),
        "alg none": idp.token("none", **good),
        "bad signature": idp.token("RS256", key=other_rsa, **good),
    }
    for what, t in cases.items():
        r = http1(gate.port, "DELETE", "/rest/reservations?id=eq.r-1", bearer(t))
        assert r.status == 401, (what, r)
    # A forged payload header (as jwt_authn's `forward_payload_header` would write it) with
    # no verified token, or beside a scoped key: never read.
    forged = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "groups": ["data-agents"],
                             "exp": now + 300}).encode())
    for h in ({"x-jwt-payload": forged}, {"x-jwt-payload": forged, "x-api-key": "not-a-key"}):
        r = http1(gate.port, "GET", "/rest/reservations", h)
        assert r.status == 401, (h, r)
    # A scoped key still works beside jwt_authn; a key and a token together are refused.
    r = http1(gate.port, "GET", "/rest/reservations?tenant_id=eq.acme", {"x-api-key": keys.reader})
    assert r.status == 200, r
    r = http1(gate.port, "GET", "/rest/reservations", {"x-api-key": keys.reader,
                                                         **bearer(idp.token("RS256", **good))})
    assert r.status == 401 and "both a scopegate key and a verified token" in r.json()["reason"], r
    assert "r-1" in rows(pg, "reservations")
    assert [s for s in upstream.seen() if s["method"] == "DELETE"] == []


def test_the_mcp_sdk_client_with_a_bearer_token(pg, idp):
    """The official MCP SDK (2.x line) as an OAuth client: its bearer token, verified by
    jwt_authn, is the agent's identity; what it may call is the reader role's. Without a
    token, the 401 names the protected-resource metadata (MCP authorization)."""
    import test_mcp
    b = json.loads(test_mcp.BUNDLE_FILE.read_text())
    b["identities"] = {"resource_metadata": RESOURCE_METADATA, "entries": [
        {"id": "mcp-clients", "issuer": ISSUER, "audiences": [AUDIENCE], "claims": {"azp": ["claude-*"]},
         "role": "reader", "id_claim": "azp"}]}
    upstream = harness.Upstream(pg.dsn, test_mcp.TOKEN, script="mcp_server.py",
                                python=test_mcp.venv_python(2)).start()
    gateway = harness.Envoy(json.dumps(b), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": test_mcp.TOKEN},
                            jwt_authn=jwt_authn(idp)).start()
    try:
        r = http1(gateway.port, "POST", "/mcp", {"content-type": "application/json",
                                                  "accept": "application/json, text/event-stream"},
                  json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        assert r.status == 401, r
        assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{RESOURCE_METADATA}"', r.headers

        class S:  # what run_client needs of a stack
            pass
        stack = S()
        stack.gateway = gateway
        token = idp.token("ES256", sub="user-9", azp="claude-desktop", scope="openid")
        before = [x[0] for x in pg.execute("SELECT id FROM reservations ORDER BY id")]
        tools, vehicle, delete = test_mcp.run_client(2, stack, token, [
            ["list_tools"],
            ["call", "get_vehicle", {"vehicle_id": "v-1"}],
            ["call", "delete_reservation", {"reservation_id": "r-1"}],
        ])
        assert tools == {"ok": True, "value": ["list_reservations", "get_vehicle", "execute_sql", "run_query"]}
        assert vehicle["ok"] and "Model 3" in json.dumps(vehicle["value"]), vehicle
        assert not delete["ok"] and "scopegate: deny" in delete["error"], delete
        assert [x[0] for x in pg.execute("SELECT id FROM reservations ORDER BY id")] == before
        recs = [x for x in gateway.audit_records() if x.get("key") == "mcp-clients/claude-desktop"]
        assert {x["decision"] for x in recs} >= {"allow", "deny"}, recs
    finally:
        gateway.stop()
        upstream.stop()


def test_claims_decide_on_every_protocol_through_envoy(idp):
    """The adversarial bundle's REST, SQL, GraphQL and MCP services behind jwt_authn, a
    recording upstream behind them: with real tokens, each request's decision is the role
    its claims map to, and only what was allowed arrives."""
    bundle_file = harness.ROOT / "tests" / "adversarial" / "bundle.json"
    b = json.loads(bundle_file.read_text())
    b["identities"] = {"entries": [
        {"id": "writers", "issuer": ISSUER, "audiences": [AUDIENCE], "scopes": ["shop.write"],
         "role": "writer", "id_claim": "client_id"},
        {"id": "agents", "issuer": ISSUER, "audiences": [AUDIENCE], "claims": {"groups": ["cart-bots"]},
         "role": "agent"},
        {"id": "readers", "issuer": ISSUER, "audiences": [AUDIENCE], "claims": {"client_id": ["ro-*"]},
         "role": "reader"}]}
    echo = harness.Upstream("", "", script="echo.py").start()
    gate = harness.Envoy(json.dumps(b), echo.port, jwt_authn=jwt_authn(idp)).start()
    reader = idp.token("RS256", client_id="ro-reporting", sub="svc-reporting")
    writer = idp.token("ES256", client_id="etl-7", sub="svc-etl", scope="openid shop.write")
    agent = idp.token("RS256", groups=["cart-bots"], client_id="bot-1", sub="bot-1")
    sql = lambda q: json.dumps({"sql": q})  # noqa: E731
    gql = lambda q: json.dumps({"query": q})  # noqa: E731
    mcp = lambda tool, args: json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",  # noqa: E731
                                         "params": {"name": tool, "arguments": args}})
    cases = [
        (reader, "GET", "/rest/orders?id=eq.1", None, 200),
        (reader, "DELETE", "/rest/orders?id=eq.1", None, 403),
        (writer, "PATCH", "/rest/orders?id=eq.1", '{"note":"x"}', 200),
        (agent, "DELETE", "/rest/notes?id=eq.n-1", None, 428),
        (reader, "POST", "/sql", sql("SELECT id FROM orders"), 200),
        (reader, "POST", "/sql", sql("DELETE FROM orders WHERE id = 1"), 403),
        (agent, "POST", "/sql", sql("DELETE FROM carts WHERE id = 'c-1'"), 200),
        (agent, "POST", "/sql", sql("DELETE FROM carts WHERE id = 'c-9'"), 403),
        (reader, "POST", "/graphql", gql("{ orders { id } }"), 200),
        (reader, "POST", "/graphql", gql("mutation { orderCreate(input: {}) { id } }"), 403),
        (writer, "POST", "/graphql", gql("mutation { orderCreate(input: {}) { id } }"), 200),
        (reader, "POST", "/mcp", mcp("list_orders", {}), 200),
        (writer, "POST", "/mcp", mcp("create_order", {"item": "x"}), 200),
    ]
    try:
        for i, (t, method, path, body, status) in enumerate(cases):
            rid = f"idp-{i}"
            h = {**bearer(t), "x-request-id": rid, "content-type": "application/json",
                 "accept": "application/json, text/event-stream"}
            r = http1(gate.port, method, path, h, body)
            assert r.status == status, (method, path, body, r)
            arrived = [s for s in echo.seen() if ["x-request-id", rid] in s["headers"]]
            assert len(arrived) == (1 if status == 200 else 0), (method, path, arrived)
        # The reader's MCP tools/call of a writer's tool: a JSON-RPC refusal, nothing upstream.
        r = http1(gate.port, "POST", "/mcp", {**bearer(reader), "x-request-id": "idp-x", "content-type": "application/json",
                                              "accept": "application/json, text/event-stream"},
                  mcp("create_order", {"item": "x"}))
        assert r.status in (200, 403) and "deny" in r.body.decode(), r
        assert not [s for s in echo.seen() if ["x-request-id", "idp-x"] in s["headers"]]
    finally:
        gate.stop()
        echo.stop()


def test_scopegate_envoy_renders_jwt_authn_from_the_bundle(tmp_path, upstream, pg, keys, idp):
    """`scopegate envoy --jwks ISSUER=FILE`: the whole configuration, jwt_authn included,
    from the bundle's identities — a token is verified and decided; a bad one refused; an
    issuer without its JWKS, or a JWKS for an issuer the bundle does not trust, refused at
    render time."""
    b = identity_bundle(keys)
    f = tmp_path / "bundle.json"
    f.write_text(json.dumps(b))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(idp.jwks())
    up = ["--upstream", f"rentals=127.0.0.1:{upstream.port}", "--upstream", f"rentals-df=127.0.0.1:{upstream.port}"]
    for bad, says in (([], "give --jwks"), ([f"--jwks={ISSUER}={jwks}", f"--jwks=https://other.test={jwks}"],
                                            "no identity of the bundle trusts")):
        out = subprocess.run([CLI, "envoy", "--bundle", str(f), "--out", str(tmp_path / "x"), *up, *bad],
                             capture_output=True, text=True)
        assert out.returncode == 1 and says in out.stderr, out.stderr
    gw = harness.RenderedEnvoy(f, [*up, f"--jwks={ISSUER}={jwks}"],
                               env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN,
                                    "SCOPEGATE_APPROVAL_KEY": harness.APPROVAL_KEY}).start()
    try:
        reader = idp.token("ES256", sub="svc-r", groups=["data-agents"])
        r = http1(gw.port, "GET", "/rest/reservations?tenant_id=eq.acme", bearer(reader))
        assert r.status == 200, r
        forged = idp.token("RS256", key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                           sub="svc-r", groups=["data-agents"])
        r = http1(gw.port, "GET", "/rest/reservations?tenant_id=eq.acme", bearer(forged))
        assert r.status == 401, r
    finally:
        gw.stop()
