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

import psycopg

from recording import RecordingHandler, serve


class Api(RecordingHandler):
    server_version = "sql-api/1"

    def handle_request(self, body):
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token", required=True)
    args = ap.parse_args()
    serve(Api, args.port, dsn=args.dsn, token=args.token)


if __name__ == "__main__":
    main()
