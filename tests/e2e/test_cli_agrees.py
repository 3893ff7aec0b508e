"""`scopegate eval` and the filter run the same engine: for the same bundle and the same
request, the CLI's decision is the one the filter enforced in Envoy."""

import json
import os
import subprocess

import pytest

import harness
from clients import http1
from conftest import bundle

CLI = os.environ.get("SCOPEGATE_CLI", str(harness.ROOT / "target" / "release" / "scopegate"))

REQUESTS = [
    ("GET", "/rest/reservations?tenant_id=eq.acme", "reader", None),
    ("DELETE", "/rest/reservations?id=eq.r-17", "reader", None),
    ("DELETE", "/rest/reservations", "support", None),
    ("DELETE", "/rest/reservations?id=eq.r-2", "support", None),
    ("POST", "/rest/reservations", "support", '{"id":"r-77","tenant_id":"acme","customer":"Q"}'),
    ("DELETE", "/rest/payments?id=eq.p-1", "janitor", None),
    ("GET", "/api/v2/rentals/_table/vehicles?filter=1%3D1", "reader", None),
    ("GET", "/rest/vehicles", None, None),
    ("GET", "/rest/vehicles", "expired", None),
]


@pytest.mark.parametrize("method,path,who,body", REQUESTS)
def test_cli_eval_matches_the_filter(gateway, upstream, keys, tmp_path, method, path, who, body):
    headers = {"x-request-id": "cli-agrees"}
    if who:
        headers["authorization"] = f"Bearer {getattr(keys, who)}"
    if body is not None:
        headers["content-type"] = "application/json"
    live = http1(gateway.port, method, path, headers, body)

    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(json.dumps(bundle(keys)))
    raw = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body is not None:
        raw += f"content-length: {len(body)}\r\n"
    raw += "\r\n" + (body or "")
    request_file = tmp_path / "request.http"
    request_file.write_text(raw)
    out = subprocess.run([CLI, "eval", str(bundle_file), "--request", str(request_file)],
                         check=True, capture_output=True, text=True)
    cli = json.loads(out.stdout)

    if cli["decision"] == "allow":
        assert cli["status"] is None
        assert 200 <= live.status < 300, live
    else:
        assert cli["status"] == live.status, (cli, live)
        got = live.json()
        assert (got["decision"], got["reason"], got["rule"]) == (cli["decision"], cli["reason"], cli["rule"])
        assert got["operations"] == cli["operations"]
        if cli["decision"] == "challenge":
            assert got["challenge"] == cli["digest"]
