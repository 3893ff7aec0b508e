"""`scopegate eval` against the live filter: one raw request, both decisions compared."""

import json
import os
import subprocess

import harness
from clients import http1

CLI = os.environ.get("SCOPEGATE_CLI", str(harness.ROOT / "target" / "release" / "scopegate"))


def assert_cli_agrees(port, bundle_file, tmp_path, method, path, headers, body=None):
    """Sends the request through Envoy, evaluates the same raw request with the CLI and
    asserts the same decision, status, reason, rule, operations and challenge digest."""
    live = http1(port, method, path, headers, body)
    raw = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body is not None:
        raw += f"content-length: {len(body.encode())}\r\n"
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
        if isinstance(got, list) or "jsonrpc" in got:
            # MCP: the decision is the `data` of the JSON-RPC error (the first, in a batch).
            got = (got[0] if isinstance(got, list) else got)["error"]["data"]
        assert (got["decision"], got["reason"], got["rule"]) == (cli["decision"], cli["reason"], cli["rule"])
        assert got["operations"] == cli["operations"]
        if cli["decision"] == "challenge":
            assert got["challenge"] == cli["digest"]
    return cli, live
