#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/) from the project's own
test material: the adversarial suite, the policy tests, the SQL ground-truth corpus.
Checked in; rerun after the suites grow. libFuzzer adds what it finds to a separate,
untracked directory (`make fuzz` passes it first)."""

import base64
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"
MAX_SEED = 8192  # larger inputs (the oversize cases) teach the fuzzer nothing new
KEYS = {}
for f in [ROOT / "tests/adversarial/bundle.keys", *ROOT.glob("policies/*.keys")]:
    for line in f.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            n, k = line.split("=", 1)
            KEYS[n.strip()] = k.strip()


def cases():
    for f in [ROOT / "tests/adversarial/cases.jsonl", *sorted(ROOT.glob("policies/*.tests.jsonl"))]:
        for line in f.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("//"):
                yield json.loads(line)


def body(c):
    if "body_base64" in c:
        return base64.b64decode(c["body_base64"])
    b = c.get("body")
    if b is None:
        return b""
    return b.encode() if isinstance(b, str) else json.dumps(b).encode()


def headers(c):
    h = c.get("headers") or {}
    return list(h.items()) if isinstance(h, dict) else [tuple(p) for p in h]


seeds = {t: set() for t in ["decide", "rest", "sql", "graphql", "mcp", "json", "answer", "bundle"]}
for c in cases():
    b, path, method = body(c), c["path"], c.get("method", "GET")
    # decide: mode bit 1 adds the fuzz agent's key; the case's own headers follow.
    lines = [f"{method} {path}".encode()] + [f"{n}: {v}".encode() for n, v in headers(c)]
    if b and not any(n.lower() == "content-type" for n, _ in headers(c)):
        lines.append(b"content-type: application/json")
    seeds["decide"].add(b"\x01" + b"\n".join(lines) + b"\n\n" + b)
    group = c.get("group") or path.split("/")[1]
    if path.startswith("/rest/"):
        seeds["rest"].add(bytes([["GET", "DELETE", "PATCH", "POST", "PUT", "HEAD"].index(method) if method in
                                 ["GET", "DELETE", "PATCH", "POST", "PUT", "HEAD"] else 0]) + path[6:].encode())
    if b:
        seeds["json"].add(b)
        try:
            doc = json.loads(b)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("sql"), str):
            seeds["sql"].add(b"\x00" + doc["sql"].encode("utf-8", "surrogatepass"))
        if isinstance(doc, dict) and isinstance(doc.get("query"), str) and "graphql" in group:
            seeds["graphql"].add(b"\x00" + doc["query"].encode("utf-8", "surrogatepass"))
            seeds["graphql"].add(b"\x02" + b)
        if "mcp" in group or path.startswith("/mcp"):
            seeds["mcp"].add(b"\x00" + b)
            seeds["mcp"].add(b"\x01" + b)

blocks = (ROOT / "tests/sql_corpus/postgres.sql").read_text().split("\n-- ;;\n")
for i, block in enumerate(blocks[1:]):
    sql = block.strip().encode()
    seeds["sql"].add(bytes([i % 4]) + sql)

answers = [
    {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "list_orders"}, {"name": "delete_cart"}, {"name": "run_query"}]}},
    {"jsonrpc": "2.0", "id": 2, "result": {"resources": [{"uri": "shop://catalog/p-1"}, {"uri": "shop://admin/secrets"}]}},
    {"jsonrpc": "2.0", "id": 3, "result": {"prompts": [{"name": "greeting"}, {"name": "drop_all"}]}},
]
for a in answers:
    j = json.dumps(a).encode()
    seeds["answer"].add(b"\x80" + j)
    seeds["answer"].add(b"\x40" + b"event: message\r\ndata: " + j + b"\r\n\r\n" + b"data: " + j + b"\n\n")
for f in sorted(ROOT.glob("policies/*.json")) + [ROOT / "fuzz/bundle.json", ROOT / "tests/adversarial/bundle.json"]:
    seeds["bundle"].add(f.read_bytes())

# Inputs that once failed a target (each also has a regression test): kept as seeds.
for f in sorted((ROOT / "fuzz" / "regressions").glob("*/*")):
    seeds[f.parent.name].add(f.read_bytes())

for target, items in seeds.items():
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    items = {s for s in items if len(s) <= MAX_SEED or target == "bundle"}
    for s in sorted(items):
        (d / hashlib.sha1(s).hexdigest()).write_bytes(s)
    print(f"{target}: {len(items)} seeds")
