"""Shipping the module to Istio and Envoy Gateway, as far as this machine can go without
Kubernetes: the OCI image `make oci` builds is pushed to a real registry (Debian's
docker-registry) and pulled back the way Istio's image fetcher checks it (both layouts;
a generic single-layer image is refused); builds are reproducible; the generated WasmPlugin
validates against Istio's CRD schema (../shared/fixtures/istio); the Wasm configuration the
Istio EnvoyFilter carries is accepted by Envoy itself; the examples in deploy/ are current."""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request

import pytest

import harness
from agree import CLI

OCI = [sys.executable, str(harness.ROOT / "tools" / "oci.py")]
FIXTURES = harness.ROOT.parent / "shared" / "fixtures" / "istio"
IMAGE = "oci://registry.example.com/scopegate@sha256:" + "e" * 64


def run(*cmd, **kw):
    out = subprocess.run([*cmd], capture_output=True, text=True, timeout=120, **kw)
    return out


@pytest.fixture(scope="module")
def registry():
    r = harness.Registry().start()
    yield r
    r.stop()


def build(tmp_path, layout, name="img"):
    out = run(*OCI, "build", "--wasm", str(harness.WASM), "--out", str(tmp_path / name), "--tag", "t1",
              "--layout", layout)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), tmp_path / name


@pytest.mark.parametrize("layout", ["compat", "oci"])
def test_the_image_istio_pulls(tmp_path, registry, layout):
    digest, layout_dir = build(tmp_path, layout)
    again, _ = build(tmp_path, layout, "again")
    assert digest == again, "the same module gives the same image"
    index = json.loads((layout_dir / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    out = run(*OCI, "push", "--dir", str(layout_dir), "--to", f"{registry.host}/scopegate-{layout}:t1", "--plain-http")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == digest
    # Pulled back by digest, checked as Istio's fetcher does, the module byte for byte.
    out = run(*OCI, "check", "--from", f"{registry.host}/scopegate-{layout}@{digest}", "--plain-http",
              "--wasm", str(harness.WASM))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["variant"] == layout and got["manifest"] == digest
    assert got["module"] == "sha256:" + hashlib.sha256(harness.WASM.read_bytes()).hexdigest()
    # The registry serves the manifest under the digest a WasmPlugin pins.
    req = urllib.request.Request(f"http://{registry.host}/v2/scopegate-{layout}/manifests/t1",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Docker-Content-Digest"] == digest
        manifest = json.load(r)
    if layout == "compat":
        assert manifest["annotations"] == {"module.wasm.image/variant": "compat"}
        assert [x["mediaType"] for x in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    else:
        assert [x["mediaType"] for x in manifest["layers"]] == [
            "application/vnd.module.wasm.config.v1+json", "application/vnd.module.wasm.content.layer.v1+wasm"]


def test_a_layout_istio_refuses_is_caught(tmp_path, registry):
    """What generic wasm packaging tools push — one layer holding the raw module, no
    annotation — is what Istio refuses ("number of layers must be 2"); so does the check."""
    module = harness.WASM.read_bytes()
    config = b"{}"
    sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()  # noqa: E731
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.module.wasm.config.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.module.wasm.content.layer.v1+wasm",
                                       "digest": sha(module), "size": len(module)}]}).encode()
    d = tmp_path / "generic"
    (d / "blobs" / "sha256").mkdir(parents=True)
    for b in (module, config, manifest):
        (d / "blobs" / "sha256" / sha(b)[7:]).write_bytes(b)
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest), "size": len(manifest)}]}))
    assert run(*OCI, "push", "--dir", str(d), "--to", f"{registry.host}/generic:t1", "--plain-http").returncode == 0
    out = run(*OCI, "check", "--from", f"{registry.host}/generic:t1", "--plain-http")
    assert out.returncode != 0 and "number of layers must be 2" in out.stderr, out.stderr


def test_the_compat_layer_holds_only_plugin_wasm(tmp_path):
    digest, d = build(tmp_path, "compat")
    manifest = json.loads((d / "blobs" / "sha256" / digest[7:]).read_bytes())
    layer = (d / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        assert members[0].mtime == 0 and members[0].uid == 0
        assert tar.extractfile("plugin.wasm").read() == harness.WASM.read_bytes()


def load_all(text):
    yaml = pytest.importorskip("yaml")
    return [d for d in yaml.safe_load_all(text) if d]


def istio(*extra):
    out = run(CLI, "istio", "--bundle", str(harness.ROOT / "policies" / "demo.json"), "--image", IMAGE,
              "--gateway", "agents-gateway", "--namespace", "agents", *extra)
    assert out.returncode == 0, out.stderr
    return out.stdout


def crd_schema():
    if not FIXTURES.exists():
        pytest.skip(f"{FIXTURES} is absent: the WasmPlugin CRD check was skipped")
    [crd] = load_all((FIXTURES / "wasmplugin-crd.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return version["schema"]["openAPIV3Schema"]


def test_the_wasmplugin_validates_against_istios_crd():
    jsonschema = pytest.importorskip("jsonschema")
    schema = crd_schema()
    validator = jsonschema.Draft7Validator(schema)
    # The validator is a real check: Istio's own valid examples pass, some invalid ones fail.
    valid = load_all((FIXTURES / "wasm-valid.yaml").read_text())
    assert valid and all(not list(validator.iter_errors(d)) for d in valid)
    invalid = load_all((FIXTURES / "wasm-invalid.yaml").read_text())
    assert any(list(validator.iter_errors(d)) for d in invalid)
    [plugin] = load_all(istio("--kind", "wasmplugin"))
    errors = [e.message for e in validator.iter_errors(plugin)]
    assert not errors, errors
    spec = plugin["spec"]
    assert spec["failStrategy"] == "FAIL_CLOSE" and spec["phase"] == "AUTHZ"
    assert spec["url"] == IMAGE and spec["sha256"] == "e" * 64
    assert spec["targetRefs"] == [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "agents-gateway"}]
    # Secrets come from the proxy's environment, never inlined.
    assert {"name": "RENTALS_UPSTREAM_TOKEN", "valueFrom": "HOST"} in spec["vmConfig"]["env"]
    assert spec["pluginConfig"]["bundle"] == "rentals-demo"


def test_the_envoyfilter_carries_a_wasm_config_envoy_accepts(tmp_path):
    [ef] = load_all(istio())
    assert ef["kind"] == "EnvoyFilter"
    add, insert = ef["spec"]["configPatches"]
    assert add["applyTo"] == "EXTENSION_CONFIG" and add["patch"]["operation"] == "ADD"
    assert insert["patch"]["value"]["config_discovery"]["type_urls"] == [
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]
    wasm = add["patch"]["value"]["typed_config"]
    assert wasm["config"]["allow_on_headers_stop_iteration"] is True
    assert wasm["config"]["failure_policy"] == "FAIL_CLOSED"
    assert wasm["config"]["vm_config"]["code"]["remote"]["sha256"] == "e" * 64
    # Envoy accepts that configuration (with the module as a local file: Envoy cannot
    # fetch oci://, istio-agent does that and hands it a file).
    wasm["config"]["vm_config"]["code"] = {"local": {"filename": str(harness.WASM)}}
    config = {"static_resources": {"listeners": [{
        "name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": harness.free_port()}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "t", "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": []}]},
            "http_filters": [{"name": "scopegate", "typed_config": wasm},
                             {"name": "envoy.filters.http.router", "typed_config": {
                                 "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}]}}
    f = tmp_path / "envoy.json"
    f.write_text(json.dumps(config))
    out = run(harness.find_binary("envoy", "ENVOY_BIN"), "--mode", "validate", "-c", str(f),
              env={**os.environ, "RENTALS_UPSTREAM_TOKEN": "x", "SCOPEGATE_CHALLENGE_KEY": harness.demo_approvers()["gateway"]})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_envoy_gateway_gets_the_policy_and_the_patch_for_the_flag():
    out = run(CLI, "envoy-gateway", "--bundle", str(harness.ROOT / "policies" / "demo.json"), "--image", IMAGE,
              "--gateway", "agents-gateway", "--namespace", "agents")
    assert out.returncode == 0, out.stderr
    policy, patch = load_all(out.stdout)
    assert policy["kind"] == "EnvoyExtensionPolicy" and policy["spec"]["wasm"][0]["failOpen"] is False
    assert policy["spec"]["wasm"][0]["code"]["image"]["sha256"] == "e" * 64
    assert policy["spec"]["wasm"][0]["env"]["hostKeys"] == ["RENTALS_UPSTREAM_TOKEN", "SCOPEGATE_CHALLENGE_KEY"]
    op = patch["spec"]["jsonPatches"][0]["operation"]
    assert op["path"] == "allow_on_headers_stop_iteration" and op["value"] is True


def test_an_unpinned_image_is_refused():
    out = run(CLI, "istio", "--bundle", str(harness.ROOT / "policies" / "demo.json"),
              "--image", "oci://registry.example.com/scopegate:latest", "--gateway", "g")
    assert out.returncode != 0 and "pin it by digest" in out.stderr


def test_the_examples_in_deploy_are_current(tmp_path):
    out = run(str(harness.ROOT / "deploy" / "generate.sh"), env={**os.environ, "OUT": str(tmp_path), "SCOPEGATE_CLI": CLI})
    assert out.returncode == 0, out.stderr
    for f in sorted(tmp_path.rglob("*")):
        if f.is_file():
            rel = f.relative_to(tmp_path)
            checked_in = harness.ROOT / "deploy" / rel
            assert checked_in.exists() and checked_in.read_text() == f.read_text(), \
                f"deploy/{rel} is not current: run `make deploy-examples`"
