#!/usr/bin/env python3
"""engine/src/decode/sql/fast.rs wraps sqlparser's PostgreSqlDialect and must forward every
method PostgreSqlDialect overrides (a method left out would silently take the Dialect trait's
default, not PostgreSQL's behaviour). This compares the forwarded list with the pinned
sqlparser's source, found through `cargo metadata`. Run by `make lint`."""
import json, pathlib, re, subprocess, sys

root = pathlib.Path(__file__).resolve().parents[2]
meta = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1", "--manifest-path", str(root / "Cargo.toml")],
    check=True, capture_output=True, text=True).stdout)
pkgs = [p for p in meta["packages"] if p["name"] == "sqlparser"]
if len(pkgs) != 1:
    sys.exit(f"check-dialect: expected one sqlparser package, found {len(pkgs)}")
src = pathlib.Path(pkgs[0]["manifest_path"]).parent / "src" / "dialect" / "postgresql.rs"
impl = re.search(r"^impl Dialect for PostgreSqlDialect \{(.*?)^\}", src.read_text(), re.S | re.M)
if not impl:
    sys.exit(f"check-dialect: no `impl Dialect for PostgreSqlDialect` in {src}")
theirs = set(re.findall(r"^    fn (\w+)", impl.group(1), re.M))

ours_src = (root / "engine/src/decode/sql/fast.rs").read_text()
block = re.search(r"// BEGIN forwarded.*?forward! \{(.*?)\}\s*// END forwarded", ours_src, re.S)
if not block:
    sys.exit("check-dialect: no forwarded block in sql/fast.rs")
ours = set(re.findall(r"^\s*(\w+)\(", block.group(1), re.M))
# Methods the wrapper defines itself (and forwards inside): dialect(), parse_prefix().
own = {"dialect", "parse_prefix"}
missing, extra = theirs - ours - own, ours - theirs
if missing or extra:
    sys.exit(f"check-dialect: sqlparser {pkgs[0]['version']}: forward these: {sorted(missing)}; "
             f"not overridden by PostgreSqlDialect: {sorted(extra)}")
print(f"check-dialect: sql::fast::Postgres forwards all {len(theirs)} methods PostgreSqlDialect "
      f"{pkgs[0]['version']} overrides")
