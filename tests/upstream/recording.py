"""What the test APIs share: HTTP/1.1 plumbing (JSON replies, plain and chunked request
bodies) and a record of every request received, served at GET /__seen and cleared by
POST /__reset, so tests can prove what reached the upstream and what did not."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingHandler(BaseHTTPRequestHandler):
    """Subclasses implement `handle_request(body)`; requests are recorded before it runs."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm and
    # the peer's delayed ACK add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    seen = []
    seen_lock = threading.Lock()

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def reply(self, status, payload):
        body = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            # HTTP/2 requests without content-length (e.g. with trailers) arrive chunked.
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        body = self.read_body()
        path = self.path.split("?")[0]
        if path == "/__seen":
            with self.seen_lock:
                return self.reply(200, list(self.seen))
        if path == "/__reset":
            with self.seen_lock:
                self.seen.clear()
            return self.reply(200, {"reset": True})
        with self.seen_lock:
            self.seen.append({
                "method": self.command,
                "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "body_bytes": len(body),
            })
        return self.handle_request(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def handle_request(self, body):
        raise NotImplementedError


def serve(handler, port, **attrs):
    """Serves `handler` on 127.0.0.1:port until killed; `attrs` become server attributes."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    for k, v in attrs.items():
        setattr(server, k, v)
    print(f"{handler.server_version} listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
