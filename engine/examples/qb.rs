use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::{Engine, Secrets};
use std::time::Instant;
fn main() {
    let b = format!(
        r#"{{"bundle":"b","version":1,"environment":"production","services":[{{"name":"rentals","protocol":"rest","match":{{"path_prefix":"/rest"}},"rest":{{"style":"postgrest"}},"upstream_auth":{{"header":"authorization","prefix":"Bearer ","env":"T"}}}}],
    "roles":[{{"name":"reader","allow":[{{"service":"rentals","resources":["reservations","vehicles"],"actions":["read"]}}]}}],
    "keys":[{{"id":"k","sha256":"{}","role":"reader"}}]}}"#,
        hex(&sha256(b"sgk_test_abcdefghijklmnopqrstuvwxyz012345"))
    );
    let e = Engine::from_json(b.as_bytes(), &Secrets::Unchecked).unwrap();
    let h = |n: &str, v: &str| (n.to_string(), v.as_bytes().to_vec());
    let headers = vec![
        h(":authority", "127.0.0.1:10000"),
        h(":path", "/rest/reservations?tenant_id=eq.acme"),
        h(":method", "GET"),
        h(":scheme", "http"),
        h("user-agent", "wrk"),
        h(
            "authorization",
            "Bearer sgk_test_abcdefghijklmnopqrstuvwxyz012345",
        ),
        h("x-forwarded-proto", "http"),
        h("x-request-id", "5d2f1c6e-1b6e-4a3e-9c1e-7f1c2b3a4d5e"),
    ];
    let n: u32 = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let t = Instant::now();
    let mut x = 0;
    for _ in 0..n {
        let v = e.decide(headers.clone(), b"", 1);
        x += v.reason.len();
    }
    println!(
        "decide: {:.2} us ({x})",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let v = e.decide(headers.clone(), b"", 1);
    let ctx = scopegate_engine::audit::AuditContext {
        bundle: "b",
        environment: "p",
        now_ms: 1,
        status: Some(200),
        enforced: true,
    };
    let t = Instant::now();
    for _ in 0..n {
        x += scopegate_engine::audit::record(&ctx, &v).len();
    }
    println!(
        "audit: {:.2} us ({x})",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let t = Instant::now();
    for _ in 0..n {
        x += sha256(b"sgk_test_abcdefghijklmnopqrstuvwxyz012345")[0] as usize;
    }
    println!(
        "sha256: {:.2} us ({x})",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
}
