//! The whole entry: any request — request line, headers (repeats, odd names, any bytes),
//! body — through `Engine::decide`, twice. The first byte's low bit adds the agent's key,
//! so most inputs get past authentication into routing and the decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_fuzz::{decide_checked, with_engine, AGENT_KEY, NOW_MS};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // `METHOD PATH\nname: value\n...\n\nbody`
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, path) = match first.iter().position(|b| *b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (first, &b"/"[..]),
    };
    let mut headers = vec![
        (":method".to_string(), method.to_vec()),
        (":path".to_string(), path.to_vec()),
        (":authority".to_string(), b"gateway.test".to_vec()),
    ];
    if mode & 1 == 1 {
        headers.push((
            "authorization".into(),
            format!("Bearer {AGENT_KEY}").into_bytes(),
        ));
    }
    for line in lines {
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        headers.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            value.to_vec(),
        ));
    }
    with_engine(|e| {
        let v = decide_checked(e, headers.clone(), body);
        // The filter's two phases (headers, then the held body) agree with one call.
        match e.begin(headers, !body.is_empty(), NOW_MS) {
            scopegate_engine::Step::Decided(d) => assert_eq!(d, v),
            scopegate_engine::Step::NeedBody(p) => assert_eq!(e.finish(p, body), v),
        }
    });
});
