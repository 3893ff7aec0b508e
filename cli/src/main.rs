//! `scopegate`: the command line over the filter's own engine.
//!
//! Exit codes: 0 success (for `eval`: the request was evaluated, whatever the decision;
//! for `approve`: a token was printed), 1 the bundle or input was rejected (or the
//! approval declined), 2 usage error (clap).

mod approve;
mod approver;
mod audit;
mod common;
mod envoy;
mod eval;
mod explain;
mod key;
mod lint;
mod mesh;
mod policy_test;
mod sql;

use approve::*;
use audit::*;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use common::*;
use envoy::*;
use eval::*;
use explain::*;
use key::*;
use lint::*;
use mesh::*;
use policy_test::*;
use scopegate_engine::approval;
use scopegate_engine::bundle::GraphqlSchema;
use scopegate_engine::decode::sql::SqlDecoder;
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::ledger::{settle, MemoryLedger};
use scopegate_engine::time::{format_rfc3339_millis, parse_rfc3339};
use scopegate_engine::verdict::op_json;
use scopegate_engine::{policy, Engine, HeaderList, Secrets};
use serde_json::json;
use sql::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "scopegate",
    version,
    about = "Scoped keys, decoded requests and friction for the APIs AI agents call"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a complete Envoy configuration from a bundle and its upstreams: the filter
    /// with the bundle embedded, FAIL_CLOSED, the pause flag, one cluster per service,
    /// routes that follow scopegate's decision, the access log with its fields. Check it
    /// with `envoy --mode validate -c envoy.yaml`.
    Envoy(Box<EnvoyArgs>),
    /// Put a new bundle in front of running Envoys (rendered with --reload-dir): checked,
    /// then swapped into the file Envoy watches; no restart.
    Reload(ReloadArgs),
    /// Istio manifests for a dedicated Gateway: the module from its pinned OCI image, the
    /// bundle as its configuration, secrets from the proxy's environment (an EnvoyFilter
    /// that can set everything scopegate needs, or `--kind wasmplugin`).
    Istio(Box<MeshArgs>),
    /// Envoy Gateway manifests: an EnvoyExtensionPolicy, and the EnvoyPatchPolicy that sets
    /// what it cannot (allow_on_headers_stop_iteration).
    EnvoyGateway(Box<MeshArgs>),
    /// Manage agent keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Key pairs for signed approvals (bundle `approvals`).
    Approver {
        #[command(subcommand)]
        command: ApproverCommand,
    },
    /// Check a bundle exactly as the filter's configure step does (upstream secrets
    /// and the approval key are not read). Prints every problem with its JSON path; exit
    /// 1 if any. Then warnings a reviewer needs: effectively-root keys, grants guards
    /// take away, grants that can never match (unqualified SQL tables, names outside a
    /// GraphQL schema or a given list, near-miss MCP tools), unused roles and services,
    /// keys without expiry or already expired, wildcard resources on destructive actions.
    Lint {
        /// Bundle JSON file.
        bundle: PathBuf,
        /// Attach a GraphQL schema to a service: SERVICE=FILE, an introspection result
        /// (`.json`) or SDL (any other extension). Repeatable.
        #[arg(long = "schema", value_name = "SERVICE=FILE")]
        schemas: Vec<String>,
        /// The names a service has, one per line — tables (as agents write them), MCP
        /// tools, prompts and resources: grants naming none of them are warned about.
        /// Repeatable.
        #[arg(long = "tables", value_name = "SERVICE=FILE")]
        tables: Vec<String>,
        /// Exit 1 when there are warnings (CI).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Decide one raw HTTP/1.1 request (request line, headers, blank line, body) the
    /// way the filter would, and print the decision as JSON.
    Eval {
        /// Bundle JSON file.
        bundle: PathBuf,
        /// Raw request file; `-` reads stdin.
        #[arg(long)]
        request: PathBuf,
        /// Evaluation time (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
        /// Environment of the filter instance (default: the bundle's).
        #[arg(long)]
        env: Option<String>,
        /// Attach a GraphQL schema to a service (as for `lint`). Repeatable.
        #[arg(long = "schema", value_name = "SERVICE=FILE")]
        schemas: Vec<String>,
    },
    /// Approve one challenged request (a 428 with `"friction": "approval"`): shows what
    /// it does, then prints an approval token — the only output on stdout — for the
    /// agent to retry the identical request with (`x-scopegate-approval: <token>`).
    /// Run by a human holding the approval key; the token allows that request once.
    Approve(Approval),
    /// Policy tests: run request cases through the engine and compare decisions. CASES is
    /// a JSON Lines file (`{"name", "as", "method", "path", "headers", "body", "expect",
    /// "reason"}`; `headers` may be a list of `[name, value]` pairs to repeat a name,
    /// `body_base64` gives a body that is not text) or a folder of `.http` files (raw requests after `# expect: deny`,
    /// `# as: KEY-NAME`, `# reason: text` lines). Prints a table (a failed case says what
    /// differed, or why it could not run: a key name the `--keys` file lacks fails that
    /// case only), the grants and guards no case exercised, and `N passed, M failed`;
    /// `--format json` prints all of it as one JSON document. Exit 1 when any case fails.
    Test(TestArgs),
    /// What each key can actually do: its role, environments, expiry, and per service
    /// every grant it holds, what guards take away, and a blast-radius line per
    /// destructive action. With a GraphQL schema (`--schema`) or a table list
    /// (`--tables SERVICE=FILE`, one name per line) patterns are expanded into the
    /// concrete fields/tables they reach, each run through the filter's own evaluation.
    Explain {
        /// Bundle JSON file.
        bundle: PathBuf,
        /// Only this key.
        #[arg(long)]
        key: Option<String>,
        /// Only the keys of this role (or the role itself if it has none).
        #[arg(long)]
        role: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Attach a GraphQL schema to a service (as for `lint`). Repeatable.
        #[arg(long = "schema", value_name = "SERVICE=FILE")]
        schemas: Vec<String>,
        /// The tables (resource names) of a service, one per line. Repeatable.
        #[arg(long = "tables", value_name = "SERVICE=FILE")]
        tables: Vec<String>,
    },
    /// Print the JSON Schema of bundle v1, generated from the engine's own types (the
    /// committed copy is schema/bundle-v1.schema.json; `make policies` checks it is current).
    Schema,
    /// Show the operations the SQL decoder finds in SQL read from stdin, as one JSON
    /// object: {"ok", "operations", "error"}.
    Sql {
        /// postgres, mysql, sqlite or generic.
        #[arg(long, default_value = "postgres")]
        dialect: String,
        /// Schema unqualified names resolve to (default: the dialect's).
        #[arg(long)]
        default_schema: Option<String>,
        /// Functions to treat as pure, besides the built-in list (repeatable).
        #[arg(long = "safe-function")]
        safe_functions: Vec<String>,
        /// Read JSON Lines (one JSON string of SQL per line); print one result per line.
        #[arg(long)]
        batch: bool,
    },
    /// Audit records at the sink.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check chained records (bundle `audit.chain`) in a JSON Lines file: every stream's
    /// sequence has no gap or repeat and each record links to the one before it. Exit 1
    /// on any problem.
    Verify {
        /// The records, one per line (`-` for stdin); streams may interleave.
        file: PathBuf,
        /// Environment variable holding the audit key (`audit.key_env`) of a keyed chain.
        #[arg(long)]
        key_env: Option<String>,
        /// The file may start in the middle of streams (a rotated log).
        #[arg(long)]
        partial: bool,
    },
}

#[derive(Subcommand)]
enum ApproverCommand {
    /// A key pair for one approver: the private key into a file only they keep, the
    /// bundle line (name and public key) on stdout.
    New {
        /// The approver's name, as challenges and audit records will show it.
        #[arg(long)]
        name: String,
        /// Where the private key goes (created, never overwritten; mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// The gateways' challenge-signing key: its seed into a file (the Wasm VM's
    /// SCOPEGATE_CHALLENGE_KEY), the bundle's `approvals.challenge_key` on stdout.
    Gateway {
        /// Where the private key goes (created, never overwritten; mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print a fresh random key (give it to the agent) and the bundle line that admits
    /// it (only its SHA-256 goes into the bundle).
    New {
        /// Key id, as audit records will name it.
        #[arg(long)]
        id: String,
        /// Role the key maps to.
        #[arg(long)]
        role: String,
        /// Environments the key is valid in (repeatable).
        #[arg(long = "env")]
        environments: Vec<String>,
        /// Expiry (RFC 3339); a time already past is refused.
        #[arg(long)]
        expires: Option<String>,
        /// The bundle the key is for: its role must exist there (and its id must be new).
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Key {
            command:
                KeyCommand::New {
                    id,
                    role,
                    environments,
                    expires,
                    bundle,
                },
        } => key_new(
            &id,
            &role,
            &environments,
            expires.as_deref(),
            bundle.as_deref(),
        ),
        Command::Approver {
            command: ApproverCommand::New { name, out },
        } => approver::approver_new(&name, &out),
        Command::Approver {
            command: ApproverCommand::Gateway { out },
        } => approver::approver_gateway(&out),
        Command::Lint {
            bundle,
            schemas,
            tables,
            deny_warnings,
        } => lint(&bundle, &schemas, &tables, deny_warnings),
        Command::Eval {
            bundle,
            request,
            now,
            env,
            schemas,
        } => eval(&bundle, &request, now.as_deref(), env.as_deref(), &schemas),
        Command::Approve(a) => approve(&a),
        Command::Envoy(a) => envoy(&a),
        Command::Reload(a) => reload(&a),
        Command::Istio(a) => istio(&a),
        Command::EnvoyGateway(a) => envoy_gateway(&a),
        Command::Schema => schema(),
        Command::Explain {
            bundle,
            key,
            role,
            format,
            schemas,
            tables,
        } => explain(
            &bundle,
            key.as_deref(),
            role.as_deref(),
            format,
            &schemas,
            &tables,
        ),
        Command::Test(a) => policy_test(&a),
        Command::Sql {
            dialect,
            default_schema,
            safe_functions,
            batch,
        } => sql(&dialect, default_schema, safe_functions, batch),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    file,
                    key_env,
                    partial,
                },
        } => audit_verify(&file, key_env.as_deref(), partial),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_requests() {
        let (h, body) = parse_raw_request(
            b"DELETE /rest/reservations?id=eq.1 HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: k\r\nx-api-key: k2\r\nContent-Length: 2\r\n\r\n{}trailing",
        )
        .unwrap();
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                ":method",
                ":path",
                ":authority",
                "x-api-key",
                "x-api-key",
                "content-length"
            ]
        );
        assert_eq!(body, b"{}");
        let (h, _) =
            parse_raw_request(b"GET http://gw.test:8080/x HTTP/1.1\nHost: other\n\n").unwrap();
        assert_eq!(h[2].1, b"gw.test:8080");
        assert!(parse_raw_request(b"GET /x\r\n\r\n").is_err());
        assert!(parse_raw_request(b"GET /x HTTP/1.1\r\nbroken\r\n\r\n").is_err());
    }

    #[test]
    fn http_case_folders() {
        let dir = std::env::temp_dir().join(format!("scopegate-cases-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("01-delete.http"),
            "# expect: deny\n# as: reader\n# reason: not covered\nDELETE /rest/x?id=eq.1 HTTP/1.1\nHost: gw\n\n",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let cases = load_cases(&dir).unwrap();
        assert_eq!(cases.len(), 1);
        let c = &cases[0];
        assert_eq!(
            (
                c.name.as_str(),
                c.expect.as_str(),
                c.reason.as_deref(),
                c.key.as_deref()
            ),
            ("01-delete", "deny", Some("not covered"), Some("reader"))
        );
        // The credential goes after the request's own headers, when the case runs.
        assert_eq!(c.key_at, c.headers.len());
        assert_eq!(c.headers[0].1, b"DELETE");
        std::fs::write(dir.join("02-bad.http"), "GET / HTTP/1.1\n\n").unwrap();
        assert!(load_cases(&dir).unwrap_err().contains("no `# expect:`"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
