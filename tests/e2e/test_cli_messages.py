"""What the CLI tells an operator on the mistakes issue 23 lists: a key minted for a role the
bundle lacks or with an expiry already past, a YAML file or a byte-order mark given as a
bundle, keys that expired long ago passing `lint --deny-warnings`, and the secrets a bundle
needs from the gateway's environment."""

import json
import subprocess

import harness
from agree import CLI

DEMO = harness.ROOT / "policies" / "demo.json"


def cli(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)


def test_key_new_refuses_a_past_expiry_and_an_unknown_role():
    out = cli("key", "new", "--id", "k", "--role", "demo-reader", "--expires", "2020-01-01T00:00:00Z")
    assert out.returncode == 1 and "already past" in out.stderr, out.stderr
    out = cli("key", "new", "--id", "k", "--role", "nope", "--bundle", str(DEMO))
    assert out.returncode == 1 and "`nope` is not a role" in out.stderr, out.stderr
    role = json.loads(DEMO.read_text())["roles"][0]["name"]
    existing = json.loads(DEMO.read_text())["keys"][0]["id"]
    out = cli("key", "new", "--id", existing, "--role", role, "--bundle", str(DEMO))
    assert out.returncode == 1 and "already has a key" in out.stderr, out.stderr
    out = cli("key", "new", "--id", "new-agent", "--role", role, "--bundle", str(DEMO),
              "--expires", "2099-01-01T00:00:00Z")
    assert out.returncode == 0 and "sgk_" in out.stdout, out.stderr


def test_lint_says_what_a_file_that_is_not_a_json_bundle_is(tmp_path):
    for name, data, says in (("empty.json", b"", "empty"),
                             ("bom.json", b"\xef\xbb\xbf" + DEMO.read_bytes(), "byte-order mark"),
                             ("bundle.yaml", b"bundle: demo\nversion: 1\n", "looks like YAML")):
        f = tmp_path / name
        f.write_bytes(data)
        out = cli("lint", str(f))
        assert out.returncode == 1 and says in out.stderr, (name, out.stderr)


def test_lint_fails_expired_keys_under_deny_warnings_and_lists_the_secrets(tmp_path):
    b = json.loads(DEMO.read_text())
    b["keys"][0]["expires"] = "2021-06-01T00:00:00Z"
    f = tmp_path / "b.json"
    f.write_text(json.dumps(b))
    out = cli("lint", str(f), "--deny-warnings")
    assert out.returncode == 1, out.stdout
    assert f"key `{b['keys'][0]['id']}` expired at 2021-06-01T00:00:00Z" in out.stdout, out.stdout
    out = cli("lint", str(DEMO))
    assert out.returncode == 0
    assert "must be given (from its environment): RENTALS_UPSTREAM_TOKEN, SCOPEGATE_CHALLENGE_KEY" in out.stdout


def test_lint_finds_grants_that_never_match_and_explain_names_tables_as_eval(tmp_path):
    """An unqualified table on a SQL service whose decoder qualifies names, a grant naming a
    table the service does not have (given its list), a near-miss tool: warnings that fail
    --deny-warnings. explain given unqualified tables reports what eval allows."""
    mcp = harness.ROOT / "policies" / "mcp.json"
    b = json.loads(mcp.read_text())
    b["roles"][0]["allow"][3]["resources"] = ["reservations", "public.vehicles"]
    f = tmp_path / "b.json"
    f.write_text(json.dumps(b))
    out = cli("lint", str(f), "--deny-warnings")
    assert out.returncode == 1 and "resource `reservations` can never match on SQL service `rentals-sql`" in out.stdout
    assert "write `public.reservations`" in out.stdout
    tables = tmp_path / "tables.txt"
    tables.write_text("reservations\n# a comment\nvehicles\n")
    out = cli("lint", str(mcp), "--tables", f"rentals-sql={tables}", "--deny-warnings")
    assert out.returncode == 0, out.stdout + out.stderr
    tables.write_text("vehicles\n")
    out = cli("lint", str(mcp), "--tables", f"rentals-sql={tables}")
    assert "resource `public.reservations` matches nothing service `rentals-sql` has" in out.stdout, out.stdout
    # explain with unqualified names: named as the decoder binds them, so the agent's
    # reach on rentals-sql is reported (it used to read "reaches nothing").
    tables.write_text("reservations\nvehicles\n")
    out = cli("explain", str(mcp), "--role", "agent", "--tables", f"rentals-sql={tables}")
    assert out.returncode == 0, out.stderr
    assert "reservations → public.reservations" in out.stdout
    assert "update no friction: 1 — public.reservations" in out.stdout, out.stdout
