//! `kckpt binfmt register|unregister|status`: the binfmt_misc entry that
//! makes images executable, through the `kckpt-binfmt` crate.

use std::path::Path;

use crate::error::Result;

/// Register `stub` (default: the stub next to kckpt) for this architecture.
pub fn register(stub: Option<&Path>) -> Result<()> {
    let default = crate::restore::stub_path();
    let stub = stub.unwrap_or(&default);
    let machine = kckpt_arch::ELF_MACHINE;
    kckpt_binfmt::register(machine, stub)?;
    let abs = std::fs::canonicalize(stub).unwrap_or_else(|_| stub.to_path_buf());
    println!(
        "registered {} with interpreter {}",
        kckpt_binfmt::entry_name(machine),
        abs.display()
    );
    Ok(())
}

/// Remove the entry for this architecture.
pub fn unregister() -> Result<()> {
    let machine = kckpt_arch::ELF_MACHINE;
    let name = kckpt_binfmt::entry_name(machine);
    if kckpt_binfmt::unregister(machine)? {
        println!("unregistered {name}");
    } else {
        println!("{name} was not registered");
    }
    Ok(())
}

/// Print the state of the entry for this architecture.
pub fn status() -> Result<()> {
    let machine = kckpt_arch::ELF_MACHINE;
    let name = kckpt_binfmt::entry_name(machine);
    match kckpt_binfmt::status(machine)? {
        Some(st) => println!("{name}: {st}"),
        None => println!("{name}: not registered"),
    }
    Ok(())
}
