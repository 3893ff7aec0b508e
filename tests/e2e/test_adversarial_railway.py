"""Issue 18's GraphQL cases in front of the real GraphQL test server: the shipped
policies/railway.json, a real Envoy, and tests/upstream/graphql_api.py (strawberry over
PostgreSQL, whose environments answer their decrypted variables).

tests/adversarial/railway.jsonl holds the cases, in the format of cases.jsonl (`as` names a
key of policies/railway.keys), each named by its class: secrets reached below a granted
root field (nested fields, the decrypt flag as a literal, a variable given, unset or
defaulted, fragments, inline fragments, aliases, directives, batches, GET), the
`replace` flag of `variableCollectionUpsert` (class 2), subscriptions and introspection
(class 5), the guarded mutations (class 6) — beside look-alikes that must stay allowed.
Every case is valid against the server's schema unless it is refused (GraphQL is
case-sensitive, so casing tricks live in cases.jsonl, in front of the echo upstream).

1. `scopegate test policies/railway.json tests/adversarial/railway.jsonl` passes (natively).
2. Each case through Envoy, after the server's tables are reseeded: a refused one is
   answered with its status and decision (and the reason the case names), the server saw
   nothing, PostgreSQL is unchanged and no secret text is in the answer; an allowed one is
   the server's own 2xx GraphQL answer, without `errors` and without secret text.
3. The refused secret queries are real: sent straight to the server, they return the
   decrypted values.
4. Class 4: an approval covers the one request it was given for — not the same mutation on
   another environment, not the same operation in a batch, and only once."""

import json
import subprocess
import urllib.request

import pytest

import harness
from agree import CLI
from clients import http1

HERE = harness.ROOT / "tests" / "adversarial"
BUNDLE = harness.ROOT / "policies" / "railway.json"
CASES = HERE / "railway.jsonl"
KEYS_FILE = harness.ROOT / "policies" / "railway.keys"
KEYS = harness.demo_keys("railway")
TOKEN = "railway-upstream-" + harness.new_key("")
STATUS = {"deny": 403, "unauthenticated": 401, "too_large": 413, "challenge": 428, "over_budget": 429}
SECRETS = ("s3cret", "sk_live")

STATE = """
SELECT json_build_object(
  'volumes', (SELECT json_agg(id ORDER BY id) FROM railway.volumes),
  'backups', (SELECT json_agg(id ORDER BY id) FROM railway.volume_backups),
  'custom_domains', (SELECT json_agg(domain || ':' || coalesce(target_port::text, '') ORDER BY domain)
                     FROM railway.custom_domains),
  'projects', (SELECT json_agg(id ORDER BY id) FROM railway.projects),
  'environments', (SELECT json_agg(id ORDER BY id) FROM railway.environments),
  'variables', (SELECT json_agg(environment_id || '/' || name || '=' || value ORDER BY environment_id, name)
                FROM railway.variables))
"""


def load_cases():
    out = []
    for line in CASES.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("//"):
            out.append(json.loads(line))
    return out


CASE_LIST = load_cases()


def request_of(case):
    """(method, path, headers, body) as `scopegate test` builds them."""
    headers = {"authorization": f"Bearer {KEYS[case['as']]}"} if case.get("as") else {}
    headers.update(case.get("headers") or {})
    body = case.get("body")
    if body is not None and not isinstance(body, str):
        body = json.dumps(body, separators=(",", ":"))
    if body and not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = "application/json"
    return case.get("method", "GET"), case["path"], headers, body


@pytest.fixture(scope="module")
def rw_upstream(pg):
    u = harness.Upstream(pg.dsn, TOKEN, script="graphql_api.py").start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def rw_gateway(rw_upstream):
    e = harness.Envoy(BUNDLE.read_text(), rw_upstream.port, env={"RAILWAY_TOKEN": TOKEN}).start()
    yield e
    e.stop()


def reseed(upstream):
    urllib.request.urlopen(urllib.request.Request(upstream.url + "/__seed", method="POST"), timeout=10).read()
    upstream.reset()


def state(pg):
    return pg.execute(STATE)[0][0]


def answers(body):
    doc = json.loads(body)
    return doc if isinstance(doc, list) else [doc]


def test_cli_runs_the_railway_cases():
    r = subprocess.run([CLI, "test", str(BUNDLE), str(CASES), "--keys", str(KEYS_FILE)],
                       capture_output=True, text=True, timeout=120)
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert r.returncode == 0, "\n".join(failed) or r.stderr
    assert f"{len(CASE_LIST)} passed, 0 failed" in r.stdout, r.stdout[-500:]


def test_the_cases_keep_their_shape():
    names = [c["name"] for c in CASE_LIST]
    assert len(set(names)) == len(names), "case names are unique"
    for n in (1, 2, 5, 6):
        assert any(f"class {n} " in name for name in names), n
    assert {c["as"] for c in CASE_LIST} == set(KEYS)
    assert sum(c["expect"] == "allow" for c in CASE_LIST) >= len(CASE_LIST) / 4


@pytest.mark.parametrize("case", CASE_LIST, ids=[c["name"].replace(" ", "_") for c in CASE_LIST])
def test_case_in_front_of_the_real_server(rw_gateway, rw_upstream, pg, case):
    reseed(rw_upstream)
    before = state(pg)
    method, path, headers, body = request_of(case)
    r = http1(rw_gateway.port, method, path, headers, body)
    text = r.body.decode("utf-8", "replace")
    for s in SECRETS:
        assert s not in text, f"BYPASS: secret text {s!r} in the answer: {r}"
    seen = rw_upstream.seen()
    if case["expect"] == "allow":
        assert 200 <= r.status < 300, r
        assert "x-scopegate-decision" not in r.headers, r
        assert len(seen) == 1, seen
        for a in answers(r.body):
            assert "errors" not in a and a.get("data") is not None, f"the server did not answer the case: {r}"
        return
    assert seen == [], f"BYPASS: expected {case['expect']}, the server received the request: {r}"
    assert state(pg) == before, "the server's state changed"
    assert r.status == STATUS[case["expect"]], r
    assert r.headers.get("x-scopegate-decision") == case["expect"], r
    verdict = r.json()
    assert verdict["decision"] == case["expect"], verdict
    if case.get("reason"):
        assert case["reason"] in verdict["reason"], verdict


# Refused above; sent straight to the server (no gateway), each returns decrypted values. (The
# other refused secret queries return none on this server — an unset or skipped flag, a
# subscription, variables as a string, an operation operationName does not pick — and are
# refused all the same: scopegate cannot know what another server would do with them.)
LEAK_WITHOUT_GATEWAY = [
    "railway class 1 (below the root): domains: variables below project.environments",
    "railway class 1 (below the root): domains: variables below projects (every project)",
    "railway class 1 (below the root): readonly: variables below the environments root",
    "railway class 1 (below the root): operator: variables below project (guards hold for every role)",
    "railway class 1 (below the root): domains: config(decryptVariables: true) literal",
    "railway class 1 (below the root): readonly: config(decryptVariables: true) below the environments root",
    "railway class 1 (below the root): domains: the decrypt flag through a variable given true",
    "railway class 1 (below the root): readonly: the decrypt flag from a variable's default",
    "railway class 1 (below the root): readonly: a default false overridden by the variables",
    "railway class 1 (below the root): domains: the decrypt flag in a named fragment",
    "railway class 1 (below the root): domains: variables in an inline fragment",
    "railway class 1 (below the root): readonly: variables two fragments deep",
    "railway class 1 (below the root): domains: an alias over the decrypted config",
    "railway class 1 (below the root): domains: an alias named name over variables",
    "railway class 1 (below the root): domains: the root aliased as a granted one",
    "railway class 1 (below the root): domains: @include(if: $show) with show true",
    "railway class 1 (below the root): domains: the secret in the second document of a batch",
    "railway class 1 (below the root): domains: the secret over GET",
    "railway class 1 (below the root): readonly: the decrypt flag over GET through its variables",
    "railway class 1 (below the root): domains: a JSON escape spelling variables",
    "railway class 1 (below the root): domains: a comment between the fields",
    "railway class 1 (below the root): readonly: __typename beside the secret",
    "railway class 5 (kinds): readonly: introspection beside the secret",
]


def test_the_refused_secret_queries_are_real(rw_upstream):
    reseed(rw_upstream)
    by_name = {c["name"]: c for c in CASE_LIST}
    leaked = []
    for name in LEAK_WITHOUT_GATEWAY:
        case = by_name[name]
        assert case["expect"] != "allow", name
        method, path, headers, body = request_of(case)
        headers["authorization"] = f"Bearer {TOKEN}"
        r = http1(rw_upstream.port, method, path, headers, body)
        if any(s in r.body.decode() for s in SECRETS):
            leaked.append(name)
    assert leaked == LEAK_WITHOUT_GATEWAY


UPSERT = "mutation Up($input: VariableCollectionUpsertInput!) { variableCollectionUpsert(input: $input) }"


def upsert(environment):
    return {"query": UPSERT, "variables": {"input": {
        "environmentId": environment, "projectId": "proj-1", "variables": {"NEW_FLAG": "on"}, "replace": True}}}


def approve(challenge):
    return harness.approve_signed(challenge, harness.ROOT / "policies" / "railway.json")


def test_class_4_an_approval_covers_only_its_operations(rw_gateway, rw_upstream, pg):
    """railway class 4 (bound to operations): the human approves the replacing upsert of
    env-prod; the token does not cover the same mutation on env-staging, nor the approved
    operation sent as a batch; it covers the approved request once."""
    reseed(rw_upstream)
    before = state(pg)
    op = {"authorization": f"Bearer {KEYS['railway-operator']}", "content-type": "application/json"}
    prod, staging = json.dumps(upsert("env-prod")), json.dumps(upsert("env-staging"))

    r = http1(rw_gateway.port, "POST", "/graphql/v2", op, prod)
    assert r.status == 428, r
    challenge = r.json()
    r2 = http1(rw_gateway.port, "POST", "/graphql/v2", op, staging)
    assert r2.status == 428, r2
    assert r2.json()["challenge"] != challenge["challenge"]
    token = approve(challenge)

    for other in (staging, json.dumps([upsert("env-prod")])):
        r = http1(rw_gateway.port, "POST", "/graphql/v2", {**op, "x-scopegate-approval": token}, other)
        assert r.status == 403 and r.json()["decision"] == "deny", r
    assert rw_upstream.seen() == [] and state(pg) == before

    r = http1(rw_gateway.port, "POST", "/graphql/v2", {**op, "x-scopegate-approval": token}, prod)
    assert r.status == 200 and answers(r.body)[0]["data"]["variableCollectionUpsert"] is True, r
    assert state(pg)["variables"] == ["env-prod/NEW_FLAG=on"], "the approved replace ran"
    seen = rw_upstream.seen()
    assert len(seen) == 1 and "x-scopegate-approval" not in dict(seen[0]["headers"])

    reseed(rw_upstream)
    r = http1(rw_gateway.port, "POST", "/graphql/v2", {**op, "x-scopegate-approval": token}, prod)
    assert r.status == 403, r
    assert rw_upstream.seen() == []
