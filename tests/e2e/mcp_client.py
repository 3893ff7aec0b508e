"""A real MCP client (the official Python SDK) that plays a scenario against a URL and
prints what it saw as JSON. Run with the interpreter of an SDK's own virtualenv:

    .venv-mcp1/bin/python tests/e2e/mcp_client.py URL KEY STEPS_JSON [HEADERS_JSON]   # mcp 1.x: initialize, session
    .venv-mcp2/bin/python tests/e2e/mcp_client.py URL KEY STEPS_JSON [HEADERS_JSON]   # mcp 2.x: server/discover, stateless

HEADERS_JSON: more headers on every request (an approval token).

STEPS_JSON is a list of ["list_tools"], ["call", name, arguments], ["list_resources"],
["list_resource_templates"], ["read", uri], ["list_prompts"], ["get_prompt", name, arguments].
Each step reports {"ok": true, "value": …} or {"ok": false, "error": "…"}."""

import asyncio
import importlib.metadata
import json
import sys

MAJOR = int(importlib.metadata.version("mcp").split(".")[0])
STEP_TIMEOUT = 15


def plain(result):
    return json.loads(result.model_dump_json(by_alias=True, exclude_none=True))


async def run_steps(session, steps):
    out = []
    for step in steps:
        kind, args = step[0], step[1:]
        try:
            if kind == "list_tools":
                v = [t.name for t in (await asyncio.wait_for(session.list_tools(), STEP_TIMEOUT)).tools]
            elif kind == "call":
                r = await asyncio.wait_for(session.call_tool(args[0], args[1]), STEP_TIMEOUT)
                v = plain(r)
                if r.isError if hasattr(r, "isError") else r.is_error:
                    out.append({"ok": False, "error": json.dumps(v)})
                    continue
            elif kind == "list_resources":
                v = [str(r.uri) for r in (await asyncio.wait_for(session.list_resources(), STEP_TIMEOUT)).resources]
            elif kind == "list_resource_templates":
                res = await asyncio.wait_for(session.list_resource_templates(), STEP_TIMEOUT)
                v = [t.uriTemplate if hasattr(t, "uriTemplate") else t.uri_template for t in res.resourceTemplates] \
                    if hasattr(res, "resourceTemplates") else [t.uri_template for t in res.resource_templates]
            elif kind == "read":
                v = plain(await asyncio.wait_for(session.read_resource(args[0]), STEP_TIMEOUT))
            elif kind == "list_prompts":
                v = [p.name for p in (await asyncio.wait_for(session.list_prompts(), STEP_TIMEOUT)).prompts]
            elif kind == "get_prompt":
                v = plain(await asyncio.wait_for(session.get_prompt(args[0], args[1]), STEP_TIMEOUT))
            else:
                raise ValueError(f"unknown step {kind}")
            out.append({"ok": True, "value": v})
        except BaseException as e:  # the SDKs raise their own error types, or time out
            if isinstance(e, KeyboardInterrupt):
                raise
            failed = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            # A JSON-RPC error's `data` (scopegate's decision, a challenge to approve).
            data = getattr(getattr(e, "error", None), "data", None)
            if data is not None:
                failed["data"] = data
            out.append(failed)
    return out


async def main(url, key, steps, extra=None):
    headers = {"authorization": f"Bearer {key}", **(extra or {})}
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    async with create_mcp_http_client(headers=headers) as http:
        if MAJOR >= 2:
            from mcp.client.client import Client
            async with Client(streamable_http_client(url, http_client=http)) as client:
                return {"sdk": importlib.metadata.version("mcp"), "steps": await run_steps(client, steps)}
        from mcp import ClientSession
        async with streamable_http_client(url, http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                await asyncio.wait_for(session.initialize(), STEP_TIMEOUT)
                return {"sdk": importlib.metadata.version("mcp"), "steps": await run_steps(session, steps)}


if __name__ == "__main__":
    extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
    result = asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), extra))
    print(json.dumps(result))
