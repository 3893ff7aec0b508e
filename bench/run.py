"""`make bench`: scopegate side by side with bare Envoy, a no-op Wasm filter, Envoy's native
RBAC filter and a body-buffering Wasm filter, on one machine, in one run.

Each configuration is its own Envoy (the pinned PyPI build, `--concurrency 1`) whose upstream
is a second listener of the same Envoy answering from `direct_response` (no upstream process
to measure; the body is read, so POSTs keep their connections). Each scenario is
driven by wrk (`-t1 -c8 --latency`) for BENCH_SECONDS (default 5) seconds; configurations
are interleaved and repeated BENCH_ROUNDS (default 3) times so machine drift cancels, and the
median of the rounds is reported. Then the latency at light load (one connection, a pause
between requests: no queue) for the Wasm floors and scopegate, BENCH_LIGHT_SECONDS (default 3;
0 skips it) per run. Then fleet state: the local store against etcd (BENCH_FLEET=0 skips it).
The tables go to stdout and to bench/results.md."""

import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import harness  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
# The light-load latency phase (one connection, LIGHT_GAP_MS between requests): seconds per
# run, 0 to skip it.
LIGHT_SECONDS = int(os.environ.get("BENCH_LIGHT_SECONDS", "3"))
LIGHT_GAP_MS = 1
LIGHT_CONFIGS = ["no-op Wasm", "buffering Wasm", "host-call floor", "scopegate", "scopegate, filter_state off",
                 "scopegate lite"]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# SCOPEGATE_WASM: another build of the module (an earlier commit's, for a before/after).
SCOPEGATE = Path(os.environ.get("SCOPEGATE_WASM") or ROOT / "target" / "wasm32-wasip1" / "release" / "scopegate_filter.wasm")
NOOP = ROOT / "target" / "wasm32-wasip1" / "release" / "scopegate_bench_noop.wasm"
LITE = ROOT / "target" / "lite" / "wasm32-wasip1" / "release" / "scopegate_filter.wasm"  # make wasm-lite
KEY = "sgk_bench_key_0123456789abcdefghijklmnopqrstuv"
DENIED_KEY = "sgk_bench_denied_0123456789abcdefghijklmnopqr"

BUNDLE = {
    "bundle": "bench", "version": 1, "environment": "production",
    "services": [
        {"name": "rest", "protocol": "rest", "match": {"path_prefix": "/rest"}, "rest": {"style": "postgrest"}},
        {"name": "sql", "protocol": "sql", "match": {"path_prefix": "/sql"},
         "sql": {"dialect": "postgres", "statement": {"json_pointer": "/sql"}}},
        {"name": "gql", "protocol": "graphql", "match": {"path_prefix": "/graphql/v2"}},
        {"name": "tools", "protocol": "mcp", "match": {"path_prefix": "/mcp"}},
    ],
    "roles": [{"name": "agent", "allow": [
        {"service": "rest", "resources": ["reservations", "vehicles"], "actions": ["read"]},
        {"service": "sql", "resources": ["public.*"], "actions": ["read"]},
        {"service": "gql", "resources": ["volumeDelete"], "actions": ["delete"], "records": {"volumeId": ["vol-staging-1"]}},
        {"service": "tools", "resources": ["create_*"], "actions": ["create"]}]},
        {"name": "none", "allow": [{"service": "rest", "resources": ["nothing"], "actions": ["read"]}]}],
    "keys": [{"id": "bench", "sha256": hashlib.sha256(KEY.encode()).hexdigest(), "role": "agent"},
             {"id": "denied", "sha256": hashlib.sha256(DENIED_KEY.encode()).hexdigest(), "role": "none"}],
}

SQL_1KB = ("SELECT r.id, r.customer, r.tenant_id, v.model FROM reservations r JOIN vehicles v ON v.id = r.vehicle_id "
           "WHERE r.tenant_id = 'acme' AND r.id IN (" + ", ".join(f"'r-{i}'" for i in range(100)) + ") ORDER BY r.id LIMIT 50")
MCP_1KB = {"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {
    "name": "create_reservation",
    "arguments": {"reservation_id": "r-1001", "vehicle_id": "v-2", "customer": "Ada Lovelace", "tenant_id": "acme",
                  "notes": [f"note {i}: the customer asked for a child seat and a late return" for i in range(12)]}}}

VARY_SQL = object()  # body marker: SQL_1KB with a per-request counter (see lua())

# The bundle less its SQL service, for the module without the SQL decoder.
LITE_BUNDLE = {**BUNDLE, "services": [s for s in BUNDLE["services"] if s["protocol"] != "sql"],
               "roles": [{**r, "allow": [g for g in r["allow"] if g["service"] != "sql"]} for r in BUNDLE["roles"]]}

SCENARIOS = [
    # name, method, path, headers, body
    ("REST GET", "GET", "/rest/reservations?select=id,customer&tenant_id=eq.acme", {"authorization": f"Bearer {KEY}"}, None),
    ("SQL POST 1 KB", "POST", "/sql", {"authorization": f"Bearer {KEY}", "content-type": "application/json"},
     json.dumps({"sql": SQL_1KB})),
    ("GraphQL VolumeDelete", "POST", "/graphql/v2", {"authorization": f"Bearer {KEY}", "content-type": "application/json"},
     json.dumps({"query": "mutation VolumeDelete($id: String!) {\n  volumeDelete(volumeId: $id)\n}",
                 "variables": {"id": "vol-staging-1"}, "operationName": "VolumeDelete"})),
    # The same 1 KB statement, new to the filter every time (a counter in a trailing
    # comment): the parse cost, which the decoded-statement memo saves on repeats.
    ("SQL POST 1 KB new each time", "POST", "/sql", {"authorization": f"Bearer {KEY}", "content-type": "application/json"},
     VARY_SQL),
    ("MCP tools/call 1 KB", "POST", "/mcp", {"authorization": f"Bearer {KEY}", "content-type": "application/json"},
     json.dumps(MCP_1KB)),
    ("denied GET", "GET", "/rest/payments", {"authorization": f"Bearer {DENIED_KEY}"}, None),
]

RBAC = """
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  agents:
                    permissions:
                    - and_rules:
                        rules:
                        - url_path: { path: { prefix: "/" } }
                        - not_rule: { header: { name: ":method", string_match: { exact: "TRACE" } } }
                    - header: { name: ":path", string_match: { prefix: "/rest/" } }
                    principals:
                    - header: { name: "authorization", string_match: { prefix: "Bearer " } }
"""


def wasm_filter(path, config, vm_id):
    return f"""
          - name: {vm_id}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {vm_id}
                root_id: {vm_id}
                allow_on_headers_stop_iteration: true
                failure_policy: FAIL_CLOSED
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {json.dumps(config)}
                vm_config:
                  vm_id: {vm_id}
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local: {{ filename: {path} }}
"""


CONFIGS = {
    "bare Envoy": "",
    "no-op Wasm": wasm_filter(NOOP, "noop", "noop"),
    "native RBAC": RBAC,
    "buffering Wasm": wasm_filter(NOOP, "buffer", "buffer"),
    # Buffers, and makes the host calls scopegate makes for an allowed request without
    # deciding anything: what those calls cost, the floor of any filter that makes them.
    "host-call floor": wasm_filter(NOOP, "calls", "calls"),
    "scopegate": wasm_filter(SCOPEGATE, json.dumps(BUNDLE), "scopegate"),
    # The same bundle with `"filter_state": "off"`: no `scopegate` property for the
    # access log (one host call per request), the audit record unchanged.
    "scopegate, filter_state off": wasm_filter(SCOPEGATE, json.dumps({**BUNDLE, "filter_state": "off"}), "sg_nofs"),
    # The module without the SQL decoder (`make wasm-lite`), with the bundle less its SQL
    # service (which that module refuses): it serves every scenario but the SQL ones.
    "scopegate lite": wasm_filter(LITE, json.dumps(LITE_BUNDLE), "sg_lite"),
}


# Asked for by name only (BENCH_CONFIGS), not in the full run: the same bundle with the
# audit chain on (`"audit": {"chain": true}`: a SHA-256 of each record line).
EXTRA_CONFIGS = {
    "scopegate, audit chain": wasm_filter(SCOPEGATE, json.dumps({**BUNDLE, "audit": {"chain": True}}), "sg_chain"),
}


def serves(config, scenario):
    """Whether a configuration can run a scenario (the lite module has no SQL decoder)."""
    return not (config == "scopegate lite" and scenario[0].startswith("SQL"))


def envoy_config(filters, port, admin, upstream, clusters=""):
    return f"""
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  clusters:{clusters}
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream} }} }} }}
  listeners:
  # The upstream: a second listener of the same Envoy answering from `direct_response`
  # (it reads the request body, so keep-alive holds for POSTs).
  - name: upstream
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: upstream
          route_config:
            virtual_hosts:
            - name: direct
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  - name: bench
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    per_connection_buffer_limit_bytes: 2097152
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: AUTO
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: REJECT_REQUEST
          route_config:
            virtual_hosts:
            - name: bench
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: upstream }}
          http_filters:{filters}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


class Gateway:
    def __init__(self, name, filters, clusters=""):
        self.name = name
        self.port, self.admin, upstream = harness.free_port(), harness.free_port(), harness.free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="scopegate-bench-"))
        (self.dir / "envoy.yaml").write_text(envoy_config(filters, self.port, self.admin, upstream, clusters))

    def start(self):
        self.proc = subprocess.Popen(
            [harness.find_binary("envoy", "ENVOY_BIN"), "-c", str(self.dir / "envoy.yaml"), "--concurrency", "1",
             "--base-id", str(int(time.time() * 1000) % 50000 + 1000), "--disable-hot-restart", "-l", "warning",
             "--log-path", str(self.dir / "envoy.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import urllib.request

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: envoy exited: {(self.dir / 'envoy.log').read_text()[-2000:]}")
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                return r.status == 200
        harness.wait_for(ready, 30, f"envoy {self.name}")
        return self

    def stop(self):
        harness.stop_process(self.proc)


def lua(method, headers, body, gap_ms=0):
    lines = [f'wrk.method = "{method}"']
    if gap_ms:
        # wrk waits this long before each request and does not count it in the latency.
        lines.append(f"delay = function() return {gap_ms} end")
    for k, v in headers.items():
        lines.append(f'wrk.headers["{k}"] = "{v}"')
    if body is VARY_SQL:
        head, tail = json.dumps({"sql": SQL_1KB + " -- "})[:-2], '"}'
        lines += ["n = 0", "request = function()", "  n = n + 1",
                  f"  return wrk.format(nil, nil, nil, [==[{head}]==] .. n .. [==[{tail}]==])", "end"]
    elif body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    return "\n".join(lines) + "\n"


def cpu_seconds(pid):
    """User + system CPU of a process so far (clock ticks from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port, scenario, pid, light=False):
    """Saturating load (8 connections, back to back), or with `light` one connection and a
    pause between requests: latency without queueing, what a request costs end to end."""
    name, method, path, headers, body = scenario
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua(method, headers, body, LIGHT_GAP_MS if light else 0))
    cpu0 = cpu_seconds(pid)
    load = ["-c1", f"-d{LIGHT_SECONDS}s"] if light else ["-c8", f"-d{SECONDS}s"]
    out = subprocess.run(["wrk", "-t1", *load, "--latency", "-s", f.name,
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu0
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]
    # Envoy's CPU per request (the upstream listener is in the same process, so this is
    # the gateway's work plus a constant direct_response): steadier than req/s when wrk
    # shares the cores.
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "cpu_us": cpu / total * 1e6 if total else 0.0}


def rss_mb(pid):
    """Resident memory of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def shipped(module):
    """Whether a module is the one `make wasm` ships (optimised by tools/optimize-wasm.sh)."""
    stamp = Path(f"{module}.optimized")
    if stamp.exists() and stamp.read_text().split()[1:] == [hashlib.sha256(module.read_bytes()).hexdigest()]:
        return "as `make wasm` ships it: `wasm-opt -Oz -ocimfs 0`"
    return "not optimised by `make wasm`"


# Fleet state (`"state": {"store": "etcd"}`): what a request that needs state adds (one etcd
# transaction, a 3-member cluster on loopback), and that a request that needs none costs what
# it does with the local store. BENCH_FLEET=0 skips it.
FLEET = os.environ.get("BENCH_FLEET", "1") != "0"
SPENDER_KEY = "sgk_bench_spender_0123456789abcdefghijklmnop"
FLEET_BUNDLE = {
    **BUNDLE,
    "roles": BUNDLE["roles"] + [{"name": "spender", "budget": {"destructive": 1_000_000_000, "per": "1h"},
                                 "allow": [{"service": "rest", "resources": ["scratch"], "actions": ["delete"]}]}],
    "keys": BUNDLE["keys"] + [{"id": "spender", "sha256": hashlib.sha256(SPENDER_KEY.encode()).hexdigest(),
                               "role": "spender"}],
}
FLEET_SCENARIOS = [
    ("REST GET (needs no state)",) + SCENARIOS[0][1:],
    # A destructive request with a budget: one transaction per request (no approval token
    # is needed to measure it: a budget is the same transaction with a compare-and-set).
    ("budgeted DELETE (one transaction)", "DELETE", "/rest/scratch?id=eq.s-1",
     {"authorization": f"Bearer {SPENDER_KEY}"}, None),
]


def etcd_cluster(ports):
    endpoints = "\n".join(f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}"
                          for p in ports)
    return f"""
  - name: etcd
    type: STATIC
    connect_timeout: 0.5s
    health_checks:
    - {{ timeout: 0.5s, interval: 1s, no_traffic_interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1,
        http_health_check: {{ path: /health }} }}
    load_assignment:
      cluster_name: etcd
      endpoints:
      - lb_endpoints:
{endpoints}"""


def fleet_bench():
    """Light-load latency and saturating throughput, local store vs etcd, interleaved."""
    etcd = harness.Etcd(3).start()
    state = {"store": "etcd", "cluster": "etcd", "prefix": "bench/", "timeout_ms": 1000}
    gateways = {
        "local store": Gateway("local", wasm_filter(SCOPEGATE, json.dumps({**FLEET_BUNDLE, "state": {"store": "local"}}),
                                                    "sg_local")).start(),
        "etcd store": Gateway("etcd", wasm_filter(SCOPEGATE, json.dumps({**FLEET_BUNDLE, "state": state}), "sg_etcd"),
                              etcd_cluster(etcd.client_ports)).start(),
    }
    light = {(c, s[0]): [] for c in gateways for s in FLEET_SCENARIOS}
    heavy = {(c, s[0]): [] for c in gateways for s in FLEET_SCENARIOS}
    try:
        time.sleep(2)  # the health checks find every member
        for r in range(ROUNDS):
            for s in FLEET_SCENARIOS:
                for c, gw in gateways.items():
                    res = wrk(gw.port, s, gw.proc.pid, light=True)
                    light[(c, s[0])].append(res)
                    res2 = wrk(gw.port, s, gw.proc.pid)
                    heavy[(c, s[0])].append(res2)
                    print(f"fleet {r + 1} {s[0]:<34} {c:<12} light p50 {fmt_us(res['p50']):>9} p99 {fmt_us(res['p99']):>9}"
                          f"  loaded {res2['rps']:>7.0f} req/s non-2xx {res2['non2xx']}", flush=True)
    finally:
        for gw in gateways.values():
            gw.stop()
        etcd.stop()

    def med(runs, c, s, k):
        return statistics.median(x[k] for x in runs[(c, s)])
    lines = ["", "Fleet state: the same bundle with `\"state\": {\"store\": \"local\"}` and with etcd (3 members on "
             f"loopback, Debian's etcd-server; `timeout_ms` 1000). Light load as above ({LIGHT_SECONDS} s per run); loaded: "
             f"`wrk -t1 -c8 -d{SECONDS}s` (8 requests racing for one budget window: compare-and-set retries). "
             f"{ROUNDS} interleaved rounds, medians.", "",
             "| scenario | store | p50 (light) | p99 (light) | p50 added | p99 added | req/s (loaded) | non-2xx (loaded) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in FLEET_SCENARIOS:
        for c in gateways:
            p50, p99 = med(light, c, s[0], "p50"), med(light, c, s[0], "p99")
            lines.append(f"| {s[0]} | {c} | {fmt_us(p50)} | {fmt_us(p99)} | "
                         f"{p50 - med(light, 'local store', s[0], 'p50'):+.0f} µs | "
                         f"{p99 - med(light, 'local store', s[0], 'p99'):+.0f} µs | "
                         f"{med(heavy, c, s[0], 'rps'):,.0f} | {med(heavy, c, s[0], 'non2xx'):.0f} |")
    return "\n".join(lines) + "\n"


def fmt_us(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def dump():
    """The bundle and scenarios as JSON, for bench/vm (`make bench-vm`)."""
    vary = json.dumps({"sql": SQL_1KB + " -- "})
    print(json.dumps({"bundle": BUNDLE, "scenarios": [
        {"name": name, "method": method, "path": path, "headers": headers,
         "body": vary if body is VARY_SQL else body, "vary": body is VARY_SQL}
        for name, method, path, headers, body in SCENARIOS]}))


# Issue 25's targets, against the host-call floor (the calls scopegate makes, deciding
# nothing): (scenario, least share of the floor's req/s, most p99 added at light load in µs).
TARGETS = [
    ("REST GET", 0.90, 50), ("denied GET", 0.90, 50),
    ("SQL POST 1 KB", 0.90, 100), ("GraphQL VolumeDelete", 0.90, 100), ("MCP tools/call 1 KB", 0.90, 100),
    ("SQL POST 1 KB new each time", 0.70, 100),
]
MODULE_TARGETS = {"scopegate": (2_500_000, 140), "scopegate lite": (900_000, 140)}


def targets(med, lmed, rss):
    """The targets table: each module build against the floor, met or by how much missed."""
    rows = ["## Targets", "",
            "Each module build against the host-call floor: throughput share (saturating load) and p99 added "
            "at light load. `met` or the shortfall.", "",
            "| scenario | module | req/s vs floor | target | Envoy CPU/req over floor | p99 added (light) | target | |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, share, added in TARGETS:
        s = next(x for x in SCENARIOS if x[0] == name)
        for c in ("scopegate", "scopegate lite"):
            if not serves(c, s):
                continue
            ratio = med(c, name, "rps") / med("host-call floor", name, "rps")
            cpu = med(c, name, "cpu_us") - med("host-call floor", name, "cpu_us")
            p99 = (lmed(c, name, "p99") - lmed("host-call floor", name, "p99")) if lmed else None
            ok = ratio >= share and (p99 is None or p99 <= added)
            miss = [] if ok else ([f"{share - ratio:.0%} short"] if ratio < share else []) + \
                ([f"+{p99 - added:.0f} µs"] if p99 is not None and p99 > added else [])
            rows.append(f"| {name} | {c} | {ratio:.0%} | ≥ {share:.0%} | {cpu:+.1f} µs | "
                        f"{'-' if p99 is None else f'{p99:+.0f} µs'} | ≤ {added} µs | {'met' if ok else ', '.join(miss)} |")
    rows += ["", "| module | size | target | Envoy resident memory | target |", "| --- | --- | --- | --- | --- |"]
    for c, path in (("scopegate", SCOPEGATE), ("scopegate lite", LITE)):
        size, mem = path.stat().st_size, rss.get(c, 0.0)
        rows.append(f"| {c} | {size:,} bytes | ≤ {MODULE_TARGETS[c][0]:,} {'met' if size <= MODULE_TARGETS[c][0] else f'({size - MODULE_TARGETS[c][0]:+,})'} "
                    f"| {mem:.0f} MiB | ≤ {MODULE_TARGETS[c][1]} MiB {'met' if mem <= MODULE_TARGETS[c][1] else f'({mem - MODULE_TARGETS[c][1]:+.0f})'} |")
    return "\n".join(rows) + "\n"


def main():
    if sys.argv[1:] == ["--dump"]:
        return dump()
    if sys.argv[1:] == ["--fleet"]:  # the fleet section alone (not written to results.md)
        return print(fleet_bench())
    for path in (SCOPEGATE, NOOP, LITE):
        if not path.exists():
            sys.exit(f"{path} missing: run `make wasm wasm-lite bench-wasm`")
    # BENCH_SCENARIOS / BENCH_CONFIGS: `;`-separated subsets, for a quick look at one path
    # (ratios need the floors, so the full run is what bench/results.md records).
    only_s = [x.strip() for x in os.environ.get("BENCH_SCENARIOS", "").split(";") if x.strip()]
    only_c = [x.strip() for x in os.environ.get("BENCH_CONFIGS", "").split(";") if x.strip()]
    scenarios = [s for s in SCENARIOS if not only_s or s[0] in only_s]
    configs = {c: f for c, f in {**CONFIGS, **EXTRA_CONFIGS}.items()
               if (not only_c and c in CONFIGS) or c in only_c}
    gateways = {name: Gateway(name, f).start() for name, f in configs.items()}
    time.sleep(1)
    rss_loaded = {name: rss_mb(gw.proc.pid) for name, gw in gateways.items()}
    results = {(c, s[0]): [] for c in configs for s in scenarios if serves(c, s)}
    light = {(c, s[0]): [] for c in configs if c in LIGHT_CONFIGS for s in scenarios if serves(c, s)} \
        if LIGHT_SECONDS else {}

    def report(r, scenario, name, res, what):
        print(f"{what} {r + 1} {scenario[0]:<22} {name:<15} {res['rps']:>9.0f} req/s  p50 {fmt_us(res['p50']):>9}"
              f"  p99 {fmt_us(res['p99']):>9}  Envoy CPU {res['cpu_us']:5.1f} µs/req  non-2xx {res['non2xx']}",
              flush=True)
    try:
        for r in range(ROUNDS):
            for scenario in scenarios:
                for name, gw in gateways.items():  # interleaved
                    if (name, scenario[0]) not in results:
                        continue
                    res = wrk(gw.port, scenario, gw.proc.pid)
                    results[(name, scenario[0])].append(res)
                    report(r, scenario, name, res, "round")
        for r in range(ROUNDS if light else 0):
            for scenario in scenarios:
                for name, gw in gateways.items():
                    if (name, scenario[0]) in light:
                        res = wrk(gw.port, scenario, gw.proc.pid, light=True)
                        light[(name, scenario[0])].append(res)
                        report(r, scenario, name, res, "light")
    finally:
        for gw in gateways.values():
            gw.stop()
    if only_s or only_c:
        return

    def med(c, s, k, runs=results):
        return statistics.median(x[k] for x in runs[(c, s)])
    lines = ["| scenario | configuration | req/s (median) | p50 | p99 | Envoy CPU/req | vs bare | vs no-op Wasm | vs buffering Wasm | vs host-call floor |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in SCENARIOS:
        base = {c: med(c, s[0], "rps") for c in CONFIGS if serves(c, s)}
        for c in base:
            rps = base[c]
            lines.append(f"| {s[0]} | {c} | {rps:,.0f} | {fmt_us(med(c, s[0], 'p50'))} | {fmt_us(med(c, s[0], 'p99'))} | "
                         f"{med(c, s[0], 'cpu_us'):.1f} µs | "
                         f"{rps / base['bare Envoy']:.0%} | {rps / base['no-op Wasm']:.0%} | {rps / base['buffering Wasm']:.0%} | "
                         f"{rps / base['host-call floor']:.0%} |")
    if light:
        def lmed(c, s, k):
            return med(c, s, k, light)
        lines += ["", f"Latency at light load: one connection, {LIGHT_GAP_MS} ms between requests "
                  f"(`wrk -t1 -c1 -d{LIGHT_SECONDS}s --latency`, a Lua `delay`), {ROUNDS} interleaved rounds, "
                  "medians. No request waits for another here, so p99 is what a request costs end to end, "
                  "not a queue.", "",
                  "| scenario | configuration | p50 | p99 | p99 added over no-op Wasm | p99 added over buffering Wasm "
                  "| p99 added over host-call floor |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for s in SCENARIOS:
            for c in (c for c in LIGHT_CONFIGS if serves(c, s)):
                p99 = lmed(c, s[0], "p99")
                lines.append(f"| {s[0]} | {c} | {fmt_us(lmed(c, s[0], 'p50'))} | {fmt_us(p99)} | "
                             f"{p99 - lmed('no-op Wasm', s[0], 'p99'):+.0f} µs | "
                             f"{p99 - lmed('buffering Wasm', s[0], 'p99'):+.0f} µs | "
                             f"{p99 - lmed('host-call floor', s[0], 'p99'):+.0f} µs |")
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    envoy_version = subprocess.run([harness.find_binary("envoy", "ENVOY_BIN"), "--version"], capture_output=True,
                                   text=True).stdout.strip().splitlines()[-1]
    header = (f"# make bench — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
              f"Machine: {os.cpu_count()} cores, {cpu}; {platform.system()} {platform.release()}.\n"
              f"Envoy: {envoy_version}, `--concurrency 1`, upstream = a `direct_response` listener of the same Envoy. "
              f"Load: `wrk -t1 -c8 -d{SECONDS}s --latency`, {ROUNDS} interleaved rounds, medians. "
              f"scopegate.wasm {SCOPEGATE.stat().st_size:,} bytes ({shipped(SCOPEGATE)}); "
              f"the lite module {LITE.stat().st_size:,} bytes ({shipped(LITE)}); "
              f"the no-op module {NOOP.stat().st_size:,} bytes.\n"
              f"The denied scenario answers 403 locally under scopegate and 200 elsewhere.\n"
              f"Envoy resident memory once configured (before load): "
              + ", ".join(f"{c} {m:.0f} MiB" for c, m in rss_loaded.items()) + ".\n\n")
    table = targets(med, lmed if light else None, rss_loaded) + "\n" + "\n".join(lines) + "\n"
    if FLEET and LIGHT_SECONDS:
        table += fleet_bench()
    print("\n" + table)
    (ROOT / "bench" / "results.md").write_text(header + table)


if __name__ == "__main__":
    main()
