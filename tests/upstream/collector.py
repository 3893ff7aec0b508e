"""An audit collector for the tests: keeps every record POSTed to it (JSON Lines, as
scopegate's audit sink sends them), serves them at GET /__records (parsed) and GET /__raw
(the lines as received, for verifying chained records), clears them on POST /__clear."""

import argparse
import json
import threading

from recording import RecordingHandler, serve


class Collector(RecordingHandler):
    server_version = "collector"
    records = []
    raw = []
    lock = threading.Lock()

    def handle_request(self, body):
        path = self.path.split("?")[0]
        if self.command == "GET" and path == "/__records":
            with self.lock:
                return self.reply(200, list(self.records))
        if self.command == "GET" and path == "/__raw":
            with self.lock:
                return self.reply(200, list(self.raw))
        if self.command == "POST" and path == "/__clear":
            with self.lock:
                self.records.clear()
                self.raw.clear()
            return self.reply(200, {"reset": True})
        if self.command == "POST":
            raw = [line for line in body.decode().splitlines() if line.strip()]
            lines = [json.loads(line) for line in raw]
            with self.lock:
                self.records.extend(lines)
                self.raw.extend(raw)
            return self.reply(200, {"received": len(lines)})
        return self.reply(404, {"error": "not found"})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    serve(Collector, a.port)


if __name__ == "__main__":
    main()
