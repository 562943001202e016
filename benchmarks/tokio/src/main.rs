//! tokio_bench: corio's scheduler benchmarks written with Tokio, for the same-run comparison that
//! benchmarks/run prints (see benchmarks/programs/ for the corio versions and the shared contract).
//!
//! usage: tokio_bench skynet|fib|nqueens|fanout|pingpong|spawn_blocking [--threads N] [--runs N] [--warmup N] [--n N]
//!
//! One multi-threaded runtime with `--threads` workers (default 2; `--workers` is an alias), no
//! I/O or time driver. `--warmup` untimed runs (default 1), then `--runs` timed runs (default 5),
//! each timed with Instant around `block_on` of the root task, which is itself spawned onto the
//! runtime so that the whole tree runs on the workers (as corio's block_on and Asio's co_spawn
//! onto the pool do). Prints the result and the per-run times, then exactly one line
//! `tokio_<name>=<median ms> unit=ms`. Exits 1 when a result is wrong, 2 on bad arguments.
//!
//! Joining: every child is a `tokio::spawn`ed task and its parent awaits the `JoinHandle`s in
//! order (skynet: 10 per parent; fib: both children, n-1 and n-2, are spawned; nqueens: one per
//! queen placed in the next row). fanout: the main (non-runtime) thread calls `Runtime::spawn` for
//! every task and keeps the handles; a task spawned on the runtime then awaits them in order.

use std::future::Future;
use std::process::exit;
use std::time::Instant;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

// Functions returning `impl Future + Send` (rather than `async fn`) state the Send bound that
// `tokio::spawn` needs, so the recursion through `tokio::spawn(skynet(..))` does not have to infer
// it from the future's own type (which rustc rejects as a cycle).

fn skynet(num: u64, size: u64, div: u64) -> impl Future<Output = u64> + Send {
    async move {
        if size == 1 {
            return num;
        }
        let step = size / div;
        let mut handles: Vec<JoinHandle<u64>> = Vec::with_capacity(div as usize);
        for i in 0..div {
            handles.push(tokio::spawn(skynet(num + i * step, step, div)));
        }
        let mut sum = 0;
        for h in handles {
            sum += h.await.expect("skynet child failed");
        }
        sum
    }
}

fn fib(n: u64) -> impl Future<Output = u64> + Send {
    async move {
        if n < 2 {
            return n;
        }
        let a = tokio::spawn(fib(n - 1));
        let b = tokio::spawn(fib(n - 2));
        a.await.expect("fib child failed") + b.await.expect("fib child failed")
    }
}

fn nqueens(n: u32, row: u32, cols: u32, d1: u32, d2: u32) -> impl Future<Output = u64> + Send {
    async move {
        if row == n {
            return 1;
        }
        let all = (1u32 << n) - 1;
        let mut free = all & !(cols | d1 | d2);
        let mut handles: Vec<JoinHandle<u64>> = Vec::with_capacity(free.count_ones() as usize);
        while free != 0 {
            let bit = free & free.wrapping_neg();
            free ^= bit;
            handles.push(tokio::spawn(nqueens(
                n,
                row + 1,
                cols | bit,
                ((d1 | bit) << 1) & all,
                (d2 | bit) >> 1,
            )));
        }
        let mut sum = 0;
        for h in handles {
            sum += h.await.expect("nqueens child failed");
        }
        sum
    }
}

async fn leaf(i: u64) -> u64 {
    i
}

async fn join_all(handles: Vec<JoinHandle<u64>>) -> u64 {
    let mut sum = 0;
    for h in handles {
        sum += h.await.expect("fanout task failed");
    }
    sum
}

fn fanout(rt: &Runtime, n: u64) -> u64 {
    let mut handles = Vec::with_capacity(n as usize);
    for i in 0..n {
        handles.push(rt.spawn(leaf(i)));
    }
    rt.block_on(rt.spawn(join_all(handles))).expect("fanout join failed")
}

/// Two tasks bounce a counter over two mpsc channels of capacity 1 (Tokio's mpsc needs a
/// capacity of at least 1; there is no rendezvous channel), n round trips.
async fn pingpong(n: u64) -> u64 {
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let other = tokio::spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            if pong_tx.send(v + 1).await.is_err() {
                break;
            }
        }
    });
    let mut x = 0u64;
    for _ in 0..n {
        ping_tx.send(x).await.expect("ping");
        x = pong_rx.recv().await.expect("pong");
    }
    drop(ping_tx);
    other.await.expect("ponger");
    x
}

/// n round trips of `tokio::task::spawn_blocking(|| 1).await` from one task: the peer of corio's
/// `co_await corio::spawn_blocking([] { return 1; })` (micro benchmark BM_spawn_blocking).
async fn spawn_blocking_loop(n: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..n {
        sum += tokio::task::spawn_blocking(|| 1u64).await.expect("blocking job failed");
    }
    sum
}

fn run_root<F>(rt: &Runtime, f: F) -> u64
where
    F: Future<Output = u64> + Send + 'static,
{
    rt.block_on(rt.spawn(f)).expect("root task failed")
}

const NQUEENS: [u64; 17] = [
    1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596, 2279184, 14772512,
];

fn usage(msg: &str) -> ! {
    eprintln!("tokio_bench: {msg}");
    eprintln!("usage: tokio_bench skynet|fib|nqueens|fanout|pingpong|spawn_blocking [--threads N] [--runs N] [--warmup N] [--n N]");
    exit(2);
}

fn parse_num(flag: &str, v: Option<String>, lo: u64, hi: u64) -> u64 {
    let v = v.unwrap_or_else(|| usage(&format!("{flag} needs a value")));
    match v.parse::<u64>() {
        Ok(x) if x >= lo && x <= hi => x,
        _ => usage(&format!("{flag}: expected an integer in [{lo}, {hi}], got '{v}'")),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| usage("missing program name"));
    let (default_n, lo_n, hi_n) = match name.as_str() {
        "skynet" => (1_000_000, 1, 10_000_000),
        "fib" => (30, 0, 40),
        "nqueens" => (11, 1, 14),
        "fanout" => (1_000_000, 1, 10_000_000),
        "pingpong" => (1_000_000, 1, 100_000_000),
        "spawn_blocking" => (100_000, 1, 100_000_000),
        _ => usage(&format!("unknown program '{name}'")),
    };
    let (mut threads, mut runs, mut warmup, mut n) = (2u64, 5u64, 1u64, default_n as u64);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" | "--workers" => threads = parse_num(&a, args.next(), 1, 256),
            "--runs" => runs = parse_num(&a, args.next(), 1, 1000),
            "--warmup" => warmup = parse_num(&a, args.next(), 0, 100),
            "--n" => n = parse_num(&a, args.next(), lo_n, hi_n),
            "-h" | "--help" => usage("help"),
            _ => usage(&format!("unknown argument '{a}'")),
        }
    }
    let expected = match name.as_str() {
        "skynet" => {
            let mut p = n;
            while p % 10 == 0 {
                p /= 10;
            }
            if p != 1 {
                usage("skynet: --n must be a power of 10");
            }
            n * (n - 1) / 2
        }
        "fib" => {
            let (mut a, mut b) = (0u64, 1u64);
            for _ in 0..n {
                (a, b) = (b, a + b);
            }
            a
        }
        "nqueens" => NQUEENS[n as usize],
        "pingpong" | "spawn_blocking" => n,
        _ => n * (n - 1) / 2,
    };
    let rt = Builder::new_multi_thread()
        .worker_threads(threads as usize)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("tokio_bench: cannot build the runtime: {e}");
            exit(1)
        });
    let run_once = || -> u64 {
        match name.as_str() {
            "skynet" => run_root(&rt, skynet(0, n, 10)),
            "fib" => run_root(&rt, fib(n)),
            "nqueens" => run_root(&rt, nqueens(n as u32, 0, 0, 0, 0)),
            "pingpong" => run_root(&rt, pingpong(n)),
            "spawn_blocking" => run_root(&rt, spawn_blocking_loop(n)),
            _ => fanout(&rt, n),
        }
    };
    let mut ok = true;
    let mut result = 0;
    for _ in 0..warmup {
        result = run_once();
        ok &= result == expected;
    }
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let t0 = Instant::now();
        result = run_once();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        ok &= result == expected;
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let k = sorted.len();
    let median = if k % 2 == 1 { sorted[k / 2] } else { (sorted[k / 2 - 1] + sorted[k / 2]) / 2.0 };
    let list: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
    println!(
        "tokio_{name}: result {result} (expected {expected}), threads {threads}, n {n}, warm-up {warmup}, runs (ms): {}",
        list.join(" ")
    );
    if !ok {
        eprintln!("tokio_bench: {name}: WRONG RESULT {result}, expected {expected}");
        exit(1);
    }
    println!("tokio_{name}={median:.1} unit=ms");
    if name == "pingpong" || name == "spawn_blocking" {
        println!("tokio_{name}_per_op={:.1} unit=ns", median * 1e6 / n as f64);
        println!("tokio_{name}_rate={:.0} unit=ops/s", n as f64 / (median / 1e3));
    }
}
