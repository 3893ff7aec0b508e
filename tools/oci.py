#!/usr/bin/env python3
"""The scopegate module as an OCI image Istio (and Envoy Gateway) can pull.

    tools/oci.py build --wasm target/.../scopegate_filter.wasm --out target/oci --tag 0.1.0 [--layout compat|oci]
    tools/oci.py push  --dir target/oci --to 127.0.0.1:5000/scopegate:0.1.0 [--plain-http]
    tools/oci.py check --from 127.0.0.1:5000/scopegate@sha256:… [--plain-http] [--wasm FILE]

`build` writes an OCI image layout directory (oci-layout, index.json, blobs/sha256/…) and
prints the manifest digest — what a WasmPlugin pins (`url: oci://…@sha256:<digest>`; for
oci:// Istio compares its `sha256` with the manifest's digest, not the module's). Two
layouts, both ones Istio accepts:

- `compat` (default): one `application/vnd.oci.image.layer.v1.tar+gzip` layer holding
  `plugin.wasm`, the manifest annotated `module.wasm.image/variant=compat` — what standard
  registries and tools handle.
- `oci`: exactly two layers, `application/vnd.module.wasm.config.v1+json` (the runtime config)
  and `application/vnd.module.wasm.content.layer.v1+wasm` (the raw module).

Builds are reproducible: the same module gives the same digests (no timestamps, fixed
ownership and modes; the compat layer's gzip bytes with the same zlib). `push` speaks the registry HTTP API (blob upload POST + PUT, manifest
PUT) without authentication — for a registry that needs it, copy the layout with a tool that
holds your credentials (`skopeo copy oci:target/oci:TAG docker://REGISTRY/REPO:TAG`), the
digest stays the same; `check` pulls the manifest and blobs back and checks them the way Istio's image
fetcher does: media types, layer count, the annotation, digests, and a module that starts
with the Wasm magic. Standard library only.
"""

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
WASM_CONTENT = "application/vnd.module.wasm.content.layer.v1+wasm"
VARIANT = "module.wasm.image/variant"
WASM_MAGIC = b"\0asm"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type, data, annotations=None):
    d = {"mediaType": media_type, "digest": sha(data), "size": len(data)}
    if annotations:
        d["annotations"] = annotations
    return d


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def plugin_tar(module):
    """A tar holding plugin.wasm, reproducible: fixed time, owner and mode."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size, info.mode, info.mtime, info.uid, info.gid = len(module), 0o644, 0, 0, 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(module))
    return raw.getvalue()


def gzipped(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return out.getvalue()


def image(module, layout):
    """(manifest bytes, {digest: blob bytes}) of the module in `layout`."""
    if not module.startswith(WASM_MAGIC):
        raise SystemExit("not a Wasm module (no \\0asm magic)")
    runtime = canonical({"type": "envoy_proxy", "abi_version": "proxy_abi_version_0_2_1",
                         "config": {"root_ids": ["scopegate"]}})
    blobs = {}
    if layout == "compat":
        tar = plugin_tar(module)
        layer = gzipped(tar)
        config = canonical({"architecture": "wasm", "os": "wasip1",
                            "rootfs": {"type": "layers", "diff_ids": [sha(tar)]},
                            "config": {}})
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                    "config": descriptor(IMAGE_CONFIG, config),
                    "layers": [descriptor(TAR_GZIP, layer)],
                    "annotations": {VARIANT: "compat"}}
        blobs[sha(config)], blobs[sha(layer)] = config, layer
    elif layout == "oci":
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                    "config": descriptor(WASM_CONFIG, runtime),
                    "layers": [descriptor(WASM_CONFIG, runtime, {"org.opencontainers.image.title": "runtime-config.json"}),
                               descriptor(WASM_CONTENT, module, {"org.opencontainers.image.title": "plugin.wasm"})]}
        blobs[sha(runtime)], blobs[sha(module)] = runtime, module
    else:
        raise SystemExit(f"unknown layout {layout}: compat or oci")
    return canonical(manifest), blobs


def build(args):
    module = Path(args.wasm).read_bytes()
    manifest, blobs = image(module, args.layout)
    out = Path(args.out)
    (out / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for digest, data in {**blobs, sha(manifest): manifest}.items():
        (out / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    (out / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{**descriptor(MANIFEST, manifest),
                            "annotations": {"org.opencontainers.image.ref.name": args.tag}}]}
    (out / "index.json").write_text(json.dumps(index, indent=2))
    print(sha(manifest))
    print(f"{args.layout} layout, module {sha(module)} ({len(module)} bytes): {out}", file=sys.stderr)


def split_ref(ref):
    """`host:port/repo:tag` or `host:port/repo@sha256:…` → (host, repo, reference)."""
    host, _, rest = ref.partition("/")
    if "@" in rest:
        repo, _, reference = rest.partition("@")
    else:
        repo, _, reference = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
    if not host or not repo or not reference:
        raise SystemExit(f"`{ref}`: expected HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:…")
    return host, repo, reference


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def push(args):
    layout = Path(args.dir)
    index = json.loads((layout / "index.json").read_text())
    mdesc = index["manifests"][0]
    blob = lambda d: (layout / "blobs" / "sha256" / d.split(":")[1]).read_bytes()  # noqa: E731
    manifest = blob(mdesc["digest"])
    if sha(manifest) != mdesc["digest"]:
        raise SystemExit("the layout's manifest does not match its digest")
    m = json.loads(manifest)
    host, repo, tag = split_ref(args.to)
    base = f"{'http' if args.plain_http else 'https'}://{host}/v2/{repo}"
    for d in {x["digest"] for x in [m["config"], *m["layers"]]}:
        data = blob(d)
        if request("HEAD", f"{base}/blobs/{d}")[0] == 200:
            continue
        status, headers, body = request("POST", f"{base}/blobs/uploads/")
        if status != 202:
            raise SystemExit(f"blob upload refused: {status} {body[:200]!r}")
        location = headers.get("Location") or headers.get("location")
        if not location:
            raise SystemExit("the registry answered the upload without a Location")
        if location.startswith("/"):
            location = f"{'http' if args.plain_http else 'https'}://{host}{location}"
        sep = "&" if "?" in location else "?"
        status, _, body = request("PUT", f"{location}{sep}digest={d}", data,
                                  {"Content-Type": "application/octet-stream"})
        if status != 201:
            raise SystemExit(f"blob {d}: {status} {body[:200]!r}")
    status, headers, body = request("PUT", f"{base}/manifests/{tag}", manifest, {"Content-Type": m["mediaType"]})
    if status != 201:
        raise SystemExit(f"manifest: {status} {body[:200]!r}")
    got = headers.get("Docker-Content-Digest") or headers.get("docker-content-digest")
    if got and got != sha(manifest):
        raise SystemExit(f"the registry stored {got}, not {sha(manifest)}")
    print(sha(manifest))
    print(f"pushed {host}/{repo}:{tag} — pin it as oci://{host}/{repo}@{sha(manifest)}", file=sys.stderr)


def check(args):
    """Pulls as Istio's image fetcher does; exit 1 with the reason if Istio would refuse."""
    host, repo, reference = split_ref(getattr(args, "from"))
    base = f"{'http' if args.plain_http else 'https'}://{host}/v2/{repo}"
    status, _, manifest = request("GET", f"{base}/manifests/{reference}", headers={"Accept": MANIFEST})
    if status != 200:
        raise SystemExit(f"manifest: {status}")
    if reference.startswith("sha256:") and sha(manifest) != reference:
        raise SystemExit("the manifest is not the pinned digest")
    m = json.loads(manifest)

    def pull(d):
        s, _, data = request("GET", f"{base}/blobs/{d['digest']}")
        if s != 200 or sha(data) != d["digest"] or len(data) != d["size"]:
            raise SystemExit(f"blob {d['digest']}: {s}, or not what its descriptor says")
        return data

    layers = m.get("layers", [])
    if m["config"]["mediaType"] == WASM_CONFIG:
        if len(layers) != 2:
            raise SystemExit("number of layers must be 2")
        content = [x for x in layers if x["mediaType"] == WASM_CONTENT]
        if len(content) != 1:
            raise SystemExit("no wasm content layer")
        module = pull(content[0])
        variant = "oci"
    else:
        if not layers or layers[-1]["mediaType"] != TAR_GZIP:
            raise SystemExit("the last layer is not tar+gzip")
        if m.get("annotations", {}).get(VARIANT) != "compat":
            raise SystemExit(f"no {VARIANT}=compat annotation")
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(pull(layers[-1])))) as tar:
            member = tar.extractfile("plugin.wasm")
            if member is None:
                raise SystemExit("no plugin.wasm in the last layer")
            module = member.read()
        variant = "compat"
    if not module.startswith(WASM_MAGIC):
        raise SystemExit("the module does not start with the Wasm magic")
    if args.wasm and Path(args.wasm).read_bytes() != module:
        raise SystemExit(f"the image holds another module than {args.wasm}")
    print(json.dumps({"manifest": sha(manifest), "variant": variant, "module": sha(module), "bytes": len(module)}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--wasm", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--tag", default="latest")
    b.add_argument("--layout", default="compat", choices=("compat", "oci"))
    u = sub.add_parser("push")
    u.add_argument("--dir", required=True)
    u.add_argument("--to", required=True)
    u.add_argument("--plain-http", action="store_true")
    c = sub.add_parser("check")
    c.add_argument("--from", required=True)
    c.add_argument("--plain-http", action="store_true")
    c.add_argument("--wasm")
    args = p.parse_args()
    {"build": build, "push": push, "check": check}[args.command](args)


if __name__ == "__main__":
    main()
