#!/usr/bin/env bash
# Installs what `make demo` (tools/setup.sh demo) or `make test` (tools/setup.sh test) needs
# and the machine lacks; everything already there is left alone. System packages come from
# apt (as root, or through sudo); Rust toolchains and cargo-fuzz from rustup and crates.io;
# the Python side (Envoy from PyPI, the test servers) is `make venv`'s.
set -euo pipefail
what="${1:-test}"
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
updated=""
apt_install() {
  [ -n "$updated" ] || { as_root apt-get update -qq; updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  echo "setup: installed $*"
}

# The toolchain rust-toolchain.toml pins (rustup may be told not to install it on first
# use), and the module's target.
channel="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
rustup toolchain list | grep -q "^$channel" \
  || rustup toolchain install "$channel" --profile minimal -c clippy -c rustfmt -t wasm32-wasip1
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

# PostgreSQL server binaries: the demo and the end-to-end tests start their own throw-away
# cluster (as `postgres` when run as root).
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null; then
  apt_install postgresql
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi

# wasm-opt (binaryen): `make wasm` ships the module optimised (-Oz).
command -v wasm-opt >/dev/null || apt_install binaryen

[ "$what" = test ] || exit 0

rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
# The fuzz smoke run (cargo-fuzz needs nightly).
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
# wrk drives the audit load test; Node's WASI runs the engine's tests compiled to Wasm.
command -v wrk >/dev/null || apt_install wrk
command -v node >/dev/null || apt_install nodejs
# etcd: the fleet tests run a 3-member cluster (Debian's etcd-server: etcd, etcdctl).
command -v etcd >/dev/null || apt_install etcd-server
# The OCI image tests push to a real registry (Debian's docker-registry, on loopback).
command -v docker-registry >/dev/null || apt_install docker-registry
# The approval inbox's browser tests: headless Chromium and its WebDriver (Selenium drives it).
{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || apt_install chromium chromium-driver
