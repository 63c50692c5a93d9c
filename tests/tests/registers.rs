//! Vector registers survive a checkpoint: the test programs keep known values
//! in every ymm (AVX) or zmm (AVX-512) register and check them continuously.

mod common;

use common::*;

fn vector_registers_survive(program: &str, name: &str) {
    let dir = TestDir::new(name);
    let image = dir.join("vec.kckpt");
    let mut p = Proc::start(program, &[]);
    let first = p.line(LINE_TIMEOUT);
    if first != "ready" {
        p.fail(&format!("the program cannot run here: {first:?}"));
    }
    let ok = format!("{name} ok ");
    let parse = |l: &str| -> Option<u64> { l.strip_prefix(&ok)?.parse().ok() };
    p.wait_for("3 checks", LINE_TIMEOUT, |l| parse(l) >= Some(3));
    let last_line = dump_and_kill(&mut p, &image);
    let last = parse(&last_line).unwrap_or_else(|| p.fail("bad output before the dump"));

    let mut r = restore(&image);
    for i in 1..=10 {
        let line = r.line(LINE_TIMEOUT);
        if parse(&line) != Some(last + i) {
            r.fail(&format!("expected `{ok}{:08}`, got {line:?}", last + i));
        }
    }
}

#[test]
fn ymm_registers_survive() {
    vector_registers_survive(prog::YMM, "ymm");
}

#[test]
#[cfg_attr(kckpt_no_avx512, ignore = "CPU lacks AVX-512F")]
fn zmm_registers_survive() {
    vector_registers_survive(prog::ZMM, "zmm");
}
