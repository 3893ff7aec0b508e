"""The PocketOS replay and GraphQL through a real Envoy: scopegate, running the shipped
policies/railway.json, in front of a real GraphQL server (strawberry, over PostgreSQL)
that exposes Railway's `volumeDelete`, `customDomainCreate` and friends with state.

Every refused attempt is followed by a direct look at PostgreSQL: the volume and its
backups are still there, and the upstream never received the request."""

import json
import time
import urllib.parse
import urllib.request

import pytest

import harness
from agree import assert_cli_agrees
from clients import http1

TOKEN = "railway-upstream-" + harness.new_key("")
FIXTURES = harness.ROOT.parent / "shared" / "fixtures" / "railway"

# The incident's mutation, byte for byte as the Railway CLI sends it (read from the shared
# fixtures when present; the same text otherwise).
VOLUME_DELETE_TEXT = "mutation VolumeDelete($id: String!) {\n  volumeDelete(volumeId: $id)\n}\n"
CREATE = ("mutation CustomDomainCreate($input: CustomDomainCreateInput!) {\n"
          "  customDomainCreate(input: $input) { id domain serviceId environmentId }\n}")
DOMAIN_INPUT = {"domain": "shop.example.com", "environmentId": "env-prod", "projectId": "proj-1",
                "serviceId": "svc-web"}


def volume_delete_document():
    path = FIXTURES / "mutations" / "VolumeDelete.graphql"
    return path.read_text() if path.exists() else VOLUME_DELETE_TEXT


KEYS = harness.demo_keys("railway")
DOMAINS, READONLY, OPERATOR = KEYS["railway-domains"], KEYS["railway-readonly"], KEYS["railway-operator"]

STATE = """
SELECT json_build_object(
  'volumes', (SELECT json_agg(id ORDER BY id) FROM railway.volumes),
  'backups', (SELECT json_agg(id ORDER BY id) FROM railway.volume_backups),
  'custom_domains', (SELECT json_agg(domain ORDER BY domain) FROM railway.custom_domains),
  'projects', (SELECT json_agg(id ORDER BY id) FROM railway.projects),
  'environments', (SELECT json_agg(id ORDER BY id) FROM railway.environments),
  'variables', (SELECT json_agg(name ORDER BY name) FROM railway.variables))
"""


@pytest.fixture(scope="module")
def gql_upstream(pg):
    u = harness.Upstream(pg.dsn, TOKEN, script="graphql_api.py").start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def gql_gateway(gql_upstream):
    bundle = (harness.ROOT / "policies" / "railway.json").read_text()
    e = harness.Envoy(bundle, gql_upstream.port, env={"RAILWAY_TOKEN": TOKEN}).start()
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def clean(gql_upstream):
    urllib.request.urlopen(urllib.request.Request(gql_upstream.url + "/__seed", method="POST"), timeout=10).read()
    gql_upstream.reset()


def state(pg):
    return pg.execute(STATE)[0][0]


def post(gw, key, body, content_type="application/json", path="/graphql/v2", headers=None):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    h = {"authorization": f"Bearer {key}", "content-type": content_type, **(headers or {})}
    return http1(gw.port, "POST", path, h, raw)


def get(gw, key, **params):
    return http1(gw.port, "GET", "/graphql/v2?" + urllib.parse.urlencode(params), {"authorization": f"Bearer {key}"})


def test_replay_the_incident(gql_gateway, gql_upstream, pg):
    before = state(pg)
    assert "vol-prod-1" in before["volumes"] and before["backups"]
    body = {"query": volume_delete_document(), "variables": {"id": "vol-prod-1"}, "operationName": "VolumeDelete"}
    r = post(gql_gateway, DOMAINS, body)
    assert r.status == 403, r
    verdict = r.json()
    assert verdict["decision"] == "deny"
    assert verdict["operations"] == [{"service": "railway", "action": "delete", "resource": "volumeDelete",
                                       "scope": "some", "records": {"volumeId": ["vol-prod-1"]}}]
    assert "volumeDelete" in verdict["reason"]
    # The production volume and the backups inside it are still there; nothing reached Railway.
    assert state(pg) == before
    assert gql_upstream.seen() == []

    # The same key does what it was made for.
    r = post(gql_gateway, DOMAINS, {"query": CREATE, "variables": {"input": DOMAIN_INPUT}})
    assert r.status == 200, r
    assert r.json()["data"]["customDomainCreate"]["domain"] == "shop.example.com"
    assert "shop.example.com" in state(pg)["custom_domains"]
    seen = gql_upstream.seen()
    assert len(seen) == 1
    headers = dict(seen[0]["headers"])
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert DOMAINS not in json.dumps(seen)
    assert headers["x-scopegate-key"] == "railway-domains"


def test_the_replay_is_audited(gql_gateway, pg):
    body = {"query": volume_delete_document(), "variables": {"id": "vol-prod-1"}}
    marker = "replay-" + harness.new_key("")[:20].replace("_", "-")
    r = post(gql_gateway, DOMAINS, body, headers={"x-request-id": marker})
    assert r.status == 403, r

    def mine():
        return [x for x in gql_gateway.audit_records() if x.get("request_id") == marker]
    harness.wait_for(lambda: mine(), 5, "audit record")
    time.sleep(0.2)  # a duplicate would show up by now
    records = mine()
    assert len(records) == 1
    rec = records[0]
    assert (rec["key"], rec["role"], rec["service"], rec["decision"], rec["status"]) == \
        ("railway-domains", "domains", "railway", "deny", 403)
    assert rec["operations"][0]["resource"] == "volumeDelete"


INCIDENT = "mutation { volumeDelete(volumeId: \"vol-prod-1\") }"

# The incident in disguise: each must be refused before the upstream sees it.
DISGUISES = [
    ("alias", {"query": "mutation { customDomainCreate: volumeDelete(volumeId: \"vol-prod-1\") }"}),
    ("named fragment", {"query": "mutation { ...D } fragment D on Mutation { volumeDelete(volumeId: \"vol-prod-1\") }"}),
    ("inline fragment", {"query": "mutation { ... on Mutation { volumeDelete(volumeId: \"vol-prod-1\") } }"}),
    ("bare inline fragment", {"query": "mutation { ... { volumeDelete(volumeId: \"vol-prod-1\") } }"}),
    ("skip directive", {"query": CREATE.replace("{ id domain serviceId environmentId }",
                                                "{ id } volumeDelete(volumeId: \"vol-prod-1\") @skip(if: true)"),
                        "variables": {"input": DOMAIN_INPUT}}),
    ("operationName picks the harmless one",
     {"query": CREATE + "\n" + VOLUME_DELETE_TEXT, "operationName": "CustomDomainCreate",
      "variables": {"input": DOMAIN_INPUT, "id": "vol-prod-1"}}),
    ("several operations, no operationName", {"query": "query A { volumes { id } } " + INCIDENT.replace("mutation", "mutation B")}),
    ("batch", [{"query": CREATE, "variables": {"input": DOMAIN_INPUT}},
               {"query": VOLUME_DELETE_TEXT, "variables": {"id": "vol-prod-1"}}]),
    ("comments and commas", {"query": "# customDomainCreate\nmutation ,{,, volumeDelete # (volumeId: \"x\")\n(volumeId: \"vol-prod-1\"),,}"}),
    ("unicode escape in the argument", {"query": "mutation { volumeDelete(volumeId: \"vol-prod-\\u0031\") }"}),
    ("introspection beside it", {"query": "mutation { __typename volumeDelete(volumeId: \"vol-prod-1\") }"}),
]


@pytest.mark.parametrize("name,body", DISGUISES, ids=[d[0] for d in DISGUISES])
def test_disguises_are_refused(gql_gateway, gql_upstream, pg, name, body):
    before = state(pg)
    r = post(gql_gateway, DOMAINS, body)
    assert r.status == 403, (name, r)
    assert state(pg) == before
    assert gql_upstream.seen() == []


RAW_DISGUISES = [
    # Two `query` keys: a parser that keeps the last runs the incident.
    ("duplicate key", "application/json",
     '{"query": "{ project(id: \\"proj-1\\") { id } }", "query": "mutation { volumeDelete(volumeId: \\"vol-prod-1\\") }"}'),
    ("duplicate key via unicode escape", "application/json",
     '{"query": "{ project(id: \\"proj-1\\") { id } }", "\\u0071uery": "mutation { volumeDelete(volumeId: \\"vol-prod-1\\") }"}'),
    ("application/graphql", "application/graphql", INCIDENT),
    ("text/plain (no CORS preflight)", "text/plain", json.dumps({"query": INCIDENT})),
    ("form encoded", "application/x-www-form-urlencoded", urllib.parse.urlencode({"query": INCIDENT})),
    ("JSON labelled as a document", "application/graphql", json.dumps({"query": INCIDENT})),
    ("trailing garbage", "application/json", json.dumps({"query": "{ volumes { id } }"}) + json.dumps({"query": INCIDENT})),
]


@pytest.mark.parametrize("name,ctype,raw", RAW_DISGUISES, ids=[d[0] for d in RAW_DISGUISES])
def test_envelope_disguises_are_refused(gql_gateway, gql_upstream, pg, name, ctype, raw):
    before = state(pg)
    r = post(gql_gateway, DOMAINS, raw, content_type=ctype)
    assert r.status == 403, (name, r)
    assert state(pg) == before
    assert gql_upstream.seen() == []


# Sent straight to the GraphQL server (no gateway), these delete the production volume:
# the disguises above are real bypasses of any check that reads `operationName`, the first
# field, the alias or the last duplicate key.
DELETES_WITHOUT_GATEWAY = ["alias", "named fragment", "inline fragment", "bare inline fragment", "batch",
                           "comments and commas", "unicode escape in the argument", "introspection beside it",
                           "duplicate key", "duplicate key via unicode escape"]


@pytest.mark.parametrize("name", DELETES_WITHOUT_GATEWAY)
def test_the_disguises_are_real(gql_upstream, pg, name):
    body = dict(DISGUISES).get(name)
    raw = json.dumps(body) if body is not None else next(r for n, _, r in RAW_DISGUISES if n == name)
    r = http1(gql_upstream.port, "POST", "/graphql/v2",
              {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}, raw)
    assert r.status == 200, r
    assert "vol-prod-1" not in (state(pg)["volumes"] or []), "the upstream ran volumeDelete"


def test_mutation_over_get_is_refused(gql_gateway, gql_upstream, pg):
    before = state(pg)
    for key in (DOMAINS, OPERATOR):
        r = get(gql_gateway, key, query=VOLUME_DELETE_TEXT, variables=json.dumps({"id": "vol-prod-1"}))
        assert r.status == 403, r
        assert "mutation over GET" in r.json()["reason"]
    r = get(gql_gateway, DOMAINS, query="mutation { customDomainDelete(id: \"cd-1\") }")
    assert r.status == 403 and "mutation over GET" in r.json()["reason"], r
    assert state(pg) == before
    assert gql_upstream.seen() == []


def test_query_in_url_and_body_is_refused(gql_gateway, gql_upstream):
    r = http1(gql_gateway.port, "POST", "/graphql/v2?" + urllib.parse.urlencode({"query": INCIDENT}),
              {"authorization": f"Bearer {READONLY}", "content-type": "application/json"},
              json.dumps({"query": "{ volumes { id } }"}))
    assert r.status == 403 and "ambiguous" in r.json()["reason"], r
    assert gql_upstream.seen() == []


def test_readonly_reads_over_post_get_and_batch(gql_gateway, gql_upstream, pg):
    r = post(gql_gateway, READONLY, {"query": "{ volumes { id name } }"})
    assert r.status == 200, r
    assert {v["id"] for v in r.json()["data"]["volumes"]} == set(state(pg)["volumes"])
    r = get(gql_gateway, READONLY, query="query P($id: String!) { project(id: $id) { id name } }",
            variables=json.dumps({"id": "proj-1"}))
    assert r.status == 200, r
    assert r.json()["data"]["project"]["id"] == "proj-1"
    r = post(gql_gateway, READONLY, [{"query": "{ volumes { id } }"},
                                     {"query": "{ project(id: \"proj-1\") { name } }"}])
    assert r.status == 200, r
    assert len(r.json()) == 2
    assert len(gql_upstream.seen()) == 3
    # A read of a mutation: refused; the readonly role changes nothing.
    before = state(pg)
    r = post(gql_gateway, READONLY, {"query": CREATE, "variables": {"input": DOMAIN_INPUT}})
    assert r.status == 403, r
    assert state(pg) == before


def test_guards_hold_for_the_operator(gql_gateway, gql_upstream, pg):
    before = state(pg)
    for q in [INCIDENT,
              "mutation { volumeInstanceBackupDelete(volumeInstanceBackupId: \"bak-1\", volumeInstanceId: \"vi-1\") }",
              "mutation { projectDelete(id: \"proj-1\") }",
              "mutation { environmentDelete(id: \"env-prod\") }"]:
        r = post(gql_gateway, OPERATOR, {"query": q})
        assert r.status == 403, (q, r)
        assert r.json()["rule"] == "guards[0]", r
    assert state(pg) == before
    # Other destructive work waits for a human (issue 6 accepts the approval).
    r = post(gql_gateway, OPERATOR, {"query": "mutation { customDomainDelete(id: \"cd-1\") }"})
    assert r.status == 428, r
    assert r.json()["friction"] == "approval" and r.json()["challenge"].startswith("sha256:")
    assert state(pg) == before
    assert gql_upstream.seen() == []
    # Non-destructive work goes through.
    r = post(gql_gateway, OPERATOR, {"query": CREATE, "variables": {"input": DOMAIN_INPUT}})
    assert r.status == 200, r
    assert "shop.example.com" in state(pg)["custom_domains"]


def test_domains_key_manages_domains(gql_gateway, pg):
    r = post(gql_gateway, DOMAINS, {
        "query": "query D($e: String!, $p: String!, $s: String!) { domains(environmentId: $e, projectId: $p, serviceId: $s) "
                 "{ customDomains { id domain } } }",
        "variables": {"e": "env-prod", "p": "proj-1", "s": "svc-web"}})
    assert r.status == 200, r
    assert [d["id"] for d in r.json()["data"]["domains"]["customDomains"]] == ["cd-1"]
    r = post(gql_gateway, DOMAINS, {"query": "mutation { customDomainUpdate(environmentId: \"env-prod\", id: \"cd-1\", targetPort: 8443) }"})
    assert r.status == 200 and r.json()["data"]["customDomainUpdate"] is True, r
    r = post(gql_gateway, DOMAINS, {"query": "mutation { customDomainDelete(id: \"cd-1\") }"})
    assert r.status == 200, r
    assert state(pg)["custom_domains"] is None
    # Reading volumes is not a domains job.
    r = post(gql_gateway, DOMAINS, {"query": "{ volumes { id } }"})
    assert r.status == 403, r


# Issue 18, class 1: a granted root field (`project`) reaches an environment's decrypted
# variables below it. Guards match nested fields (railway.json names them by type and by
# path): the request is refused and the secrets never leave the upstream.
SECRET_QUERIES = [
    "{ project(id: \"proj-1\") { name environments { name variables } } }",
    "{ project(id: \"proj-1\") { environments { config(decryptVariables: true) } } }",
    "query Q($d: Boolean) { project(id: \"proj-1\") { ...P } } fragment P on Project { environments { ... on Environment { config(decryptVariables: $d) } } }",
]


@pytest.mark.parametrize("key", ["domains", "readonly", "operator"])
@pytest.mark.parametrize("query", SECRET_QUERIES)
def test_secrets_below_a_granted_root_never_leave_the_upstream(gql_gateway, gql_upstream, key, query):
    k = {"domains": DOMAINS, "readonly": READONLY, "operator": OPERATOR}[key]
    r = post(gql_gateway, k, {"query": query})
    assert r.status == 403, r
    assert r.json()["rule"].startswith("guards["), r
    assert "s3cret" not in r.body.decode()
    assert gql_upstream.seen() == []


def test_a_granted_root_without_secrets_still_answers(gql_gateway, gql_upstream):
    r = post(gql_gateway, DOMAINS, {"query": "{ project(id: \"proj-1\") { name environments { id name "
                                             "config(decryptVariables: false) } } }"})
    assert r.status == 200, r
    envs = r.json()["data"]["project"]["environments"]
    assert [e["id"] for e in envs] == ["env-prod", "env-staging"]
    assert all("s3cret" not in e["config"] and "*****" in e["config"] for e in envs)
    # The same query without the gateway shows what was at stake.
    assert len(gql_upstream.seen()) == 1


CLI_CORPUS = [
    ("domains", {"query": VOLUME_DELETE_TEXT, "variables": {"id": "vol-prod-1"}}),
    ("domains", {"query": CREATE, "variables": {"input": DOMAIN_INPUT}}),
    ("domains", [{"query": CREATE, "variables": {"input": DOMAIN_INPUT}}, {"query": INCIDENT}]),
    ("readonly", {"query": "{ volumes { id } }"}),
    ("operator", {"query": INCIDENT}),
    ("operator", {"query": "mutation { customDomainDelete(id: \"cd-1\") }"}),
    ("operator", {"query": "mutation { a: x } mutation { b: y }"}),
]


@pytest.mark.parametrize("who,body", CLI_CORPUS)
def test_cli_eval_matches_the_filter(gql_gateway, tmp_path, who, body):
    key = {"domains": DOMAINS, "readonly": READONLY, "operator": OPERATOR}[who]
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json", "x-request-id": "cli-agrees"}
    assert_cli_agrees(gql_gateway.port, harness.ROOT / "policies" / "railway.json", tmp_path,
                      "POST", "/graphql/v2", headers, json.dumps(body))


# Issue 18, class 2: an action that hinges on an argument. Railway documents that
# `variableCollectionUpsert` with `input.replace: true` removes every existing variable
# first; railway.json maps that case to `delete`, which the operator's grant puts behind
# a human's approval — whichever way the flag is written, and when its variable has no
# value. Without the flag the upsert is the update it looks like.
UPSERT = "mutation Up($input: VariableCollectionUpsertInput!) { variableCollectionUpsert(input: $input) }"
UPSERT_INPUT = {"environmentId": "env-prod", "projectId": "proj-1", "variables": {"NEW_FLAG": "on"}}
REPLACING = [
    ("flag in the variables", {"query": UPSERT, "variables": {"input": {**UPSERT_INPUT, "replace": True}}}),
    ("flag inline", {"query": 'mutation { variableCollectionUpsert(input: {environmentId: "env-prod", projectId: "proj-1", '
                              'variables: {NEW_FLAG: "on"}, replace: true}) }'}),
    ("flag in its own variable, given", {
        "query": "mutation Up($r: Boolean, $v: JSON!) { variableCollectionUpsert(input: {environmentId: \"env-prod\", "
                 "projectId: \"proj-1\", variables: $v, replace: $r}) }",
        "variables": {"r": True, "v": {"NEW_FLAG": "on"}}}),
    ("flag under an alias", {"query": 'mutation { setFlags: variableCollectionUpsert(input: {environmentId: "env-prod", '
                                                'projectId: "proj-1", variables: {NEW_FLAG: "on"}, replace: true}) }'}),
]


@pytest.mark.parametrize("name", [n for n, _ in REPLACING])
def test_an_upsert_that_replaces_waits_for_a_human(gql_gateway, gql_upstream, pg, name):
    body = dict(REPLACING)[name]
    before = state(pg)
    r = post(gql_gateway, OPERATOR, body)
    assert r.status == 428, r
    assert r.json()["friction"] == "approval", r
    assert state(pg) == before and "STRIPE_KEY" in state(pg)["variables"]
    assert gql_upstream.seen() == []


def test_an_upsert_whose_flag_has_no_value_waits_too(gql_gateway, gql_upstream, pg):
    before = state(pg)
    body = {"query": "mutation Up($r: Boolean, $v: JSON!) { variableCollectionUpsert(input: {environmentId: \"env-prod\", "
                     "projectId: \"proj-1\", variables: $v, replace: $r}) }", "variables": {"v": {"NEW_FLAG": "on"}}}
    r = post(gql_gateway, OPERATOR, body)
    assert r.status == 428, r
    assert state(pg) == before and gql_upstream.seen() == []


def test_an_upsert_that_merges_goes_through(gql_gateway, pg):
    r = post(gql_gateway, OPERATOR, {"query": UPSERT, "variables": {"input": {**UPSERT_INPUT, "replace": False}}})
    assert r.status == 200 and r.json()["data"]["variableCollectionUpsert"] is True, r
    assert state(pg)["variables"] == ["DATABASE_URL", "NEW_FLAG", "STRIPE_KEY"]


def test_the_replace_flag_is_real(gql_upstream, pg):
    """Straight to the server: the flag does remove every other variable."""
    body = dict(REPLACING)["flag in the variables"]
    r = http1(gql_upstream.port, "POST", "/graphql/v2",
              {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}, json.dumps(body))
    assert r.status == 200 and "errors" not in r.json(), r
    assert state(pg)["variables"] == ["NEW_FLAG"]


def test_a_restore_that_wipes_volumes_is_refused(gql_gateway, gql_upstream):
    r = post(gql_gateway, OPERATOR, {"query": 'mutation { volumeInstanceBackupRestore(volumeInstanceBackupId: "bak-1", '
                                              'volumeInstanceId: "vi-1", wipeServiceIds: ["svc-db"]) }'})
    assert r.status == 403 and r.json()["rule"] == "guards[3]", r
    assert gql_upstream.seen() == []
