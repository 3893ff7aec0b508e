"""HTTP clients for the end-to-end tests: HTTP/1.1 (http.client) and HTTP/2 over
cleartext with prior knowledge (the h2 library), with control over when the body and
the trailers are sent."""

import http.client
import json
import socket
import time

import h2.config
import h2.connection
import h2.events


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def http1(port, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        pairs = list((headers or {}).items() if isinstance(headers, dict) else (headers or []))
        # A `host` given replaces the one http.client would add (`127.0.0.1:<port>`).
        conn.putrequest(method, path, skip_accept_encoding=True,
                        skip_host=any(k.lower() == "host" for k, _ in pairs))
        body_bytes = body.encode() if isinstance(body, str) else body
        for k, v in pairs:
            conn.putheader(k, v)
        if body_bytes is not None:
            conn.putheader("content-length", str(len(body_bytes)))
        conn.endheaders(body_bytes)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


class H2:
    """One HTTP/2 cleartext connection (prior knowledge)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.responses = {}

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, method, path, headers=None, end_stream=False):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "127.0.0.1")]
        hdrs += list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
        self.conn.send_headers(sid, hdrs, end_stream=end_stream)
        self.flush()
        self.responses[sid] = {"status": None, "headers": [], "body": b"", "done": False}
        return sid

    def data(self, sid, data, end_stream=False):
        self.conn.send_data(sid, data, end_stream=end_stream)
        self.flush()

    def trailers(self, sid, trailers):
        self.conn.send_headers(sid, list(trailers.items()), end_stream=True)
        self.flush()

    def pump(self, timeout):
        """Reads frames for up to `timeout` seconds or until nothing more arrives."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            raise ConnectionError("connection closed")
        for ev in self.conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                r = self.responses[ev.stream_id]
                r["headers"] = ev.headers
                r["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                self.responses[ev.stream_id]["body"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                self.responses[ev.stream_id]["done"] = True
        self.flush()

    def answered(self, sid):
        return self.responses[sid]["status"] is not None

    def response(self, sid, timeout=15):
        deadline = time.monotonic() + timeout
        while not self.responses[sid]["done"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete response on stream {sid}")
            self.pump(0.2)
        r = self.responses[sid]
        return Response(r["status"], [(k, v) for k, v in r["headers"] if not k.startswith(":")], r["body"])

    def request(self, method, path, headers=None, body=None, trailers=None):
        sid = self.start(method, path, headers, end_stream=body is None and trailers is None)
        if body is not None:
            self.data(sid, body.encode() if isinstance(body, str) else body, end_stream=trailers is None)
        if trailers is not None:
            self.trailers(sid, trailers)
        return self.response(sid)

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        finally:
            self.sock.close()
