#!/usr/bin/env bash
# Regenerates the examples in deploy/ from policies/demo.json with the scopegate CLI
# (`make deploy-examples`; tests/e2e/test_mesh.py fails when they are not current).
# The image digest is a placeholder: pin yours (`make oci REGISTRY=…` prints it).
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${SCOPEGATE_CLI:-target/release/scopegate}
IMAGE="oci://registry.example.com/scopegate@sha256:$(printf 'e%.0s' $(seq 64))"
BUNDLE=policies/demo.json
OUT=${OUT:-deploy}
mkdir -p "$OUT/istio" "$OUT/envoy-gateway" "$OUT/envoy"
"$CLI" istio --bundle "$BUNDLE" --image "$IMAGE" --gateway agents-gateway --namespace agents > "$OUT/istio/envoyfilter.yaml"
"$CLI" istio --bundle "$BUNDLE" --image "$IMAGE" --gateway agents-gateway --namespace agents --kind wasmplugin > "$OUT/istio/wasmplugin.yaml"
"$CLI" envoy-gateway --bundle "$BUNDLE" --image "$IMAGE" --gateway agents-gateway --namespace agents > "$OUT/envoy-gateway/scopegate.yaml"
"$CLI" envoy --bundle "$BUNDLE" --upstream rentals=rentals-api.internal:8080 --upstream rentals-df=dreamfactory.internal:80 \
  --wasm /etc/scopegate/scopegate_filter.wasm --access-log /dev/stdout --reload-dir /etc/scopegate/filter --out "$OUT/envoy" 2>/dev/null
