"""A recording upstream that answers every request, whatever its method or path, so a test
can prove which requests reached the upstream and which did not (GET /__seen, POST
/__reset; see recording.py). Used by tests/e2e/test_adversarial.py.

Answers are JSON. On `/mcp` they are JSON-RPC, so scopegate's MCP answer filter (which
holds and parses answers to list requests and to the GET stream) accepts them: one
`{"jsonrpc": "2.0", "id": …, "result": {}}` per request of the body (an array for a
batch), 202 with no body when the body holds only notifications or responses."""

import argparse
import json

from recording import RecordingHandler, serve


class Echo(RecordingHandler):
    server_version = "echo"

    def __getattr__(self, name):
        # BaseHTTPRequestHandler dispatches to do_<METHOD>: answer any method (HEAD,
        # OPTIONS, PROPFIND, lower-case methods…), so nothing is refused before it is
        # recorded.
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def answer(self, status, payload):
        if self.command == "HEAD":
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "0")
            self.end_headers()
            return None
        return self.reply(status, payload)

    def handle_request(self, body):
        path = self.path.split("?")[0].rstrip("/")
        if path != "/mcp":
            return self.answer(200, {"ok": True, "method": self.command, "path": self.path})
        if self.command != "POST":
            return self.answer(200, {"jsonrpc": "2.0", "id": 0, "result": {}})
        try:
            msg = json.loads(body)
        except ValueError:
            return self.answer(200, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}})
        msgs = msg if isinstance(msg, list) else [msg]
        answers = [{"jsonrpc": "2.0", "id": m["id"], "result": {}}
                   for m in msgs if isinstance(m, dict) and "method" in m and "id" in m]
        if not answers:
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()
            return None
        return self.answer(200, answers if isinstance(msg, list) else answers[0])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    # harness.Upstream passes a database and a token every API takes; this one needs neither.
    p.add_argument("--dsn", default="")
    p.add_argument("--token", default="")
    a = p.parse_args()
    serve(Echo, a.port)


if __name__ == "__main__":
    main()
