//! `kckpt generate DIR` (hidden; used by `packaging/build-deb.sh`): the
//! files a package installs that come from kckpt's own definitions:
//! - `man/kckpt.1` and one page per subcommand (`kckpt-dump.1`...), from
//!   the clap definitions (`clap_mangen`);
//! - `completions/kckpt.bash`, `_kckpt` (zsh) and `kckpt.fish`
//!   (`clap_complete`);
//! - `binfmt/kckpt.conf`: the binfmt_misc registration of this
//!   architecture's images with the interpreter `--stub`, and of aarch64
//!   images with `--aarch64-stub` when given (a `binfmt.d` file for
//!   systemd-binfmt, whose lines are what binfmt_misc's `register`
//!   takes; an aarch64 stub runs through QEMU's own entry).

use std::fs;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = |source| Error::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(failed)?;
    }
    fs::write(path, bytes).map_err(failed)
}

/// Write the man pages, completions and binfmt.d file under `dir`;
/// `foreign`: the stubs of other architectures installed too (machine,
/// path), each with its binfmt.d line.
pub fn generate(dir: &Path, stub: &Path, foreign: &[(u16, &Path)]) -> Result<()> {
    let cmd = Cli::command();
    let mut page = Vec::new();
    let render = |c: clap::Command, out: &mut Vec<u8>| {
        out.clear();
        clap_mangen::Man::new(c).render(out)
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::WriteFile { path, source }
    };
    let main_page = dir.join("man/kckpt.1");
    render(cmd.clone(), &mut page).map_err(io(&main_page))?;
    write(&main_page, &page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("kckpt-{}", sub.get_name());
        let path = dir.join(format!("man/{name}.1"));
        // The page is named after the command as typed (`kckpt dump`);
        // clap keeps static names (a one-shot command: leaked).
        let title: &'static str = format!("kckpt {}", sub.get_name()).leak();
        let sub = sub.clone().name(&*name.clone().leak()).display_name(title);
        render(sub, &mut page).map_err(io(&path))?;
        write(&path, &page)?;
    }
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "kckpt.bash"),
        (Shell::Zsh, "_kckpt"),
        (Shell::Fish, "kckpt.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "kckpt", &mut out);
        write(&dir.join("completions").join(file), &out)?;
    }
    let mut conf = String::from(
        "# kckpt images run themselves: binfmt_misc hands them to kckpt's restore stub.\n",
    );
    conf.push_str(&kckpt_binfmt::register_line(kckpt_arch::ELF_MACHINE, stub));
    conf.push('\n');
    for &(machine, path) in foreign {
        conf.push_str(&kckpt_binfmt::register_line(machine, path));
        conf.push('\n');
    }
    write(&dir.join("binfmt/kckpt.conf"), conf.as_bytes())
}
