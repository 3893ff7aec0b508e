//! The contract between `fleet::Settlement` and a real etcd: every body the filter sends,
//! sent to etcd's JSON gateway, does what the settlement believes. etcd ignores unknown
//! fields silently (a misspelt `compare` runs with no comparison), so only a real server
//! can tell. Needs the `etcd` binary (Debian's etcd-server, or ETCD_BIN): run by `make e2e`
//! (`cargo test -p scopegate-engine --test etcd_contract -- --ignored`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::fleet::{EtcdStore, Next, Settlement, MAX_ATTEMPTS};
use scopegate_engine::ledger::Spend;
use scopegate_engine::verdict::{BudgetUse, Refusal};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Etcd {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcd() -> Etcd {
    let bin = std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into());
    let (port, peer) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("scopegate-etcd-contract-{port}"));
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{peer}");
    let child = Command::new(&bin)
        .args(["--name", "c", "--data-dir"])
        .arg(&dir)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("c={peer}")])
        .args(["--logger=zap", "--log-outputs", "stderr"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start `{bin}` ({e}): install etcd-server or set ETCD_BIN")
        });
    let e = Etcd { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, body)) = post(e.port, "GET", "/health", "") {
            if body.contains("true") {
                return e;
            }
        }
        assert!(Instant::now() < deadline, "etcd did not become healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.1 request, the connection closed after it: (status, body).
fn post(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: etcd\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn store(prefix: &str) -> EtcdStore {
    EtcdStore {
        cluster: "etcd".into(),
        authority: "etcd".into(),
        prefix: prefix.into(),
        timeout_ms: 1000,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Drives a settlement against the server to its end, counting the calls it made.
fn settle(port: u16, store: &EtcdStore, spend: Spend, now: i64) -> (Next, u32) {
    let (mut s, mut call) = Settlement::start(store, spend, now);
    let mut calls = 0;
    loop {
        calls += 1;
        let answer = post(port, "POST", call.path, &call.body).ok();
        let next = match &answer {
            Some((status, body)) => s.answer(Some(*status), body.as_bytes()),
            None => s.answer(None, b""),
        };
        match next {
            Next::Call(c) => call = c,
            done => return (done, calls),
        }
    }
}

fn budget(key: &str, limit: u32, now: i64) -> BudgetUse {
    BudgetUse {
        key: key.into(),
        limit,
        window_ms: 3_600_000,
        per: "1h".into(),
        cost: 1,
        now_ms: now,
    }
}

fn nonce(n: &str, now: i64) -> Spend {
    Spend {
        nonces: vec![(n.into(), now / 1000 + 300)],
        budget: None,
    }
}

#[test]
#[ignore = "needs etcd: make e2e"]
fn every_body_the_filter_sends_does_what_it_believes() {
    let e = etcd();
    let now = now_ms();
    let st = store("contract/");

    // A nonce: claimed once (the first put grants the lease), refused the second time.
    let (first, calls) = settle(e.port, &st, nonce("n-1", now), now);
    assert_eq!(first, Next::Settled);
    assert_eq!(calls, 3, "txn, lease grant, txn");
    let (again, _) = settle(e.port, &st, nonce("n-1", now), now);
    assert!(
        matches!(again, Next::Refused(Refusal::BadProof(ref r)) if r.contains("already used")),
        "{again:?}"
    );
    // The key is in etcd under a lease that outlives the token.
    let key = base64_of("contract/scopegate:nonce:n-1");
    let (_, range) = post(
        e.port,
        "POST",
        "/v3/kv/range",
        &format!(r#"{{"key":"{key}"}}"#),
    )
    .unwrap();
    let range: Value = serde_json::from_str(&range).unwrap();
    let lease = range["kvs"][0]["lease"].as_str().unwrap().to_string();
    let (_, ttl) = post(
        e.port,
        "POST",
        "/v3/lease/timetolive",
        &format!(r#"{{"ID":"{lease}"}}"#),
    )
    .unwrap();
    let ttl: Value = serde_json::from_str(&ttl).unwrap();
    let ttl: i64 = ttl["TTL"].as_str().unwrap().parse().unwrap();
    assert!(ttl >= 300, "the lease outlives the token's 300 s: {ttl}");

    // Two nonces together: one used already refuses both, and burns the other one not.
    let both = Spend {
        nonces: vec![
            ("n-2".into(), now / 1000 + 300),
            ("n-1".into(), now / 1000 + 300),
        ],
        budget: None,
    };
    assert!(matches!(
        settle(e.port, &st, both, now).0,
        Next::Refused(Refusal::BadProof(_))
    ));
    assert_eq!(settle(e.port, &st, nonce("n-2", now), now).0, Next::Settled);

    // A budget of 2: spent, spent (the second a compare-and-set on the first's
    // revision), then over. A used nonce beside room in the budget spends nothing.
    let spend = |n: Option<&str>| Spend {
        nonces: n
            .map(|n| vec![(n.to_string(), now / 1000 + 300)])
            .unwrap_or_default(),
        budget: Some(budget("agent", 2, now)),
    };
    assert!(matches!(
        settle(e.port, &st, spend(Some("n-1")), now).0,
        Next::Refused(Refusal::BadProof(_))
    ));
    assert_eq!(settle(e.port, &st, spend(None), now).0, Next::Settled);
    assert_eq!(
        settle(e.port, &st, spend(Some("n-3")), now).0,
        Next::Settled
    );
    assert!(matches!(
        settle(e.port, &st, spend(None), now).0,
        Next::Refused(Refusal::OverBudget { .. })
    ));
    // n-3 was recorded with the budget: single use still.
    assert!(matches!(
        settle(e.port, &st, nonce("n-3", now), now).0,
        Next::Refused(Refusal::BadProof(_))
    ));

    // Racing: many claim one nonce, exactly one wins.
    let winners = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| settle(e.port, &st, nonce("race", now), now).0))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|n| *n == Next::Settled)
            .count()
    });
    assert_eq!(winners, 1);

    // Racing for a budget of 5: never more than 5, and every loser refused.
    let outcomes: Vec<Next> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    let spend = Spend {
                        nonces: vec![],
                        budget: Some(budget("racer", 5, now)),
                    };
                    settle(e.port, &st, spend, now).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let spent = outcomes.iter().filter(|n| **n == Next::Settled).count();
    assert!(spent <= 5, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|n| matches!(
            n,
            Next::Settled
                | Next::Refused(Refusal::OverBudget { .. })
                | Next::Refused(Refusal::StateUnavailable(_))
        )),
        "{outcomes:?}"
    );
    // Contention alone (more than MAX_ATTEMPTS transactions) may refuse a spender while
    // room is left; spent one by one, the window holds exactly 5.
    let mut total = spent;
    loop {
        let spend = Spend {
            nonces: vec![],
            budget: Some(budget("racer", 5, now)),
        };
        match settle(e.port, &st, spend, now).0 {
            Next::Settled => total += 1,
            Next::Refused(Refusal::OverBudget { .. }) => break,
            other => panic!("{other:?}"),
        }
        assert!(total <= 5);
    }
    assert_eq!(
        total, 5,
        "after {MAX_ATTEMPTS} attempts at most per spender"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
