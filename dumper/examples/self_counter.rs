//! A Rust program that checkpoints itself mid-computation with
//! [`kckpt::checkpoint_self`], the Rust twin of
//! `tests/programs/self_counter.c`: `self_counter IMAGE [N]` prints
//! `step I sum S ...` for I = 1..=12, checkpoints after step N (default 5)
//! and prints `saved` (first run) or `resumed` (run again from the image)
//! before the remaining steps, then `done S`.

use std::io::Write;

use kckpt::SelfCheckpoint;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(image) = args.get(1) else {
        eprintln!("usage: self_counter IMAGE [N]");
        std::process::exit(2);
    };
    let at: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5);
    let mut heap: Vec<f64> = (0..4096).map(|i| f64::from(i) * 0.25).collect();
    let mut sum = 0.5f64;
    let mut words: Vec<String> = Vec::new();
    let mut out = std::io::stdout().lock();
    for i in 1..=12u32 {
        for x in heap.iter_mut() {
            *x = *x * 1.0001 + f64::from(i);
            sum += *x / 4096.0;
        }
        words.push(format!("w{i}"));
        let _ = writeln!(out, "step {i} sum {sum:.6} words {}", words.join(","));
        let _ = out.flush();
        if i == at {
            match kckpt::checkpoint_self(image) {
                Ok(SelfCheckpoint::Saved) => {
                    let _ = writeln!(out, "saved");
                }
                Ok(SelfCheckpoint::Resumed) => {
                    let _ = writeln!(out, "resumed");
                }
                Err(e) => {
                    let _ = writeln!(out, "failed {e}");
                    std::process::exit(1);
                }
            }
            let _ = out.flush();
        }
    }
    let _ = writeln!(out, "done {sum:.6}");
}
