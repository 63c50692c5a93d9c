//! `kckpt binfmt register|unregister|status`: the binfmt_misc entry that
//! makes images executable, through the `kckpt-binfmt` crate.

use std::path::Path;

use crate::error::Result;

/// The machines kckpt has entries for: this architecture's first, then
/// the foreign ones whose images run under user emulation here.
fn machines() -> Vec<u16> {
    let mut out = vec![kckpt_arch::ELF_MACHINE];
    if kckpt_arch::ELF_MACHINE != kckpt_image::read::EM_AARCH64 {
        out.push(kckpt_image::read::EM_AARCH64);
    }
    out
}

fn register_one(machine: u16, stub: &Path) -> Result<()> {
    kckpt_binfmt::register(machine, stub)?;
    let abs = std::fs::canonicalize(stub).unwrap_or_else(|_| stub.to_path_buf());
    println!(
        "registered {} with interpreter {}",
        kckpt_binfmt::entry_name(machine),
        abs.display()
    );
    Ok(())
}

/// Register `stub` (default: the stub next to kckpt) for this
/// architecture, and one entry per other architecture whose stub is found
/// (`restore::foreign_stub_path`): on x86_64 the aarch64 stub, which the
/// kernel then runs through QEMU's own binfmt_misc entry (`qemu-aarch64`)
/// when that is registered.
pub fn register(stub: Option<&Path>) -> Result<()> {
    let default = crate::restore::stub_path();
    register_one(kckpt_arch::ELF_MACHINE, stub.unwrap_or(&default))?;
    for machine in machines().into_iter().skip(1) {
        let foreign = crate::restore::foreign(machine).expect("a foreign machine");
        let stub = crate::restore::foreign_stub_path(foreign.arch, foreign.triple);
        if stub.is_file() {
            register_one(machine, &stub)?;
        }
    }
    Ok(())
}

/// Remove the entries of every architecture.
pub fn unregister() -> Result<()> {
    for machine in machines() {
        let name = kckpt_binfmt::entry_name(machine);
        if kckpt_binfmt::unregister(machine)? {
            println!("unregistered {name}");
        } else {
            println!("{name} was not registered");
        }
    }
    Ok(())
}

/// Print the state of the entry of every architecture.
pub fn status() -> Result<()> {
    for machine in machines() {
        let name = kckpt_binfmt::entry_name(machine);
        match kckpt_binfmt::status(machine)? {
            Some(st) => println!("{name}: {st}"),
            None => println!("{name}: not registered"),
        }
    }
    Ok(())
}
