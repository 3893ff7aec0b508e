"""A Railway-like GraphQL API over a real PostgreSQL, for scopegate's tests and demo.

strawberry-graphql (ASGI, served by uvicorn) at `POST|GET /graphql/v2`, with the field and
argument names of Railway's public API for the part the incident is about: volumes and
their backups, custom and service domains, projects and environments. `volumeDelete`
deletes the volume *and its backups*, as the real one did. It executes whatever it is
sent — batches included, queries over GET, mutations over POST only (strawberry's rule) —
and trusts only `Authorization: Bearer <token>`: that is why scopegate is in front.

Like the other test APIs it records every request (GET /__seen, POST /__reset); POST
/__seed puts the railway tables back to the seed rows.

Usage: graphql_api.py --port N --dsn DSN --token TOKEN
"""

import argparse
import json
import threading
import uuid
from typing import List, Optional

import psycopg
import strawberry
import uvicorn
from strawberry.asgi import GraphQL
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

DSN = None

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS railway;
CREATE TABLE IF NOT EXISTS railway.projects (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS railway.environments (id text PRIMARY KEY, project_id text NOT NULL, name text NOT NULL);
CREATE TABLE IF NOT EXISTS railway.volumes (id text PRIMARY KEY, project_id text NOT NULL, name text NOT NULL,
    mount_path text NOT NULL DEFAULT '/data');
CREATE TABLE IF NOT EXISTS railway.volume_backups (id text PRIMARY KEY, volume_id text NOT NULL, name text NOT NULL);
CREATE TABLE IF NOT EXISTS railway.custom_domains (id text PRIMARY KEY, domain text NOT NULL, environment_id text,
    project_id text, service_id text, target_port int);
CREATE TABLE IF NOT EXISTS railway.service_domains (id text PRIMARY KEY, domain text NOT NULL, environment_id text,
    service_id text);
CREATE TABLE IF NOT EXISTS railway.variables (environment_id text NOT NULL, name text NOT NULL, value text NOT NULL,
    PRIMARY KEY (environment_id, name));
"""

SEED_SQL = """
TRUNCATE railway.projects, railway.environments, railway.volumes, railway.volume_backups,
         railway.custom_domains, railway.service_domains, railway.variables;
INSERT INTO railway.projects VALUES ('proj-1', 'rentals');
INSERT INTO railway.environments VALUES ('env-prod', 'proj-1', 'production'), ('env-staging', 'proj-1', 'staging');
INSERT INTO railway.volumes VALUES ('vol-prod-1', 'proj-1', 'postgres-data (production)', '/var/lib/postgresql/data'),
                                   ('vol-staging-1', 'proj-1', 'postgres-data (staging)', '/var/lib/postgresql/data');
INSERT INTO railway.volume_backups VALUES ('bak-1', 'vol-prod-1', 'nightly'), ('bak-2', 'vol-prod-1', 'weekly');
INSERT INTO railway.custom_domains VALUES ('cd-1', 'api.example.com', 'env-prod', 'proj-1', 'svc-web', 8080);
INSERT INTO railway.service_domains VALUES ('sd-1', 'web-production.up.railway.app', 'env-prod', 'svc-web');
INSERT INTO railway.variables VALUES ('env-prod', 'DATABASE_URL', 'postgres://app@db.internal/app'),
                                     ('env-prod', 'STRIPE_KEY', 'sk_live_env-prod');
"""


def sql(query, params=None):
    with psycopg.connect(DSN, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else cur.rowcount


def secrets(environment_id):
    """An environment's variables, as Railway returns them (the values are secrets)."""
    return {"DATABASE_URL": f"postgres://app:s3cret-{environment_id}@db.internal/app",
            "STRIPE_KEY": f"sk_live_{environment_id}"}


@strawberry.type
class Environment:
    id: str
    name: str
    projectId: str

    @strawberry.field
    def variables(self) -> str:
        # Railway: decrypted variable values under a field any project read reaches.
        return json.dumps(secrets(self.id))

    @strawberry.field
    def config(self, decryptVariables: Optional[bool] = None) -> str:
        values = secrets(self.id)
        if not decryptVariables:
            values = {k: "*****" for k in values}
        return json.dumps({"variables": values})


@strawberry.type
class Project:
    id: str
    name: str

    @strawberry.field
    def environments(self) -> List[Environment]:
        rows = sql("SELECT id, name, project_id FROM railway.environments WHERE project_id = %s ORDER BY id", (self.id,))
        return [Environment(id=i, name=n, projectId=p) for i, n, p in rows]


@strawberry.type
class Volume:
    id: str
    name: str
    projectId: str
    mountPath: str


@strawberry.type
class CustomDomain:
    id: str
    domain: str
    environmentId: Optional[str]
    projectId: Optional[str]
    serviceId: Optional[str]
    targetPort: Optional[int]


@strawberry.type
class ServiceDomain:
    id: str
    domain: str
    environmentId: Optional[str]
    serviceId: Optional[str]


@strawberry.type
class AllDomains:
    customDomains: List[CustomDomain]
    serviceDomains: List[ServiceDomain]


@strawberry.input
class CustomDomainCreateInput:
    domain: str
    environmentId: str
    projectId: Optional[str] = None
    serviceId: str
    targetPort: Optional[int] = None


@strawberry.input
class ServiceDomainCreateInput:
    environmentId: str
    serviceId: str
    targetPort: Optional[int] = None


@strawberry.input
class VolumeCreateInput:
    projectId: str
    mountPath: str
    environmentId: Optional[str] = None
    serviceId: Optional[str] = None


@strawberry.input
class VariableCollectionUpsertInput:
    environmentId: str
    projectId: str
    serviceId: Optional[str] = None
    skipDeploys: Optional[bool] = None
    variables: JSON
    replace: Optional[bool] = None
    """When set to true, removes all existing variables before upserting the new collection."""


def custom_domain(row):
    return CustomDomain(id=row[0], domain=row[1], environmentId=row[2], projectId=row[3], serviceId=row[4],
                        targetPort=row[5])


@strawberry.type
class Query:
    @strawberry.field
    def project(self, id: str) -> Optional[Project]:
        rows = sql("SELECT id, name FROM railway.projects WHERE id = %s", (id,))
        return Project(id=rows[0][0], name=rows[0][1]) if rows else None

    @strawberry.field
    def projects(self) -> List[Project]:
        return [Project(id=i, name=n) for i, n in sql("SELECT id, name FROM railway.projects ORDER BY id")]

    @strawberry.field
    def environments(self, projectId: str) -> List[Environment]:
        rows = sql("SELECT id, name, project_id FROM railway.environments WHERE project_id = %s ORDER BY id", (projectId,))
        return [Environment(id=i, name=n, projectId=p) for i, n, p in rows]

    @strawberry.field
    def volumes(self) -> List[Volume]:
        rows = sql("SELECT id, name, project_id, mount_path FROM railway.volumes ORDER BY id")
        return [Volume(id=i, name=n, projectId=p, mountPath=m) for i, n, p, m in rows]

    @strawberry.field
    def domains(self, environmentId: str, projectId: str, serviceId: str) -> AllDomains:
        custom = sql("SELECT id, domain, environment_id, project_id, service_id, target_port FROM railway.custom_domains "
                     "WHERE environment_id = %s AND service_id = %s ORDER BY id", (environmentId, serviceId))
        service = sql("SELECT id, domain, environment_id, service_id FROM railway.service_domains "
                      "WHERE environment_id = %s AND service_id = %s ORDER BY id", (environmentId, serviceId))
        return AllDomains(customDomains=[custom_domain(r) for r in custom],
                          serviceDomains=[ServiceDomain(id=i, domain=d, environmentId=e, serviceId=s)
                                          for i, d, e, s in service])


@strawberry.type
class Mutation:
    @strawberry.mutation
    def volumeDelete(self, volumeId: str) -> bool:
        # As in the incident: the volume goes, and the backups stored inside it with it.
        sql("DELETE FROM railway.volume_backups WHERE volume_id = %s", (volumeId,))
        return sql("DELETE FROM railway.volumes WHERE id = %s", (volumeId,)) > 0

    @strawberry.mutation
    def volumeCreate(self, input: VolumeCreateInput) -> Volume:
        vid = "vol-" + uuid.uuid4().hex[:8]
        sql("INSERT INTO railway.volumes VALUES (%s, %s, %s, %s)", (vid, input.projectId, vid, input.mountPath))
        return Volume(id=vid, name=vid, projectId=input.projectId, mountPath=input.mountPath)

    @strawberry.mutation
    def volumeInstanceBackupDelete(self, volumeInstanceBackupId: str, volumeInstanceId: str) -> str:
        sql("DELETE FROM railway.volume_backups WHERE id = %s", (volumeInstanceBackupId,))
        return volumeInstanceBackupId

    @strawberry.mutation
    def customDomainCreate(self, input: CustomDomainCreateInput) -> CustomDomain:
        cid = "cd-" + uuid.uuid4().hex[:8]
        row = (cid, input.domain, input.environmentId, input.projectId, input.serviceId, input.targetPort)
        sql("INSERT INTO railway.custom_domains VALUES (%s, %s, %s, %s, %s, %s)", row)
        return custom_domain(row)

    @strawberry.mutation
    def customDomainUpdate(self, environmentId: str, id: str, targetPort: Optional[int] = None) -> bool:
        return sql("UPDATE railway.custom_domains SET target_port = %s WHERE id = %s AND environment_id = %s",
                   (targetPort, id, environmentId)) > 0

    @strawberry.mutation
    def customDomainDelete(self, id: str) -> bool:
        return sql("DELETE FROM railway.custom_domains WHERE id = %s", (id,)) > 0

    @strawberry.mutation
    def serviceDomainCreate(self, input: ServiceDomainCreateInput) -> ServiceDomain:
        sid = "sd-" + uuid.uuid4().hex[:8]
        domain = f"{input.serviceId}-{sid}.up.railway.app"
        sql("INSERT INTO railway.service_domains VALUES (%s, %s, %s, %s)", (sid, domain, input.environmentId, input.serviceId))
        return ServiceDomain(id=sid, domain=domain, environmentId=input.environmentId, serviceId=input.serviceId)

    @strawberry.mutation
    def variableCollectionUpsert(self, input: VariableCollectionUpsertInput) -> bool:
        # Railway's documented semantics: `replace: true` removes every existing variable
        # of the environment before the collection is written.
        if input.replace:
            sql("DELETE FROM railway.variables WHERE environment_id = %s", (input.environmentId,))
        for name, value in dict(input.variables).items():
            sql("INSERT INTO railway.variables VALUES (%s, %s, %s) ON CONFLICT (environment_id, name) "
                "DO UPDATE SET value = EXCLUDED.value", (input.environmentId, name, str(value)))
        return True

    @strawberry.mutation
    def projectDelete(self, id: str) -> bool:
        return sql("DELETE FROM railway.projects WHERE id = %s", (id,)) > 0

    @strawberry.mutation
    def environmentDelete(self, id: str) -> bool:
        return sql("DELETE FROM railway.environments WHERE id = %s", (id,)) > 0


SCHEMA = strawberry.Schema(query=Query, mutation=Mutation,
                           config=StrawberryConfig(batching_config={"max_operations": 50}))


class Recording:
    """ASGI middleware: records every request (the shape recording.py uses), serves the
    log and the reseed endpoint, and refuses anything without the upstream token."""

    def __init__(self, app, token):
        self.app, self.token = app, token
        self.seen, self.lock = [], threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        if path == "/__seen":
            with self.lock:
                return await reply(send, 200, list(self.seen))
        if path == "/__reset":
            with self.lock:
                self.seen.clear()
            return await reply(send, 200, {"reset": True})
        if path == "/__seed":
            sql(SEED_SQL)
            return await reply(send, 200, {"seeded": True})
        headers = [[k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in scope["headers"]]
        query = scope.get("query_string", b"").decode("latin-1")
        with self.lock:
            self.seen.append({"method": scope["method"], "path": path + (f"?{query}" if query else ""),
                              "headers": headers, "body_bytes": len(body)})
        if dict(headers).get("authorization") != f"Bearer {self.token}":
            return await reply(send, 401, {"message": "upstream credential missing or wrong"})
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await self.app(scope, replay, send)


async def reply(send, status, payload):
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main():
    global DSN
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token", required=True)
    args = ap.parse_args()
    DSN = args.dsn
    sql(SCHEMA_SQL)
    sql(SEED_SQL)
    app = Recording(GraphQL(SCHEMA, graphql_ide=None), args.token)
    print(f"graphql-api listening on 127.0.0.1:{args.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
