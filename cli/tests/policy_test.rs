//! `scopegate test` end to end: the built binary over the shipped bundles and their cases
//! (policies/), and over cases derived from them that fail in each way a user meets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

const NOW: &str = "2026-01-01T00:00:00Z";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// (exit code, stdout, stderr) of `scopegate test ARGS…`.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .current_dir(root())
        .arg("test")
        .args(args)
        .args(["--now", NOW])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A cases file in a fresh directory, from lines of policies/demo.tests.jsonl edited by
/// `(from, to)` replacements.
fn cases(name: &str, lines: &[(usize, &[(&str, &str)])]) -> PathBuf {
    let demo = std::fs::read_to_string(root().join("policies/demo.tests.jsonl")).unwrap();
    let demo: Vec<&str> = demo.lines().collect();
    let text: String = lines
        .iter()
        .map(|(i, edits)| {
            edits.iter().fold(demo[*i].to_string(), |l, (from, to)| {
                assert!(l.contains(from), "{from} is not in case {i}");
                l.replace(from, to)
            })
        })
        .map(|l| l + "\n")
        .collect();
    let dir = std::env::temp_dir().join(format!("scopegate-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cases.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// (A file per test: tests run in parallel.) Cases 0-2 of the demo bundle's own tests, then: 3 a key name the keys file lacks,
/// 4 an expected reason that is not the reason, 5 an expected decision that is not it.
fn broken(test: &str) -> PathBuf {
    cases(
        test,
        &[
            (0, &[]),
            (1, &[]),
            (2, &[]),
            (
                2,
                &[
                    ("\"demo-reader\"", "\"demo-raeder\""),
                    ("reader may not read payments", "typo in the key"),
                ],
            ),
            (
                2,
                &[
                    ("\"not covered\"", "\"not allowed\""),
                    ("reader may not read payments", "wrong reason"),
                ],
            ),
            (
                0,
                &[
                    ("\"expect\": \"allow\"", "\"expect\": \"deny\""),
                    ("reader reads reservations", "wrong decision"),
                ],
            ),
        ],
    )
}

/// Removes a case file's directory.
fn done(path: &str) {
    std::fs::remove_dir_all(Path::new(path).parent().unwrap()).unwrap();
}

#[test]
fn shipped_bundles_pass_and_report_coverage() {
    let (code, out, err) = run(&[
        "policies/railway.json",
        "policies/railway.tests.jsonl",
        "--keys",
        "policies/railway.keys",
        "--require-coverage",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("coverage: 6 of 6 grants, 4 of 4 guards exercised\n"));
    assert!(
        out.ends_with("policies/railway.json: 23 passed, 0 failed\n"),
        "{out}"
    );

    // demo: the support role's vehicle read and both guards decide no case.
    let demo = [
        "policies/demo.json",
        "policies/demo.tests.jsonl",
        "--keys",
        "policies/demo.keys",
    ];
    let (code, out, err) = run(&demo);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "coverage: 4 of 5 grants, 0 of 2 guards exercised; not exercised:\n  \
             roles[1].allow[1] (role `support`) rentals: read on vehicles\n  \
             guards[0] deny destructive on payments, *backup* (services *)\n  \
             guards[1] approval drop, admin on every resource (services *)\n"
        ),
        "{out}"
    );
    assert!(
        out.ends_with("policies/demo.json: 17 passed, 0 failed\n"),
        "{out}"
    );
    let (code, _, err) = run(&[&demo[..], &["--require-coverage"]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("not exercised"), "{err}");
}

#[test]
fn a_failed_case_says_what_differed_and_the_others_still_run() {
    let path = broken("failed");
    let path = path.to_str().unwrap();
    let (code, out, err) = run(&["policies/demo.json", path, "--keys", "policies/demo.keys"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("3 policy test(s) failed"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // The unknown key fails its own case, naming the key, where, and the keys file.
    let at = lines
        .iter()
        .position(|l| l.starts_with("FAIL typo in the key"))
        .unwrap();
    assert!(lines[at].ends_with("got -"), "{}", lines[at]);
    assert_eq!(
        lines[at + 1].trim(),
        format!(
            "{path}:4: no key named `demo-raeder` in policies/demo.keys (the --keys file; it names `demo-reader`, `demo-support`)"
        )
    );
    // The expected reason against the actual one.
    let at = lines
        .iter()
        .position(|l| l.starts_with("FAIL wrong reason"))
        .unwrap();
    assert_eq!(
        lines[at + 1].trim(),
        "expected reason containing \"not allowed\", got \"not covered: role `reader` grants no read on `payments` (service rentals)\""
    );
    // The expected decision against the actual one, with its reason and rule.
    let at = lines
        .iter()
        .position(|l| l.starts_with("FAIL wrong decision"))
        .unwrap();
    assert_eq!(
        lines[at + 1..at + 4]
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>(),
        [
            "expected decision `deny`, got `allow`",
            "reason: \"allowed by grant roles[0].allow[0] of role `reader` for read on `reservations`\"",
            "rule: roles[0].allow[0]",
        ]
    );
    // The cases after the unknown key ran; those before passed.
    assert_eq!(lines.iter().filter(|l| l.starts_with("PASS")).count(), 3);
    assert!(out.ends_with("policies/demo.json: 3 passed, 3 failed (1 could not run)\n"));

    // Without --keys, every case sent with a key says where keys come from.
    let (code, out, _) = run(&["policies/demo.json", path]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!(
        "{path}:1: the case is sent as key `demo-reader`, but no keys were given: they come from --keys FILE"
    )));
    done(path);
}

#[test]
fn filter_selects_cases_by_name() {
    let path = broken("filter");
    let path = path.to_str().unwrap();
    let base = ["policies/demo.json", path, "--keys", "policies/demo.keys"];
    let (code, out, _) = run(&[&base[..], &["--filter", "reader"]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("--filter `reader`: 3 of 6 cases selected\n"),
        "{out}"
    );
    assert!(out.ends_with("3 passed, 0 failed\n"), "{out}");
    let (code, out, err) = run(&[&base[..], &["--filter", "nothing like it"]].concat());
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(
        err.contains("--filter `nothing like it` selects none of the 6 cases"),
        "{err}"
    );
    done(path);
}

#[test]
fn json_output_is_one_document() {
    let path = broken("json");
    let path = path.to_str().unwrap();
    let (code, out, _) = run(&[
        "policies/demo.json",
        path,
        "--keys",
        "policies/demo.keys",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["totals"],
        serde_json::json!({"cases": 6, "selected": 6, "passed": 3, "failed": 3, "errors": 1})
    );
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let first = &results[0];
    assert_eq!(first["name"], "reader reads reservations");
    assert_eq!(first["expected"]["decision"], "allow");
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["rule"], "roles[0].allow[0]");
    assert_eq!(first["passed"], true);
    assert!(first["error"].is_null());
    let typo = &results[3];
    assert_eq!(typo["passed"], false);
    assert!(typo["decision"].is_null());
    assert!(typo["error"]
        .as_str()
        .unwrap()
        .contains("no key named `demo-raeder`"));
    let wrong = &results[5];
    assert_eq!(
        (&wrong["expected"]["decision"], &wrong["decision"]),
        (&serde_json::json!("deny"), &serde_json::json!("allow"))
    );
    assert_eq!(
        wrong["differences"][0],
        "expected decision `deny`, got `allow`"
    );
    // Coverage: what the cases that ran (reader only) left out.
    let rules = |k: &str| -> Vec<String> {
        doc["coverage"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["rule"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        rules("grants_not_exercised"),
        [
            "roles[1].allow[0]",
            "roles[1].allow[1]",
            "roles[1].allow[2]"
        ]
    );
    assert_eq!(rules("guards_not_exercised"), ["guards[0]", "guards[1]"]);
    assert_eq!(doc["coverage"]["grants"], 5);
    done(path);
}

#[test]
fn http_case_folders_run_too() {
    let dir = std::env::temp_dir().join(format!("scopegate-test-{}-http", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("01-read.http"),
        "# expect: allow\n# as: demo-reader\nGET /rest/reservations?tenant_id=eq.acme HTTP/1.1\nHost: gateway.test\n\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("02-unknown.http"),
        "# expect: deny\n# as: nobody\nGET /rest/payments HTTP/1.1\nHost: gateway.test\n\n",
    )
    .unwrap();
    let (code, out, _) = run(&[
        "policies/demo.json",
        dir.to_str().unwrap(),
        "--keys",
        "policies/demo.keys",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("PASS 01-read"), "{out}");
    assert!(
        out.contains(&format!(
            "{}: no key named `nobody` in policies/demo.keys",
            dir.join("02-unknown.http").display()
        )),
        "{out}"
    );
    assert!(
        out.ends_with("1 passed, 1 failed (1 could not run)\n"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
