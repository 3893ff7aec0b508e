"""`scopegate eval` and the filter run the same engine: for the same bundle and the same
request, the CLI's decision is the one the filter enforced in Envoy."""

import json

import pytest

from agree import assert_cli_agrees
from conftest import bundle

REQUESTS = [
    ("GET", "/rest/reservations?tenant_id=eq.acme", "reader", None),
    ("DELETE", "/rest/reservations?id=eq.r-17", "reader", None),
    ("DELETE", "/rest/reservations", "support", None),
    ("DELETE", "/rest/reservations?id=eq.r-2", "support", None),
    ("POST", "/rest/reservations", "support", '{"id":"r-77","tenant_id":"acme","customer":"Q"}'),
    ("DELETE", "/rest/payments?id=eq.p-1", "janitor", None),
    ("GET", "/api/v2/rentals/_table/vehicles?filter=1%3D1", "reader", None),
    ("GET", "/rest/vehicles", None, None),
    ("GET", "/rest/vehicles", "expired", None),
]


@pytest.mark.parametrize("method,path,who,body", REQUESTS)
def test_cli_eval_matches_the_filter(gateway, upstream, keys, tmp_path, method, path, who, body):
    headers = {"x-request-id": "cli-agrees"}
    if who:
        headers["authorization"] = f"Bearer {getattr(keys, who)}"
    if body is not None:
        headers["content-type"] = "application/json"
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(json.dumps(bundle(keys)))
    assert_cli_agrees(gateway.port, bundle_file, tmp_path, method, path, headers, body)
