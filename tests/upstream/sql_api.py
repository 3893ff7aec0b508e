"""A Neon-style SQL-over-HTTP service over a real PostgreSQL, for scopegate's tests.

POST /sql  {"sql": "...", "params": [...]}  runs the SQL (autocommit). With params it uses
the extended protocol (one statement); without, the simple protocol, so a batch of
statements runs as PostgreSQL would run it. Answers {"rows", "fields", "rowCount"} for the
last statement, or 400 {"message"} on a database error. It trusts only
`Authorization: Bearer <token>` and records every request (GET /__seen, POST /__reset),
like rest_api.py. It executes whatever it is sent: that is why scopegate is in front.

Usage: sql_api.py --port N --dsn DSN --token TOKEN
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

SEEN = []
SEEN_LOCK = threading.Lock()


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sql-api/1"

    def log_message(self, fmt, *args):
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
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        body = self.read_body()
        if self.path == "/__seen":
            with SEEN_LOCK:
                return self.reply(200, list(SEEN))
        if self.path == "/__reset":
            with SEEN_LOCK:
                SEEN.clear()
            return self.reply(200, {"reset": True})
        with SEEN_LOCK:
            SEEN.append({"method": self.command, "path": self.path,
                         "headers": [[k.lower(), v] for k, v in self.headers.items()],
                         "body_bytes": len(body)})
        if self.headers.get("authorization") != f"Bearer {self.server.token}":
            return self.reply(401, {"message": "upstream credential missing or wrong"})
        if self.command != "POST" or self.path.split("?")[0] != "/sql":
            return self.reply(404, {"message": "POST /sql only"})
        try:
            request = json.loads(body)
            sql, params = request["sql"], request.get("params")
        except (ValueError, KeyError, TypeError) as e:
            return self.reply(400, {"message": f"bad request: {e}"})
        try:
            with psycopg.connect(self.server.dsn, autocommit=True) as conn:
                if params is None:
                    # Simple query protocol: a batch runs statement by statement.
                    cur = conn.cursor()
                    cur.execute(sql)
                    while cur.nextset():
                        pass
                else:
                    # Native `$1` placeholders, as PostgreSQL (and Neon's HTTP API) take them.
                    cur = psycopg.RawCursor(conn)
                    cur.execute(sql, params)
                fields = [d.name for d in cur.description] if cur.description else []
                rows = [dict(zip(fields, r)) for r in cur.fetchall()] if cur.description else []
                return self.reply(200, {"rows": rows, "fields": fields, "rowCount": cur.rowcount})
        except psycopg.Error as e:
            return self.reply(400, {"message": str(e).strip()})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token", required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Api)
    server.daemon_threads = True
    server.dsn, server.token = args.dsn, args.token
    print(f"sql-api listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
