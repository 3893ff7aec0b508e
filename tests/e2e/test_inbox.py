"""The approval inbox (scopegate-approver) end to end: a real Envoy challenges a destructive
request, the agent posts the 428 to the inbox with its own key, a person signs in and
approves or denies it in headless Chromium, the agent's poll returns the tokens, and the
retry through Envoy deletes the row in PostgreSQL — once. Also: two approvers, expiry, an
altered challenge, another agent's key, markup in what the agent sent, the webhook, and
the same flow with the inbox's state in PostgreSQL instead of SQLite."""

import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

import harness
from agree import CLI
from clients import http1
from conftest import UPSTREAM_TOKEN, bundle

pytestmark = pytest.mark.skipif(
    not (os.path.exists(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
         and os.path.exists(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))),
    reason="needs Debian's chromium and chromium-driver (make test installs them)")

PASSWORDS = {"alice": "alice-correct-horse", "bob": "bob-battery-staple"}
SCREENSHOT = harness.ROOT / "target" / "inbox-detail.png"


class Webhook:
    """Receives the inbox's webhook posts (Slack-compatible JSON)."""

    def __init__(self):
        self.messages = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length", 0))
                outer.messages.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self):
        self.server.shutdown()


def cli(*args):
    out = subprocess.run([CLI, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def inbox_bundle(keys, d, inbox_url, ttl):
    approvers = [json.loads(cli("approver", "new", "--name", n, "--out", str(d / f"{n}.key")))
                 for n in ("alice", "bob")]
    gateway = cli("approver", "gateway", "--out", str(d / "gateway.key")).strip()
    b = {**bundle(keys), "approvals": {"approvers": approvers, "challenge_key": gateway,
                                       "challenge_ttl": ttl, "inbox_url": inbox_url}}
    b["services"] = b["services"] + [{"name": "rentals-sql", "protocol": "sql", "match": {"path_prefix": "/sql"},
                                      "sql": {"dialect": "postgres", "statement": {"json_pointer": "/sql"}}}]
    support = next(r for r in b["roles"] if r["name"] == "support")
    support["allow"] = support["allow"] + [
        {"service": "rentals", "resources": ["vehicles"], "actions": ["delete"], "friction": "approval",
         "approvals": 2},
        {"service": "rentals-sql", "resources": ["public.*"], "actions": ["read", "update"], "friction": "approval"}]
    (d / "bundle.json").write_text(json.dumps(b))
    return b


class Setup:
    def __init__(self, gw, inbox, d, hook):
        self.gw, self.inbox, self.d, self.hook = gw, inbox, d, hook


def start(tmp_path_factory, upstream, keys, db=None, ttl="45s"):
    d = tmp_path_factory.mktemp("inbox")
    hook = Webhook()
    inbox = harness.Inbox(db=db, webhook=hook.url)
    b = inbox_bundle(keys, d, inbox.url, ttl)
    for name, pw in PASSWORDS.items():
        inbox.add_account(d / "bundle.json", name, pw)
    inbox.start(d / "bundle.json", {n: d / f"{n}.key" for n in PASSWORDS})
    gw = harness.Envoy(b, upstream.port, approval_key=None,
                       env={"RENTALS_UPSTREAM_TOKEN": UPSTREAM_TOKEN,
                            "SCOPEGATE_CHALLENGE_KEY": (d / "gateway.key").read_text().strip()}).start()
    return Setup(gw, inbox, d, hook)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, upstream, keys):
    s = start(tmp_path_factory, upstream, keys)
    yield s
    s.gw.stop()
    s.inbox.stop()
    s.hook.stop()


@pytest.fixture(scope="module")
def browser():
    d = harness.chromium()
    yield d
    d.quit()


agent = harness.inbox_call


def challenged(s, keys, method, path, body=None, headers=None):
    r = http1(s.gw.port, method, path, {"authorization": f"Bearer {keys.support}", **(headers or {})}, body)
    assert r.status == 428, r
    c = r.json()
    digest = c["challenge"].removeprefix("sha256:")
    assert c["approval_url"] == f"{s.inbox.url}/c/{digest}"
    assert c["inbox"] == f"{s.inbox.url}/v1/challenges"
    assert "POST this whole answer to `inbox`" in c["hint"]
    return c, digest


def sign_in(driver, inbox, name):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.delete_all_cookies()
    driver.get(inbox.url + "/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "span.who"))


def decide_in_browser(driver, url, verdict, comment):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    driver.find_element(By.ID, "comment").send_keys(comment)
    driver.find_element(By.ID, verdict).click()
    WebDriverWait(driver, 10).until(lambda d: not d.find_elements(By.ID, verdict))
    assert driver.find_elements(By.ID, "state"), driver.page_source[:3000]


def unreferenced_vehicle(pg):
    """A vehicle no reservation references (every seeded one is): added for the test."""
    pg.execute("INSERT INTO vehicles VALUES ('v-spare', 'Spare') ON CONFLICT DO NOTHING")
    return "v-spare"


def rows(pg, table):
    return [r[0] for r in pg.execute(f"SELECT id FROM {table} ORDER BY id")]


def test_a_person_approves_in_the_browser_and_the_row_goes_once(setup, browser, pg, keys):
    from selenium.webdriver.common.by import By
    s = setup
    path = "/rest/reservations?id=eq.r-2"
    c, digest = challenged(s, keys, "DELETE", path)
    status, v = agent(s.inbox, "POST", "/v1/challenges", keys.support, c)
    assert status == 201 and v["state"] == "pending", v
    # The webhook announced it, with a link to the page.
    harness.wait_for(lambda: s.hook.messages, 10, "webhook")
    assert any(c["approval_url"] in m["text"] and "delete on rentals" in m["text"]
               for m in s.hook.messages), s.hook.messages

    sign_in(browser, s.inbox, "alice")
    # Pending list, newest first, with a countdown.
    pending = browser.find_element(By.ID, "pending").text
    assert "agent-support" in pending and "reservations" in pending
    assert re.search(r"expires in (\d+m )?\d+s", pending), pending
    browser.get(c["approval_url"])
    page = browser.find_element(By.TAG_NAME, "main").text
    for shown in ("agent-support", "support", "production", "DELETE /rest/reservations?id=eq.r-2",
                  "roles[1].allow[1]", "Blast radius", "0 of 1 approvals"):
        assert shown in page, shown
    ops = browser.find_element(By.ID, "operations").text
    assert "delete" in ops and "reservations" in ops
    SCREENSHOT.parent.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height + 300, 800), 4000))
    browser.save_screenshot(str(SCREENSHOT))
    browser.set_window_size(1280, 1400)
    if os.environ.get("SCOPEGATE_DOCS_SCREENSHOT"):
        shutil.copy(SCREENSHOT, os.environ["SCOPEGATE_DOCS_SCREENSHOT"])

    # Before anyone approves, the agent's poll has no tokens and the gateway still asks.
    status, v = agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)
    assert status == 200 and v["state"] == "pending" and "tokens" not in v
    decide_in_browser(browser, c["approval_url"], "approve", "ticket OPS-12")
    assert browser.find_element(By.ID, "state").text.lower() == "approved"
    assert "ticket OPS-12" in browser.find_element(By.ID, "decisions").text

    status, v = agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)
    assert status == 200 and v["state"] == "approved", v
    token = v["retry"]["value"]
    assert v["retry"]["header"] == "x-scopegate-approval" and token.startswith("v2.")
    assert "r-2" in rows(pg, "reservations")
    r = http1(s.gw.port, "DELETE", path, {"authorization": f"Bearer {keys.support}", "x-scopegate-approval": token})
    assert 200 <= r.status < 300, r
    assert "r-2" not in rows(pg, "reservations")
    pg.seed()
    r = http1(s.gw.port, "DELETE", path, {"authorization": f"Bearer {keys.support}", "x-scopegate-approval": token})
    assert r.status == 403 and "already used" in r.json()["reason"], r
    assert "r-2" in rows(pg, "reservations")
    # History: who, what, when, collected.
    browser.get(s.inbox.url + "/history")
    history = browser.find_element(By.ID, "history").text
    assert "alice approve" in history and "ticket OPS-12" in history


def test_a_denial_in_the_browser_reaches_the_agent(setup, browser, pg, keys):
    s = setup
    path = "/rest/reservations?id=eq.r-3"
    c, digest = challenged(s, keys, "DELETE", path)
    assert agent(s.inbox, "POST", "/v1/challenges", keys.support, c)[0] == 201
    sign_in(browser, s.inbox, "bob")
    decide_in_browser(browser, c["approval_url"], "deny", "not during business hours")
    status, v = agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)
    assert v["state"] == "denied" and "tokens" not in v, v
    assert v["denied_by"] == [{"approver": "bob", "comment": "not during business hours"}]
    # Posting it again does not re-open it while the challenge lives.
    status, v = agent(s.inbox, "POST", "/v1/challenges", keys.support, c)
    assert status == 200 and v["state"] == "denied"
    r = http1(s.gw.port, "DELETE", path, {"authorization": f"Bearer {keys.support}"})
    assert r.status == 428
    assert "r-3" in rows(pg, "reservations")


def test_two_approvers_in_two_browsers_sessions(setup, browser, pg, keys):
    from selenium.webdriver.common.by import By
    s = setup
    vid = unreferenced_vehicle(pg)
    path = f"/rest/vehicles?id=eq.{vid}"
    c, digest = challenged(s, keys, "DELETE", path)
    assert c["approvals"] == 2
    assert agent(s.inbox, "POST", "/v1/challenges", keys.support, c)[0] == 201
    sign_in(browser, s.inbox, "alice")
    decide_in_browser(browser, c["approval_url"], "approve", "ok")
    assert "1 of 2" in browser.find_element(By.ID, "progress").text
    status, v = agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)
    assert v["state"] == "pending" and v["approvals"]["text"] == "1 of 2", v
    # Alice cannot approve twice: no form for her any more.
    browser.get(c["approval_url"])
    assert not browser.find_elements(By.ID, "approve")
    sign_in(browser, s.inbox, "bob")
    decide_in_browser(browser, c["approval_url"], "approve", "second pair of eyes")
    status, v = agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)
    assert v["state"] == "approved" and len(v["tokens"]) == 2, v
    r = http1(s.gw.port, "DELETE", path, {"authorization": f"Bearer {keys.support}",
                                          "x-scopegate-approval": v["retry"]["value"]})
    assert 200 <= r.status < 300, r
    assert vid not in rows(pg, "vehicles")


def test_markup_in_the_statement_is_shown_as_text(setup, browser, keys):
    """The agent controls the statement, its string literals and the ids: the page shows
    them as text — no element, no script, no reordering."""
    from selenium.webdriver.common.by import By
    s = setup
    sql = ("UPDATE docs SET body = '<img src=x onerror=\"document.title=1\"><script>document.title=2</script>'"
           " WHERE id = 4 -- \u202e")
    c, digest = challenged(s, keys, "POST", "/sql", json.dumps({"sql": sql}, ensure_ascii=False).encode(),
                           {"content-type": "application/json"})
    assert agent(s.inbox, "POST", "/v1/challenges", keys.support, c)[0] == 201
    sign_in(browser, s.inbox, "alice")
    browser.get(c["approval_url"])
    title = browser.title
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
    assert browser.title == title == "scopegate · approve?"
    request = browser.find_element(By.ID, "request").text
    assert "<img src=x onerror=" in request and "\u202e" not in request and "\\u{202e}" in request
    listing = browser.find_element(By.ID, "operations").text
    assert "update" in listing and "docs" in listing


def test_the_agent_api_refuses_other_keys_altered_and_expired_challenges(setup, keys):
    s = setup
    c, digest = challenged(s, keys, "DELETE", "/rest/reservations?id=eq.r-4")
    # Without a key, with another agent's key, with an unknown one.
    assert agent(s.inbox, "POST", "/v1/challenges", "nope", c)[0] == 401
    status, v = agent(s.inbox, "POST", "/v1/challenges", keys.janitor, c)
    assert status == 403 and "agent-support" in v["error"], v
    # Altered on its way: what the approver would be shown, or the signed claims.
    altered = json.loads(json.dumps(c))
    altered["request"]["target"] = "/rest/reservations?id=eq.r-5"
    status, v = agent(s.inbox, "POST", "/v1/challenges", keys.support, altered)
    assert status == 400 and "altered" in v["error"], v
    forged = json.loads(json.dumps(c))
    head, payload, sig = c["signed"].split(".")
    forged["signed"] = f"{head}.{payload[:-2]}AA.{sig}"
    assert agent(s.inbox, "POST", "/v1/challenges", keys.support, forged)[0] == 400
    # Posted by its own key: another key cannot read it.
    assert agent(s.inbox, "POST", "/v1/challenges", keys.support, c)[0] == 201
    assert agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.janitor)[0] == 404
    assert agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)[1]["state"] == "pending"
    # The challenge lives 45 s: after it, nobody can approve and nothing is returned.
    time.sleep(max(0, c["expires_in"] + 1.5 - 0.0))
    status, v = agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)
    assert v["state"] == "expired" and "tokens" not in v, v
    status, v = agent(s.inbox, "POST", "/v1/challenges", keys.support, c)
    assert status == 400 and "expired" in v["error"], v


def test_the_inbox_keeps_its_state_in_postgresql(tmp_path_factory, upstream, pg, keys):
    pg.execute("DROP DATABASE IF EXISTS inbox")
    pg.execute("CREATE DATABASE inbox")
    s = start(tmp_path_factory, upstream, keys, db=f"postgres://postgres@127.0.0.1:{pg.port}/inbox", ttl="2m")
    try:
        vid = unreferenced_vehicle(pg)
        path = f"/rest/vehicles?id=eq.{vid}"
        c, digest = challenged(s, keys, "DELETE", path)
        assert agent(s.inbox, "POST", "/v1/challenges", keys.support, c)[0] == 201
        assert agent(s.inbox, "POST", "/v1/challenges", keys.support, c)[0] == 200
        alice, bob = harness.InboxSession(s.inbox), harness.InboxSession(s.inbox)
        alice.sign_in("alice", PASSWORDS["alice"])
        bob.sign_in("bob", PASSWORDS["bob"])
        assert alice.decide(digest, "approve")[0] == 200
        assert agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)[1]["approvals"]["text"] == "1 of 2"
        assert bob.decide(digest, "approve")[0] == 200
        status, v = agent(s.inbox, "GET", f"/v1/challenges/{digest}", keys.support)
        assert v["state"] == "approved", v
        r = http1(s.gw.port, "DELETE", path, {"authorization": f"Bearer {keys.support}",
                                              "x-scopegate-approval": v["retry"]["value"]})
        assert 200 <= r.status < 300, r
        assert vid not in rows(pg, "vehicles")
        # The state is PostgreSQL's: the decisions are rows there.
        import psycopg
        with psycopg.connect(pg.dsn.replace("dbname=postgres", "dbname=inbox"), autocommit=True) as conn:
            got = conn.execute("SELECT approver, verdict FROM decisions ORDER BY approver").fetchall()
        assert got == [("alice", "approve"), ("bob", "approve")]
        # Sign-in attempts are limited per account: five failures lock it for a while.
        mallory = harness.InboxSession(s.inbox)
        for _ in range(5):
            csrf = mallory.field(mallory.get("/login"), "csrf")
            assert mallory.post("/login", {"name": "bob", "password": "guess-guess-guess", "csrf": csrf})[0] == 401
        csrf = mallory.field(mallory.get("/login"), "csrf")
        assert mallory.post("/login", {"name": "bob", "password": PASSWORDS["bob"], "csrf": csrf})[0] == 429
        assert "guess-guess" not in s.inbox.logs() and PASSWORDS["bob"] not in s.inbox.logs()
    finally:
        s.gw.stop()
        s.inbox.stop()
        s.hook.stop()
