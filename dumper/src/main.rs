//! The `kckpt` command: see `kckpt --help`.

fn main() {
    std::process::exit(kckpt::cli::main());
}
