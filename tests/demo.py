"""`make demo`: scopegate in a real Envoy. First the incident it is built around, replayed:
a Railway-like GraphQL API over a real PostgreSQL, behind policies/railway.json; the custom
domains key sends `volumeDelete` and is refused, in disguise too, and the volume and its
backups are still there. Then a real REST API with policies/demo.json: a scoped key allowed
on one table and denied on another, the other decisions, and the audit trail.

    .venv/bin/python tests/demo.py          # run the walkthrough and stop everything
    .venv/bin/python tests/demo.py --keep   # leave it running for your own curl calls
"""

import json
import subprocess
import tempfile
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))

import harness  # noqa: E402
from clients import http1  # noqa: E402

ROOT = harness.ROOT
BOLD, DIM, GREEN, RED, YELLOW, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[33m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = RED = YELLOW = RESET = ""


# Demo-only passwords for the demo approvers' inbox accounts.
DEMO_PASSWORDS = {"alice": "alice-demo-password", "bob": "bob-demo-password"}


def say(text):
    print(f"\n{BOLD}{text}{RESET}", flush=True)


def show_with(port, method, path, key, extra):
    return show(port, method, path, key, extra=extra)


def show(port, method, path, key=None, header="authorization", body=None, content_type=None, extra=None):
    headers = {}
    if key:
        headers[header] = f"Bearer {key}" if header == "authorization" else key
    if content_type:
        headers["content-type"] = content_type
    headers.update(extra or {})
    shown = " ".join(f"-H '{k}: {v[:18]}{'…' if len(v) > 18 else ''}'" for k, v in headers.items())
    data = f" -d '{body[:160]}{'…' if len(body) > 160 else ''}'" if body else ""
    print(f"{DIM}$ curl -X {method} {shown}{data} 'http://127.0.0.1:{port}{path}'{RESET}")
    r = http1(port, method, path, headers, body)
    colour = GREEN if r.status < 300 else YELLOW if r.status == 428 else RED
    try:
        payload = r.json()
        text = json.dumps(payload if r.status < 300 else {k: payload.get(k) for k in ("decision", "reason", "rule", "operations", "challenge") if payload.get(k) is not None})
    except ValueError:
        text = r.body[:200].decode(errors="replace")
    print(f"{colour}{r.status}{RESET} {text[:400]}")
    return r


def main():
    keep = "--keep" in sys.argv
    keys = harness.demo_keys("demo")
    token = "upstream-" + secrets.token_urlsafe(16)
    bundle = (ROOT / "policies" / "demo.json").read_text()
    procs = []
    try:
        say("1. PostgreSQL 15 on a loopback port, seeded with reservations, vehicles, payments")
        pg = harness.Postgres().start()
        procs.append(pg)
        print(f"   {pg.dsn}")

        say("2. A Railway-like GraphQL API over it (volumes and their backups, custom domains), "
            "behind Envoy + scopegate with policies/railway.json")
        railway_token = "railway-" + secrets.token_urlsafe(16)
        gql = harness.Upstream(pg.dsn, railway_token, script="graphql_api.py").start()
        procs.append(gql)
        rgw = harness.Envoy((ROOT / "policies" / "railway.json").read_text(), gql.port,
                            env={"RAILWAY_TOKEN": railway_token}).start()
        procs.append(rgw)
        print(f"   API {gql.url}   gateway {rgw.url}/graphql/v2")
        volumes = "SELECT v.id, count(b.id) AS backups FROM railway.volumes v " \
                  "LEFT JOIN railway.volume_backups b ON b.volume_id = v.id GROUP BY v.id ORDER BY v.id"
        print(f"   PostgreSQL: volumes and their backups {pg.execute(volumes)}")

        domains = harness.demo_keys("railway")["railway-domains"]
        incident = "mutation VolumeDelete($id: String!) {\n  volumeDelete(volumeId: $id)\n}\n"
        say("3. THE INCIDENT, REPLAYED: the custom-domains key sends the one mutation that deleted a "
            "production database and its backups")
        show(rgw.port, "POST", "/graphql/v2", domains, content_type="application/json",
             body=json.dumps({"query": incident, "variables": {"id": "vol-prod-1"}, "operationName": "VolumeDelete"}))
        say("   …in disguise: an alias, a fragment, a batch behind an allowed operation")
        for disguise in [
            {"query": "mutation { customDomainCreate: volumeDelete(volumeId: \"vol-prod-1\") }"},
            {"query": "mutation { ...D } fragment D on Mutation { volumeDelete(volumeId: \"vol-prod-1\") }"},
            [{"query": "query { domains(environmentId: \"env-prod\", projectId: \"proj-1\", serviceId: \"svc-web\") "
                       "{ customDomains { domain } } }"},
             {"query": incident, "variables": {"id": "vol-prod-1"}}],
        ]:
            show(rgw.port, "POST", "/graphql/v2", domains, content_type="application/json", body=json.dumps(disguise))
        print(f"   PostgreSQL: volumes and their backups {pg.execute(volumes)} — still there; "
              f"requests that reached the API: {len(gql.seen())}")
        say("   The same key does what it was made for")
        show(rgw.port, "POST", "/graphql/v2", domains, content_type="application/json", body=json.dumps({
            "query": "mutation C($input: CustomDomainCreateInput!) { customDomainCreate(input: $input) { id domain } }",
            "variables": {"input": {"domain": "shop.example.com", "environmentId": "env-prod", "serviceId": "svc-web"}}}))

        say("4. The REST API over the same PostgreSQL (PostgREST style at /rest, DreamFactory style at "
            "/api/v2/rentals), behind Envoy + scopegate with policies/demo.json")
        up = harness.Upstream(pg.dsn, token).start()
        procs.append(up)
        print(f"   {up.url} — it trusts only the upstream token, which agents never see")
        # The approval inbox the bundle names (approvals.inbox_url): it signs for the demo
        # approvers alice and bob, whose (public, demo-only) keys are in policies/approvers.keys.
        inbox = harness.Inbox()
        b = json.loads(bundle)
        b["approvals"]["inbox_url"] = inbox.url
        bundle = json.dumps(b)
        (inbox.dir / "bundle.json").write_text(bundle)
        for name in ("alice", "bob"):
            (inbox.dir / f"{name}.key").write_text(harness.demo_approvers()[name])
            inbox.add_account(inbox.dir / "bundle.json", name, DEMO_PASSWORDS[name])
        inbox.start(inbox.dir / "bundle.json", {n: inbox.dir / f"{n}.key" for n in ("alice", "bob")})
        procs.append(inbox)
        print(f"   approval inbox (scopegate-approver): {inbox.url}")
        gw = harness.Envoy(bundle, up.port, env={"RENTALS_UPSTREAM_TOKEN": token}).start()
        procs.append(gw)
        print(f"   Envoy {harness.find_binary('envoy', 'ENVOY_BIN')}: gateway {gw.url}   "
              f"admin http://127.0.0.1:{gw.admin_port}   config {gw.config}")

        reader, support = keys["demo-reader"], keys["demo-support"]
        say("5. The reader key reads the table it was granted…")
        show(gw.port, "GET", "/rest/reservations?select=id,customer&tenant_id=eq.acme", reader)
        show(gw.port, "GET", "/api/v2/rentals/_table/vehicles?ids=v-1,v-2", reader, header="x-api-key")
        say("   …and is denied on a table it was not granted")
        show(gw.port, "GET", "/rest/payments", reader)

        say("6. A destructive request the role does not cover: 403, and the row is still there")
        show(gw.port, "DELETE", "/rest/reservations?id=eq.r-17", reader)
        print(f"   PostgreSQL: {pg.execute('SELECT id, customer FROM reservations WHERE id = %s', ('r-17',))}")

        say("7. The support key may edit acme's reservations only (proven by the filter)")
        show(gw.port, "PATCH", "/rest/reservations?tenant_id=eq.acme&id=eq.r-1", support, body='{"customer": "Ada L."}')
        show(gw.port, "PATCH", "/rest/reservations?id=eq.r-3", support, body='{"customer": "Mallory"}')

        say("8. A DELETE without a filter touches every row (scope all): denied without `unbounded`")
        show(gw.port, "DELETE", "/rest/reservations", support)
        say("   A single-row DELETE is covered, but owes a human's approval: 428 challenge")
        r = show(gw.port, "DELETE", "/rest/reservations?id=eq.r-17", support)
        print(f"   PostgreSQL: {pg.execute('SELECT count(*) FROM reservations')[0][0]} reservations, none deleted")
        say("   A human approves exactly that request, signing with her own key (the gateway holds none that can):")
        cli = harness.ROOT / "target" / "release" / "scopegate"
        print(f"{DIM}$ scopegate approve --challenge challenge.json --bundle policies/demo.json "
              f"--approver alice --key-file alice.key{RESET}")
        with tempfile.NamedTemporaryFile("w", suffix=".key") as key_file:
            key_file.write(harness.demo_approvers()["alice"])
            key_file.flush()
            out = subprocess.run([str(cli), "approve", "--challenge", "-", "--bundle",
                                  str(harness.ROOT / "policies" / "demo.json"), "--approver", "alice",
                                  "--key-file", key_file.name, "--yes"],
                                 input=r.body.decode(), capture_output=True, text=True)
        print("\n".join("   " + line for line in out.stderr.splitlines()))
        approval = out.stdout.strip()
        print(f"   token: {approval[:40]}…")
        say("   The agent retries the identical request with the token: deleted, and the approver is audited")
        show_with(gw.port, "DELETE", "/rest/reservations?id=eq.r-17", support, {"x-scopegate-approval": approval})
        print(f"   PostgreSQL: r-17 present: {bool(pg.execute('SELECT 1 FROM reservations WHERE id = %s', ('r-17',)))}")
        say("   The same token again (a replay), or on another row: 403")
        show_with(gw.port, "DELETE", "/rest/reservations?id=eq.r-17", support, {"x-scopegate-approval": approval})
        show_with(gw.port, "DELETE", "/rest/reservations?id=eq.r-1", support, {"x-scopegate-approval": approval})

        say("   Or through the approval inbox: the 428 names it; the agent posts the challenge with its own key")
        r = show(gw.port, "DELETE", "/rest/reservations?id=eq.r-3", support)
        c = r.json()
        print(f"   approval_url: {c.get('approval_url')}")
        status, v = harness.inbox_call(inbox, "POST", "/v1/challenges", support, c)
        print(f"{DIM}$ curl -X POST -H 'authorization: Bearer …' -d @challenge.json {c.get('inbox')}{RESET}")
        print(f"   {status} {json.dumps(v)}")
        say("   bob signs in to the inbox, reads what the request does, and approves it "
            "(scripted here; with --keep, do it in your browser)")
        person = harness.InboxSession(inbox)
        person.sign_in("bob", DEMO_PASSWORDS["bob"])
        digest = c["challenge"].removeprefix("sha256:")
        person.decide(digest, "approve", "demo")
        status, v = harness.inbox_call(inbox, "GET", f"/v1/challenges/{digest}", support)
        print(f"{DIM}$ curl -H 'authorization: Bearer …' {inbox.url}/v1/challenges/{digest[:12]}…{RESET}")
        print(f"   {status} state={v['state']} approvals={v['approvals']['text']} tokens={len(v.get('tokens', []))}")
        show_with(gw.port, "DELETE", "/rest/reservations?id=eq.r-3", support,
                  {"x-scopegate-approval": v["retry"]["value"]})
        print(f"   PostgreSQL: r-3 present: {bool(pg.execute('SELECT 1 FROM reservations WHERE id = %s', ('r-3',)))}")

        say("9. No key, or a wrong one: 401")
        show(gw.port, "GET", "/rest/vehicles")
        show(gw.port, "GET", "/rest/vehicles", "sgk_guessed")

        say("10. What reached the upstream: only allowed requests, with the upstream token and no agent key")
        for s in up.seen():
            h = dict(s["headers"])
            cred = [n for n, v in h.items() if token in v]
            leaked = [n for n, v in h.items() if reader in v or support in v]
            print(f"   {s['method']} {s['path']}  x-scopegate-key={h.get('x-scopegate-key')} "
                  f"upstream token in: {', '.join(cred) or 'nothing'}; agent key in: {', '.join(leaked) or 'nothing'}")

        time.sleep(0.3)
        say("11. The audit trail (one JSON record per request, from Envoy's log), both gateways")
        for rec in rgw.audit_records() + gw.audit_records():
            print(f"   {rec['ts']} {rec['decision']:<15} {rec['status']} {rec['method']:<6} {rec['path']:<40} "
                  f"key={rec['key']}{' approval=' + rec['approval'] if rec.get('approval') else ''} "
                  f"{DIM}{rec['reason'][:70]}{RESET}")

        if keep:
            r = http1(gw.port, "DELETE", "/rest/reservations?id=eq.r-2", {"authorization": f"Bearer {support}"})
            c = r.json()
            harness.inbox_call(inbox, "POST", "/v1/challenges", support, c)
            digest = c["challenge"].removeprefix("sha256:")
            say(f"Approval inbox: {inbox.url}  (sign in as alice / {DEMO_PASSWORDS['alice']} "
                f"or bob / {DEMO_PASSWORDS['bob']})\n"
                f"   Waiting there (for {c['expires_in'] // 60} minutes, the challenge's life; send the DELETE again "
                f"for a new one): the support key's DELETE of reservation r-2 — {c['approval_url']}\n"
                f"   After you approve it, the agent's poll returns the token:\n"
                f"     curl -H 'authorization: Bearer {support}' {inbox.url}/v1/challenges/{digest}\n"
                f"   and the retry goes through:\n"
                f"     curl -X DELETE -H 'authorization: Bearer {support}' -H 'x-scopegate-approval: <token>' "
                f"'{gw.url}/rest/reservations?id=eq.r-2'")
            say(f"Running. Try: curl -H 'authorization: Bearer {reader}' {gw.url}/rest/vehicles\n"
                f"         or: curl -H 'authorization: Bearer {domains}' -H 'content-type: application/json' "
                f"-d '{{\"query\": \"{{ volumes {{ id }} }}\"}}' {rgw.url}/graphql/v2   (Ctrl-C stops)")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for p in reversed(procs):
            p.stop()
        say("Stopped both Envoys, both APIs, the inbox and PostgreSQL.")


if __name__ == "__main__":
    main()
