//! `make bench-vm`: the work scopegate does per request, timed inside a Wasm VM.
//!
//! Built for wasm32-wasip1 and run by Node's WASI (V8, the engine Envoy embeds), it drives
//! the filter's own `Stream` — the code Envoy runs, minus proxy-wasm's ABI — with an
//! in-memory host, over `bench/run.py`'s bundle and scenarios (JSON, its argument:
//! `bench/run.py --dump`). For each scenario it prints the time per request of the whole
//! stream and of `Engine::decide` alone, and the host calls one request makes: inside
//! Envoy each host call costs extra (≈ 0.3–3 µs, README), which this harness cannot see.
//! Also builds natively (`cargo run -p scopegate-bench-vm --release`) for comparison.
//! It counts the heap allocations one request makes too (a counting global allocator):
//! each one touches the allocator's bookkeeping and fresh memory, which inside Envoy is
//! mostly cold (README, performance).

use scopegate_engine::{Engine, HeaderList, Secrets};
use scopegate_filter::host::memory::MemoryHost;
use scopegate_filter::stream::{Flow, Stream};
use serde_json::Value;
use std::hint::black_box;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The system allocator, counting allocations (`alloc`, `alloc_zeroed`, `realloc`).
#[allow(unsafe_code)] // GlobalAlloc is an unsafe trait; this only forwards and counts.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

    pub struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's contract for `alloc` is passed on unchanged.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as for `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as for `alloc`; `ptr` came from this allocator.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as for `alloc`; `ptr` came from this allocator.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn now() -> u64 {
        ALLOCATIONS.load(Ordering::Relaxed)
    }
}

/// The clock the requests are decided at.
const NOW_MS: i64 = 1_764_547_200_000;

struct Scenario {
    name: String,
    headers: HeaderList,
    body: Vec<u8>,
    /// Append a counter before the body's last two bytes (`"}`): a new statement each time.
    vary: bool,
}

impl Scenario {
    fn body(&self, n: u64) -> Vec<u8> {
        if !self.vary {
            return self.body.clone();
        }
        let cut = self.body.len().saturating_sub(2);
        let (head, tail) = self.body.split_at(cut);
        [head, n.to_string().as_bytes(), tail].concat()
    }
}

/// The headers Envoy hands a filter for a wrk request: pseudo-headers, wrk's `host`, the
/// scenario's headers, and what the connection manager adds.
fn scenario(s: &Value) -> Option<Scenario> {
    let method = s.get("method")?.as_str()?;
    let path = s.get("path")?.as_str()?;
    let mut headers: HeaderList = vec![
        (":authority".into(), b"127.0.0.1:10000".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":method".into(), method.as_bytes().to_vec()),
    ];
    for (k, v) in s.get("headers")?.as_object()? {
        headers.push((k.clone(), v.as_str()?.as_bytes().to_vec()));
    }
    let body = s.get("body").and_then(Value::as_str).unwrap_or_default();
    if !body.is_empty() {
        headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    headers.push((":scheme".into(), b"http".to_vec()));
    headers.push(("x-forwarded-proto".into(), b"http".to_vec()));
    headers.push((
        "x-request-id".into(),
        b"0f8fad5b-d9cb-469f-a165-70867728950e".to_vec(),
    ));
    Some(Scenario {
        name: s.get("name")?.as_str()?.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
        vary: s.get("vary").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// One request through the filter's stream, as Envoy's callbacks would drive it: its
/// status, and the heap allocations it made (from the stream's start to its drop).
fn one(engine: &Rc<Engine>, host: &mut MemoryHost, s: &Scenario, n: u64) -> (u16, u64) {
    *host.headers.get_mut() = s.headers.clone();
    host.body = s.body(n);
    let allocations = counting::now();
    let mut stream = Stream::new(Some(engine.clone()), &*host);
    let body_follows = !host.body.is_empty();
    let mut flow = stream.on_request_headers(!body_follows);
    if body_follows && flow == Flow::Pause {
        flow = stream.on_request_body(host.body.len(), true);
    }
    stream.on_log();
    drop(stream);
    let allocations = counting::now() - allocations;
    let status = if flow == Flow::Continue { 200 } else { 403 };
    (status, allocations)
}

/// Bytes walked between requests for the "caches cold" column (more than the L2 cache).
const COLD_SWEEP_BYTES: usize = 8 << 20;

/// Writes one byte per 64-byte line of `buf`: the request after it finds its data (and
/// code, where the L2 cache is shared) out of the nearer caches.
fn evict(buf: &mut [u8]) {
    for b in buf.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    black_box(&buf);
}

/// Median time of one call made right after [`evict`], over [`COLD_RUNS`] calls, less the
/// clock's own cost (each call is timed alone: the walk is not).
fn cold_time(sweep: &mut [u8], mut f: impl FnMut(u64)) -> Duration {
    let mut median = |f: &mut dyn FnMut(u64)| {
        let mut runs: Vec<Duration> = (0..COLD_RUNS)
            .map(|n| {
                evict(sweep);
                let t = Instant::now();
                f(n);
                t.elapsed()
            })
            .collect();
        runs.sort();
        runs.get(runs.len() / 2).copied().unwrap_or_default()
    };
    let clock = median(&mut |_| {});
    median(&mut f).saturating_sub(clock)
}

/// Requests timed one by one for the "caches cold" column.
const COLD_RUNS: u64 = 1001;

/// Median time per iteration over 7 batches of about 100 ms each.
fn time(mut f: impl FnMut(u64)) -> Duration {
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(200) {
        f(n);
        n += 1;
    }
    let per_batch = (n / 2).max(1);
    let mut batches: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f(n);
                n += 1;
            }
            t.elapsed() / u32::try_from(per_batch).unwrap_or(u32::MAX)
        })
        .collect();
    batches.sort();
    batches.get(3).copied().unwrap_or_default()
}

fn main() -> ExitCode {
    let Some(input) = std::env::args().nth(1) else {
        eprintln!("usage: bench-vm \"$(bench/run.py --dump)\"");
        return ExitCode::FAILURE;
    };
    let Ok(spec) = serde_json::from_str::<Value>(&input) else {
        eprintln!("bench-vm: stdin is not JSON (bench/run.py --dump)");
        return ExitCode::FAILURE;
    };
    let Some(bundle) = spec.get("bundle").map(Value::to_string) else {
        eprintln!("bench-vm: no bundle");
        return ExitCode::FAILURE;
    };
    let engine = match Engine::from_json(bundle.as_bytes(), &Secrets::Unchecked) {
        Ok(e) => Rc::new(e),
        Err(e) => {
            eprintln!("bench-vm: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scenarios: Vec<Scenario> = spec
        .get("scenarios")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(scenario).collect())
        .unwrap_or_default();
    let only = std::env::var("BENCH_SCENARIOS").unwrap_or_default();
    let only: Vec<&str> = only
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let where_ = if cfg!(target_family = "wasm") {
        "inside the Wasm VM"
    } else {
        "natively"
    };
    println!("scopegate per-request work {where_} (median of 7 batches)\n");
    println!("| scenario | status | stream µs/req | stream, caches cold µs/req | decide µs/req | decide, caches cold µs/req | allocations per request | host calls per request |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    // Inside Envoy a request meets caches that the proxy's own work has filled since the
    // last one: "caches cold" walks a buffer larger than the L2 cache before each request
    // and subtracts the walk's own time.
    let mut sweep = vec![0u8; COLD_SWEEP_BYTES];
    // Keeps nothing the stream writes out: each request costs what it would in a proxy.
    let mut host = MemoryHost {
        now_ms: NOW_MS,
        discard: true,
        ..MemoryHost::default()
    };
    for s in scenarios
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name.as_str()))
    {
        host.counting.set(true);
        host.host_calls.get_mut().clear();
        let (status, _) = one(&engine, &mut host, s, u64::MAX);
        host.counting.set(false);
        // A second request: the first of a scenario fills caches (the decoded-statement
        // memo), which a repeated request finds and a new one (`vary`) does not.
        let (_, allocations) = one(&engine, &mut host, s, u64::MAX - 1);
        let calls: Vec<String> = host
            .host_calls
            .get_mut()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let total: u64 = host.host_calls.get_mut().values().sum();
        let stream = time(|n| {
            black_box(one(&engine, &mut host, s, n));
        });
        let cold = cold_time(&mut sweep, |n| {
            black_box(one(&engine, &mut host, s, n));
        });
        let decide = time(|n| {
            let body = s.body(n);
            black_box(engine.decide(s.headers.clone(), &body, NOW_MS));
        });
        let decide_cold = cold_time(&mut sweep, |n| {
            let body = s.body(n);
            black_box(engine.decide(s.headers.clone(), &body, NOW_MS));
        });
        println!(
            "| {} | {status} | {:.1} | {:.1} | {:.1} | {:.1} | {allocations} | {total}: {} |",
            s.name,
            stream.as_secs_f64() * 1e6,
            cold.as_secs_f64() * 1e6,
            decide.as_secs_f64() * 1e6,
            decide_cold.as_secs_f64() * 1e6,
            calls.join(", ")
        );
    }
    ExitCode::SUCCESS
}
