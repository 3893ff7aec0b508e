"""A real MCP server (the official Python SDK, `mcp` from PyPI) over the harness's
PostgreSQL, serving Streamable HTTP at /mcp. It runs under either SDK line:

- mcp 1.x (FastMCP): the session wire (initialize, Mcp-Session-Id), answers as SSE;
- mcp 2.x (MCPServer): the same session wire for handshake-era clients, and the stateless
  2026-07-28 wire (server/discover, Mcp-Method/Mcp-Name headers), answers as JSON.

Tools: list_reservations, get_vehicle, create_reservation, delete_reservation,
purge_reservations, execute_sql, run_query. Resources: rentals://fleet/summary,
rentals://admin/audit, rentals://vehicles/{vehicle_id}. Prompts: summarise_reservation,
draft_refund_email.

Like the other test APIs it records every request (GET /__seen, POST /__reset), and
refuses any request without the upstream token scopegate injects."""

import argparse
import importlib.metadata
import json
import threading

import psycopg
import uvicorn

MAJOR = int(importlib.metadata.version("mcp").split(".")[0])


def build(dsn):
    if MAJOR >= 2:
        from mcp.server.mcpserver import MCPServer
        server = MCPServer("rentals")
    else:
        from mcp.server.fastmcp import FastMCP
        server = FastMCP("rentals", json_response=False, streamable_http_path="/mcp")

    def rows(sql, params=()):
        with psycopg.connect(dsn, autocommit=True) as c:
            cur = c.execute(sql, params)
            if cur.description is None:
                return {"rowcount": cur.rowcount}
            cols = [d.name for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    @server.tool()
    def list_reservations(tenant_id: str | None = None) -> str:
        """Reservations, optionally of one tenant."""
        if tenant_id:
            return json.dumps(rows("SELECT id, tenant_id, vehicle_id, customer FROM reservations WHERE tenant_id = %s ORDER BY id", (tenant_id,)))
        return json.dumps(rows("SELECT id, tenant_id, vehicle_id, customer FROM reservations ORDER BY id"))

    @server.tool()
    def get_vehicle(vehicle_id: str) -> str:
        """One vehicle."""
        return json.dumps(rows("SELECT id, model FROM vehicles WHERE id = %s", (vehicle_id,)))

    @server.tool()
    def create_reservation(reservation_id: str, vehicle_id: str, customer: str) -> str:
        """Books a vehicle."""
        return json.dumps(rows("INSERT INTO reservations VALUES (%s, 'acme', %s, %s)", (reservation_id, vehicle_id, customer)))

    @server.tool()
    def delete_reservation(reservation_id: str) -> str:
        """Cancels a reservation (deletes its row)."""
        return json.dumps(rows("DELETE FROM reservations WHERE id = %s", (reservation_id,)))

    @server.tool()
    def update_reservation(reservation_id: str, customer: str | None = None, remove: bool = False) -> str:
        """Changes a reservation's customer; with remove, deletes the reservation instead."""
        if remove:
            return json.dumps(rows("DELETE FROM reservations WHERE id = %s", (reservation_id,)))
        return json.dumps(rows("UPDATE reservations SET customer = %s WHERE id = %s", (customer, reservation_id)))

    @server.tool()
    def purge_reservations() -> str:
        """Deletes every reservation."""
        return json.dumps(rows("DELETE FROM reservations"))

    @server.tool()
    def execute_sql(sql: str) -> str:
        """Runs any SQL."""
        return json.dumps(rows(sql), default=str)

    @server.tool()
    def run_query(table: str, limit: int = 10) -> str:
        """Reads a table."""
        if not table.isidentifier():
            raise ValueError("bad table name")
        return json.dumps(rows(f"SELECT * FROM {table} LIMIT %s", (limit,)), default=str)

    @server.resource("rentals://fleet/summary")
    def fleet_summary() -> str:
        """How many vehicles there are."""
        return json.dumps(rows("SELECT count(*) AS vehicles FROM vehicles"))

    @server.resource("rentals://admin/audit")
    def admin_audit() -> str:
        """Payments, for auditors."""
        return json.dumps(rows("SELECT * FROM payments ORDER BY id"))

    @server.resource("rentals://vehicles/{vehicle_id}")
    def vehicle(vehicle_id: str) -> str:
        """One vehicle, as a resource."""
        return json.dumps(rows("SELECT id, model FROM vehicles WHERE id = %s", (vehicle_id,)))

    @server.prompt()
    def summarise_reservation(reservation_id: str) -> str:
        """Asks for a summary of one reservation."""
        return f"Summarise reservation {reservation_id} for the customer."

    @server.prompt()
    def draft_refund_email(reservation_id: str) -> str:
        """Asks for a refund e-mail."""
        return f"Draft a refund e-mail for reservation {reservation_id}."

    if MAJOR >= 2:
        return server.streamable_http_app(streamable_http_path="/mcp", json_response=True)
    return server.streamable_http_app()


class Recorder:
    """ASGI wrapper: records each request (method, headers, JSON-RPC body), serves
    /__seen and /__reset, and requires the upstream token."""

    def __init__(self, app, token):
        self.app, self.token = app, token
        self.seen, self.lock = [], threading.Lock()

    async def reply(self, send, status, payload):
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == "/__seen":
            with self.lock:
                return await self.reply(send, 200, list(self.seen))
        if scope["path"] == "/__reset":
            with self.lock:
                self.seen.clear()
            return await self.reply(send, 200, {"reset": True})
        body, more = b"", True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        with self.lock:
            self.seen.append({"method": scope["method"], "path": scope["path"], "body": parsed,
                              "headers": {k: v for k, v in headers.items() if k.startswith(("mcp-", "x-scopegate-", "authorization", "accept-encoding"))}})
        if headers.get("authorization") != f"Bearer {self.token}":
            return await self.reply(send, 401, {"error": "upstream token required"})
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dsn", required=True)
    p.add_argument("--token", required=True)
    a = p.parse_args()
    print(f"mcp {importlib.metadata.version('mcp')} server listening on 127.0.0.1:{a.port}", flush=True)
    uvicorn.run(Recorder(build(a.dsn), a.token), host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
