"""A small REST API over a real PostgreSQL, for scopegate's demo and end-to-end tests.

It speaks two conventions against the same tables:
  * PostgREST style under /rest:        GET/POST/PATCH/DELETE /rest/<table>?<col>=eq.<v>|in.(<v>,...)
  * DreamFactory style under /api/v2/rentals:
        GET/POST/DELETE /api/v2/rentals/_table/<table>[/<id>][?ids=a,b]

It checks the upstream credential scopegate injects (PostgREST: `Authorization: Bearer
<token>`, DreamFactory: `X-DreamFactory-API-Key: <token>`) and records every request it
receives, headers included, so tests can prove what reached it and what did not:
GET /__seen lists them, POST /__reset forgets them. /__seen is not behind the gateway's
services, so agents cannot reach it through Envoy.

Like the real servers it imitates, it does what it is told: a DELETE without filters
deletes every row. That is what scopegate is in front of it to prevent.

Usage: rest_api.py --port N --dsn DSN --token TOKEN
"""

import argparse
import json
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg import sql

from recording import RecordingHandler, serve


class Api(RecordingHandler):
    server_version = "rentals-api/1"

    def handle_request(self, body):
        url = urlsplit(self.path)
        try:
            if url.path == "/rest/health":
                return self.reply(200, {"status": "ok"})
            if url.path.startswith("/rest/"):
                if self.headers.get("authorization") != f"Bearer {self.server.token}":
                    return self.reply(401, {"message": "upstream credential missing or wrong"})
                return self.postgrest(unquote(url.path[len("/rest/"):]), url.query, body)
            if url.path.startswith("/api/v2/rentals/"):
                if self.headers.get("x-dreamfactory-api-key") != self.server.token:
                    return self.reply(401, {"error": {"message": "Invalid API key."}})
                parts = [unquote(p) for p in url.path[len("/api/v2/rentals/"):].split("/")]
                return self.dreamfactory(parts, url.query, body)
            return self.reply(404, {"message": "not found"})
        except (psycopg.Error, ValueError, KeyError) as e:
            return self.reply(400, {"message": str(e)})

    # ---------------------------------------------------------------- SQL
    def table(self, name):
        if name not in self.server.tables:
            raise KeyError(f"no table {name}")
        return sql.Identifier(name)

    def run(self, query, params=()):
        with psycopg.connect(self.server.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            if cur.description is None:
                return cur.rowcount, []
            cols = [d.name for d in cur.description]
            return cur.rowcount, [dict(zip(cols, r)) for r in cur.fetchall()]

    def where(self, conditions):
        """conditions: [(column, [values])] -> (SQL, params); empty -> no WHERE."""
        if not conditions:
            return sql.SQL(""), []
        parts, params = [], []
        for col, values in conditions:
            parts.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(col)))
            params.append(values)
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), params

    # ---------------------------------------------------------------- PostgREST
    def postgrest(self, table, query, body):
        t = self.table(table)
        conditions = []
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name in ("select", "order", "limit", "offset", "on_conflict", "columns"):
                continue
            op, _, arg = value.partition(".")
            if op == "eq":
                conditions.append((name, [arg]))
            elif op == "in" and arg.startswith("(") and arg.endswith(")"):
                conditions.append((name, [v.strip('"') for v in arg[1:-1].split(",")]))
            else:
                raise ValueError(f"this test API supports eq and in filters only, not {value}")
        where, params = self.where(conditions)
        if self.command == "GET":
            _, rows = self.run(sql.SQL("SELECT * FROM {}").format(t) + where + sql.SQL(" ORDER BY 1"), params)
            return self.reply(200, rows)
        if self.command == "DELETE":
            n, _ = self.run(sql.SQL("DELETE FROM {}").format(t) + where, params)
            return self.reply(200, {"deleted": n})
        if self.command == "PATCH":
            changes = json.loads(body or b"{}")
            sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in changes)
            n, _ = self.run(sql.SQL("UPDATE {} SET ").format(t) + sets + where, list(changes.values()) + params)
            return self.reply(200, {"updated": n})
        if self.command == "POST":
            row = json.loads(body or b"{}")
            cols = sql.SQL(", ").join(sql.Identifier(k) for k in row)
            vals = sql.SQL(", ").join(sql.Placeholder() for _ in row)
            self.run(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(t, cols, vals), list(row.values()))
            return self.reply(201, row)
        return self.reply(405, {"message": "method not allowed"})

    # ---------------------------------------------------------------- DreamFactory
    def dreamfactory(self, parts, query, body):
        params = dict(parse_qsl(query, keep_blank_values=True))
        if len(parts) < 2 or parts[0] != "_table":
            return self.reply(404, {"error": {"message": "resource not found"}})
        t = self.table(parts[1])
        conditions = []
        if len(parts) == 3:
            conditions.append(("id", [parts[2]]))
        elif "ids" in params:
            conditions.append(("id", params["ids"].split(",")))
        where, args = self.where(conditions)
        if self.command == "GET":
            _, rows = self.run(sql.SQL("SELECT * FROM {}").format(t) + where + sql.SQL(" ORDER BY 1"), args)
            return self.reply(200, {"resource": rows})
        if self.command == "DELETE":
            _, rows = self.run(sql.SQL("DELETE FROM {}").format(t) + where + sql.SQL(" RETURNING id"), args)
            return self.reply(200, {"resource": rows})
        if self.command == "POST":
            created = []
            for row in json.loads(body or b"{}").get("resource", []):
                cols = sql.SQL(", ").join(sql.Identifier(k) for k in row)
                vals = sql.SQL(", ").join(sql.Placeholder() for _ in row)
                self.run(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(t, cols, vals), list(row.values()))
                created.append({"id": row.get("id")})
            return self.reply(201, {"resource": created})
        return self.reply(405, {"error": {"message": "method not allowed"}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token", required=True)
    args = ap.parse_args()
    with psycopg.connect(args.dsn) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    serve(Api, args.port, dsn=args.dsn, token=args.token, tables=tables)


if __name__ == "__main__":
    main()
