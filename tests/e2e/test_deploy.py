"""From a bundle to a running Envoy: `scopegate envoy` renders the whole configuration (no
template), Envoy validates it, and it enforces a three-service bundle in front of three real
upstreams (REST, GraphQL, SQL over PostgreSQL); a request reaches an upstream only for the
service scopegate decided it for. `scopegate reload` puts a new bundle in front of a running
Envoy under load: new decisions apply, nothing fails, a broken bundle is refused while the
old one keeps deciding, a revoked key stops working. Envoy can also fetch the module itself
(`--wasm-url` + `--wasm-sha256`)."""

import functools
import hashlib
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

import harness
from agree import CLI
from clients import http1

TOKENS = {"RENTALS_TOKEN": "rentals-" + harness.new_key(""), "RAILWAY_TOKEN": "railway-" + harness.new_key(""),
          "SQL_TOKEN": "sql-" + harness.new_key("")}


class Keys:
    def __init__(self):
        self.agent = harness.new_key()
        self.ops = harness.new_key()
        self.rotated = harness.new_key()


def three_services(keys, extra_keys=()):
    return {
        "bundle": "deploy", "version": 1, "environment": "production",
        "services": [
            {"name": "rentals", "protocol": "rest", "match": {"path_prefix": "/rest"}, "rest": {"style": "postgrest"},
             "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "RENTALS_TOKEN"}},
            {"name": "railway", "protocol": "graphql", "match": {"path_prefix": "/graphql/v2"},
             "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "RAILWAY_TOKEN"}},
            {"name": "warehouse", "protocol": "sql", "match": {"path_prefix": "/sql"},
             "sql": {"dialect": "postgres", "statement": {"json_pointer": "/sql"}},
             "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "SQL_TOKEN"}},
        ],
        "roles": [
            {"name": "agent", "allow": [
                {"service": "rentals", "resources": ["vehicles"], "actions": ["read"]},
                {"service": "railway", "resources": ["volumes", "customDomains"], "actions": ["read"]},
                {"service": "warehouse", "resources": ["public.vehicles"], "actions": ["read"]}]},
            {"name": "ops", "allow": [{"service": "rentals", "resources": ["*"], "actions": ["read"]}]},
        ],
        "keys": [{"id": "agent-1", "sha256": harness.sha256_hex(keys.agent), "role": "agent"},
                 {"id": "ops-1", "sha256": harness.sha256_hex(keys.ops), "role": "ops"}, *extra_keys],
    }


@pytest.fixture(scope="module")
def deploy_keys():
    return Keys()


@pytest.fixture(scope="module")
def upstreams(pg):
    ups = {"rentals": harness.Upstream(pg.dsn, TOKENS["RENTALS_TOKEN"]).start(),
           "railway": harness.Upstream(pg.dsn, TOKENS["RAILWAY_TOKEN"], script="graphql_api.py").start(),
           "warehouse": harness.Upstream(pg.dsn, TOKENS["SQL_TOKEN"], script="sql_api.py").start()}
    yield ups
    for u in ups.values():
        u.stop()


def upstream_args(ups):
    return [a for name, u in ups.items() for a in ("--upstream", f"{name}=127.0.0.1:{u.port}")]


def write(tmp_path, name, bundle):
    p = tmp_path / name
    p.write_text(json.dumps(bundle))
    return p


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, upstreams, deploy_keys):
    d = tmp_path_factory.mktemp("deploy")
    f = write(d, "bundle.json", three_services(deploy_keys))
    gw = harness.RenderedEnvoy(f, upstream_args(upstreams), env=TOKENS).start()
    yield gw
    gw.stop()


def auth(key):
    return {"authorization": f"Bearer {key}"}


def test_the_rendered_configuration_passes_envoys_validation(tmp_path, upstreams, deploy_keys):
    f = write(tmp_path, "bundle.json", three_services(deploy_keys))
    gw = harness.RenderedEnvoy(f, upstream_args(upstreams), env=TOKENS)
    try:
        out = subprocess.run([harness.find_binary("envoy", "ENVOY_BIN"), "--mode", "validate", "-c", str(gw.config)],
                             capture_output=True, text=True, timeout=120, env={**os.environ, **TOKENS})
        assert out.returncode == 0, out.stdout + out.stderr
        config = json.loads(gw.config.read_text())
        # The secrets the bundle reads come from Envoy's environment, never inlined.
        text = gw.config.read_text()
        assert all(v not in text for v in TOKENS.values())
        wasm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "http_filters"][0]["typed_config"]["config"]
        assert wasm["allow_on_headers_stop_iteration"] is True and wasm["failure_policy"] == "FAIL_CLOSED"
        assert wasm["vm_config"]["environment_variables"]["host_env_keys"] == [
            "RENTALS_TOKEN", "RAILWAY_TOKEN", "SQL_TOKEN"]
        assert json.loads(wasm["configuration"]["value"])["bundle"] == "deploy"
        assert "RENTALS_TOKEN, RAILWAY_TOKEN, SQL_TOKEN" in gw.render_log
    finally:
        gw.stop()


def test_every_service_needs_its_upstream_and_nothing_else(tmp_path, upstreams, deploy_keys):
    f = write(tmp_path, "bundle.json", three_services(deploy_keys))
    args = upstream_args(upstreams)
    for bad, says in ((args[:-2], "service `warehouse` has no upstream"),
                      (args + ["--upstream", "billing=127.0.0.1:1"], "no service `billing`"),
                      (args + ["--etcd", "127.0.0.1:2379"], "not etcd"),
                      (args + ["--collector", "127.0.0.1:9"], "no `audit.sink`")):
        with pytest.raises(RuntimeError, match=says):
            harness.RenderedEnvoy(f, bad)
    broken = write(tmp_path, "broken.json", {**three_services(deploy_keys), "roles": [{"name": "agent", "allow": [
        {"service": "nowhere", "resources": ["*"], "actions": ["read"]}]}]})
    with pytest.raises(RuntimeError, match="nowhere"):
        harness.RenderedEnvoy(broken, args)


def test_three_services_enforced_in_front_of_three_upstreams(rendered, upstreams, deploy_keys, pg):
    for u in upstreams.values():
        u.reset()
    k = deploy_keys.agent
    r = http1(rendered.port, "GET", "/rest/vehicles", auth(k))
    assert r.status == 200 and "Model 3" in r.body.decode(), r
    r = http1(rendered.port, "POST", "/graphql/v2", {**auth(k), "content-type": "application/json"},
              json.dumps({"query": "{ volumes { id } }"}).encode())
    assert r.status == 200 and "vol-prod-1" in r.body.decode(), r
    r = http1(rendered.port, "POST", "/sql", {**auth(k), "content-type": "application/json"},
              json.dumps({"sql": "SELECT id FROM vehicles"}).encode())
    assert r.status == 200 and "v-1" in r.body.decode(), r
    # Refused by scopegate: nothing reaches any upstream.
    before = {n: len(u.seen()) for n, u in upstreams.items()}
    for method, path, body in (("GET", "/rest/payments", None),
                               ("POST", "/graphql/v2", {"query": "mutation { volumeDelete(volumeId: \"vol-prod-1\") }"}),
                               ("POST", "/sql", {"sql": "DELETE FROM vehicles"})):
        r = http1(rendered.port, method, path, {**auth(k), "content-type": "application/json"},
                  json.dumps(body).encode() if body else None)
        assert r.status == 403, r
    assert {n: len(u.seen()) for n, u in upstreams.items()} == before
    # Each upstream saw its own credential, never the agent's key.
    for name, u in upstreams.items():
        for s in u.seen():
            h = dict(s["headers"])
            assert h.get("authorization") == f"Bearer {TOKENS[{'rentals': 'RENTALS_TOKEN', 'railway': 'RAILWAY_TOKEN', 'warehouse': 'SQL_TOKEN'}[name]]}"
            assert h.get("x-scopegate-service") == name
    assert pg.execute("SELECT count(*) FROM vehicles")[0][0] == 3


def test_a_request_reaches_only_the_upstream_it_was_decided_for(rendered, upstreams, deploy_keys):
    """Routes follow scopegate's decision (x-scopegate-service, set by the filter): an agent
    that names another service in that header, or a path no service matches, reaches
    nothing else; every forwarded request's upstream cluster is the decided service's."""
    k = deploy_keys.ops
    for u in upstreams.values():
        u.reset()
    r = http1(rendered.port, "GET", "/rest/vehicles", {**auth(k), "x-scopegate-service": "warehouse"})
    assert r.status == 200, r
    assert len(upstreams["rentals"].seen()) == 1 and not upstreams["warehouse"].seen()
    assert upstreams["rentals"].seen()[0]["headers"] and \
        dict(upstreams["rentals"].seen()[0]["headers"])["x-scopegate-service"] == "rentals"
    r = http1(rendered.port, "GET", "/elsewhere/vehicles", auth(k))
    assert r.status in (403, 404), r
    time.sleep(0.3)
    forwarded = [x for x in rendered.access_log() if x.get("upstream_cluster") not in (None, "-", "")]
    assert forwarded, rendered.access_log()
    for x in forwarded:
        assert x["upstream_cluster"] == f"scopegate-service-{x['scopegate']['service']}", x


def test_a_bundle_reloads_under_load_without_a_restart(tmp_path, upstreams, deploy_keys):
    rotated = {"id": "agent-2", "sha256": harness.sha256_hex(deploy_keys.rotated), "role": "agent"}
    v1 = write(tmp_path, "v1.json", three_services(deploy_keys))
    gw = harness.RenderedEnvoy(v1, upstream_args(upstreams), env=TOKENS, reload=True).start()
    try:
        assert (gw.reload_dir / "scopegate-filter.json").exists()
        results, stop = [], threading.Event()

        def load(key_name):
            while not stop.is_set():
                key = getattr(deploy_keys, key_name)
                try:
                    r = http1(gw.port, "GET", "/rest/vehicles", auth(key))
                    results.append((time.monotonic(), key_name, r.status))
                except Exception as e:  # noqa: BLE001 - a failed request is what this test looks for
                    results.append((time.monotonic(), key_name, repr(e)))

        threads = [threading.Thread(target=load, args=(n,)) for n in ("agent", "ops", "rotated")]
        for t in threads:
            t.start()
        time.sleep(1.0)
        # Rotation: agent-1 is revoked, agent-2 (a new key) added — one bundle update.
        bundle = three_services(deploy_keys, extra_keys=[rotated])
        bundle["keys"] = [k for k in bundle["keys"] if k["id"] != "agent-1"]
        bundle["bundle"] = "deploy-v2"
        t_reload = time.monotonic()
        code, err = gw.reload(write(tmp_path, "v2.json", bundle))
        assert code == 0 and "applied it" in err, err
        harness.wait_for(lambda: gw.stat("extension_config_discovery.http_filter.scopegate.update_success") >= 2,
                         10, "the new bundle applied")
        # Workers take the new configuration for new streams a moment after the main thread
        # counts it: requests started in that moment are decided by either bundle, never
        # by neither.
        t_applied = time.monotonic() + 0.5
        time.sleep(1.5)
        # A bundle that does not compile: `scopegate reload` refuses it ...
        broken = {**bundle, "roles": [{"name": "agent", "allow": [{"service": "nowhere", "resources": ["*"],
                                                                   "actions": ["read"]}]}]}
        code, err = gw.reload(write(tmp_path, "broken.json", broken))
        assert code != 0 and "nowhere" in err
        # ... and so is one that changes what the rendered configuration was made for.
        renamed = {**bundle, "services": [{**bundle["services"][0], "name": "rentals2"}, *bundle["services"][1:]],
                   "roles": [{"name": n, "allow": [{"service": "rentals2", "resources": ["*"], "actions": ["read"]}]}
                             for n in ("agent", "ops")]}
        code, err = gw.reload(write(tmp_path, "renamed.json", renamed))
        assert code != 0 and "render it again" in err, err
        # ... and one written past it (a secret this VM lacks) is refused by Envoy: the old
        # bundle keeps deciding.
        doc = json.loads((gw.reload_dir / "scopegate-filter.json").read_text())
        lacking = {**bundle, "bundle": "deploy-v3", "services": [
            {**bundle["services"][0], "upstream_auth": {"header": "authorization", "env": "NOT_GIVEN_TO_THE_VM"}},
            *bundle["services"][1:]]}
        doc["resources"][0]["typed_config"]["config"]["configuration"]["value"] = json.dumps(lacking)
        tmp = gw.reload_dir / ".by-hand"
        tmp.write_text(json.dumps(doc))
        os.rename(tmp, gw.reload_dir / "scopegate-filter.json")
        harness.wait_for(lambda: gw.stat("extension_config_discovery.http_filter.scopegate.update_rejected") >= 1,
                         10, "the broken bundle refused")
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(timeout=20)
    finally:
        gw.stop()
    failed = [r for r in results if not isinstance(r[2], int) or r[2] >= 500]
    assert not failed, failed[:5]
    assert len(results) > 100, len(results)
    by = lambda name, when: [s for t, n, s in results if n == name and when(t)]  # noqa: E731
    # Before the update: agent-1 and ops in, the new key unknown.
    assert set(by("agent", lambda t: t < t_reload)) == {200}
    assert set(by("rotated", lambda t: t < t_reload)) == {401}
    # After it applied (the broken ones included): agent-1 revoked, agent-2 in, ops as before.
    assert set(by("agent", lambda t: t > t_applied)) == {401}
    assert set(by("rotated", lambda t: t > t_applied)) == {200}
    assert set(by("ops", lambda t: True)) == {200}


class ModuleServer:
    def __init__(self, directory):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *a: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def stop(self):
        self.server.shutdown()


def test_envoy_fetches_the_module_itself_and_checks_its_digest(tmp_path, upstreams, deploy_keys):
    f = write(tmp_path, "bundle.json", three_services(deploy_keys))
    srv = ModuleServer(harness.WASM.parent)
    url = f"http://127.0.0.1:{srv.port}/{harness.WASM.name}"
    sha = hashlib.sha256(harness.WASM.read_bytes()).hexdigest()
    try:
        gw = harness.RenderedEnvoy(f, upstream_args(upstreams) + ["--wasm-url", url, "--wasm-sha256", sha],
                                   env=TOKENS).start()
        try:
            r = http1(gw.port, "GET", "/rest/vehicles", auth(deploy_keys.agent))
            assert r.status == 200, r
            r = http1(gw.port, "GET", "/rest/payments", auth(deploy_keys.agent))
            assert r.status == 403, r
        finally:
            gw.stop()
        # Another file than the digest says: Envoy keeps refusing it (retrying the fetch),
        # is never ready, and its listener takes nothing.
        wrong = harness.RenderedEnvoy(f, upstream_args(upstreams) + ["--wasm-url", url, "--wasm-sha256", "0" * 64],
                                      env=TOKENS)
        try:
            wrong.start(wait=False)
            answered = []
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                try:
                    answered.append(http1(wrong.port, "GET", "/rest/vehicles", auth(deploy_keys.agent)).status)
                except OSError:
                    pass
                time.sleep(0.2)
            assert 200 not in answered, answered
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://127.0.0.1:{wrong.admin_port}/ready", timeout=2)
        finally:
            wrong.stop()
    finally:
        srv.stop()


def test_without_the_pause_flag_the_log_names_it_and_nothing_hangs(upstream, keys, pg):
    """Envoy >= 1.35 hands a filter the body of a request it held in the headers callback
    only with `allow_on_headers_stop_iteration: true`. Without it, the request would hang
    until the client gives up; scopegate notices (body bytes arrived, no body callback),
    answers 500, and says at error level which setting is missing."""
    from conftest import UPSTREAM_TOKEN, bundle
    gw = harness.Envoy(bundle(keys), upstream.port, env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN})
    text = gw.config.read_text()
    assert "allow_on_headers_stop_iteration: true" in text
    gw.config.write_text(text.replace("allow_on_headers_stop_iteration: true", "allow_on_headers_stop_iteration: false"))
    gw.start()
    try:
        upstream.reset()
        t0 = time.monotonic()
        r = http1(gw.port, "PATCH", "/rest/reservations?tenant_id=eq.acme&id=eq.r-1",
                  {**auth(keys.support), "content-type": "application/json"}, b'{"customer": "Ada L."}')
        took = time.monotonic() - t0
        assert r.status == 500 and "allow_on_headers_stop_iteration" in r.json()["reason"], r
        assert took < 5, took
        assert not upstream.seen()
        assert pg.execute("SELECT customer FROM reservations WHERE id = 'r-1'")[0][0] == "Ada"
        harness.wait_for(lambda: "allow_on_headers_stop_iteration" in gw.log(), 5, "the log line")
        lines = [line for line in gw.log().splitlines() if "allow_on_headers_stop_iteration" in line]
        assert any("[error]" in line for line in lines), lines
        # A request without a body is not held for one: it works.
        assert http1(gw.port, "GET", "/rest/vehicles", auth(keys.reader)).status == 200
    finally:
        gw.stop()


def test_approvers_rotate_with_a_bundle_reload(tmp_path, upstreams, deploy_keys, pg):
    """Approval keys are bundle entries: removing an approver revokes the tokens they sign
    from the next request on; a new approver's signature works after the same reload."""
    d = tmp_path
    cli = lambda *a: subprocess.run([CLI, *a], capture_output=True, text=True, timeout=60)  # noqa: E731
    approvers = {}
    for name in ("alice", "carol"):
        out = cli("approver", "new", "--name", name, "--out", str(d / f"{name}.key"))
        assert out.returncode == 0, out.stderr
        approvers[name] = json.loads(out.stdout)
    gateway_key = cli("approver", "gateway", "--out", str(d / "gateway.key")).stdout.strip()

    def bundle(names):
        b = three_services(deploy_keys)
        b["approvals"] = {"challenge_key": gateway_key, "approvers": [approvers[n] for n in names]}
        b["roles"][1]["allow"].append({"service": "rentals", "resources": ["reservations"], "actions": ["delete"],
                                       "friction": "approval"})
        return b

    env = {**TOKENS, "SCOPEGATE_CHALLENGE_KEY": (d / "gateway.key").read_text().strip()}
    gw = harness.RenderedEnvoy(write(d, "v1.json", bundle(["alice"])), upstream_args(upstreams), env=env,
                               reload=True).start()
    try:
        def approve(path, name, bundle_file):
            r = http1(gw.port, "DELETE", path, auth(deploy_keys.ops))
            assert r.status == 428, r
            out = subprocess.run([CLI, "approve", "--challenge", "-", "--bundle", str(bundle_file), "--approver", name,
                                  "--key-file", str(d / f"{name}.key"), "--yes"],
                                 input=r.body.decode(), capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return out.stdout.strip()

        token = approve("/rest/reservations?id=eq.r-2", "alice", d / "v1.json")
        # Alice leaves, Carol joins: one reload.
        code, err = gw.reload(write(d, "v2.json", bundle(["carol"])))
        assert code == 0, err
        harness.wait_for(lambda: gw.stat("extension_config_discovery.http_filter.scopegate.update_success") >= 2,
                         10, "the new bundle applied")
        time.sleep(0.5)
        r = http1(gw.port, "DELETE", "/rest/reservations?id=eq.r-2", {**auth(deploy_keys.ops),
                                                                      "x-scopegate-approval": token})
        assert r.status == 403 and "not an approver" in r.json()["reason"], r
        assert pg.execute("SELECT count(*) FROM reservations WHERE id = 'r-2'")[0][0] == 1
        token = approve("/rest/reservations?id=eq.r-2", "carol", d / "v2.json")
        r = http1(gw.port, "DELETE", "/rest/reservations?id=eq.r-2", {**auth(deploy_keys.ops),
                                                                      "x-scopegate-approval": token})
        assert 200 <= r.status < 300, r
        assert pg.execute("SELECT count(*) FROM reservations WHERE id = 'r-2'")[0][0] == 0
    finally:
        gw.stop()
