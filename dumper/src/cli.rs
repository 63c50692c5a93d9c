//! The command line (clap derive) and its dispatch; turns every failure into
//! one `kckpt: <message>` line and exit status 1 (128 + N for a dump
//! cancelled by signal N).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};

/// Checkpoint a running Linux process into an executable ELF core image.
#[derive(Debug, Parser)]
#[command(name = "kckpt", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Checkpoint a running process and its descendants into an image
    /// (kills them unless --leave-running).
    Dump {
        /// Process to checkpoint, with all its descendants.
        #[arg(short, long, required_unless_present_any = ["pgid", "session"])]
        pid: Option<i32>,
        /// Checkpoint a process group (a job, e.g. a shell pipeline): every
        /// member whose parent is not a member, with its descendants.
        #[arg(long, value_name = "PGID", conflicts_with_all = ["pid", "session", "no_children"])]
        pgid: Option<i32>,
        /// Checkpoint a session: every member whose parent is not a
        /// member, with its descendants.
        #[arg(long, value_name = "SID", conflicts_with_all = ["pid", "pgid", "no_children"])]
        session: Option<i32>,
        /// Image file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Resume the process (all the processes dumped) after the dump
        /// instead of killing it.
        #[arg(long)]
        leave_running: bool,
        /// Print nothing on success (no summary line, and no progress bar
        /// on a terminal; warnings still).
        #[arg(short, long)]
        quiet: bool,
        /// Dump descriptors kckpt cannot restore (TCP/UDP sockets,
        /// inotify, ...) anyway: they are restored as /dev/null.
        #[arg(long)]
        skip_unsupported: bool,
        /// Most bytes of data saved for each deleted file the process
        /// holds open (K, M, G suffixes; default 1M): a larger one is
        /// refused before the process is touched.
        #[arg(long, value_name = "SIZE", value_parser = crate::dump::ghosts::parse_size)]
        ghost_limit: Option<u64>,
        /// Checkpoint the process alone (refused when it has children).
        #[arg(long)]
        no_children: bool,
        /// A descriptor that leads to a process outside the dump (a pipe,
        /// socket or named pipe): saved as external, keyed by its name
        /// (`pipe:[INODE]`), for the restorer to provide (`kckpt restore
        /// --inherit-fd KEY=N`) instead of being refused. `FD` alone: of
        /// the root process. Repeatable.
        #[arg(long, value_name = "[PID:]FD", value_parser = parse_external)]
        external: Vec<(Option<i32>, u32)>,
        /// Save established TCP connections as connections that come back
        /// reset (the program reads ECONNRESET), instead of with TCP repair
        /// (which needs CAP_NET_ADMIN); the peers see them closed.
        #[arg(long)]
        tcp_close: bool,
    },
    /// Restore a process from an image (executes the restore stub in place
    /// of kckpt; a user who may choose pids, such as root, gets the saved
    /// pid, in a child this process waits for).
    Restore {
        /// The image.
        file: PathBuf,
        /// Restore inside a new PID namespace (and a new user namespace when
        /// not root) so the process and its threads get their original pid
        /// and tids; same as running the image with KCKPT_NEW_PID_NS=1.
        #[arg(long)]
        new_pid_ns: bool,
        /// Restore inside a new network namespace too (implies
        /// --new-pid-ns), with only a loopback interface: a user without
        /// root has CAP_NET_ADMIN there, which TCP connections saved with
        /// TCP repair need; its sockets are reachable only from inside.
        /// Same as KCKPT_NEW_NET_NS=1. Chosen by itself, with a warning,
        /// when namespaces are made anyway and every connection's peer is
        /// in the image.
        #[arg(long)]
        new_net_ns: bool,
        /// Go on when a saved file was deleted or shrank (it is restored
        /// as /dev/null, or at its saved offset past the end), or when the
        /// saved user and group ids cannot be taken (the process runs with
        /// this user's).
        #[arg(long)]
        force: bool,
        /// Descriptors 0-2: `auto` reopens the files and devices they were
        /// from the image and takes terminals and pipes or sockets to other
        /// processes from this command; `inherit` takes all of them from
        /// this command; `saved` reopens terminals by their saved path too
        /// (same as running the image with KCKPT_STDIO=MODE; default:
        /// $KCKPT_STDIO, else auto).
        #[arg(long, value_enum, value_name = "MODE")]
        stdio: Option<Stdio>,
        /// Put descriptor N of this command where the image has the
        /// external descriptor KEY (as `kckpt info` lists it, e.g.
        /// `pipe:[1234]=5`); repeatable; added to $KCKPT_INHERIT_FD.
        #[arg(long, value_name = "KEY=N", value_parser = parse_inherit)]
        inherit_fd: Vec<String>,
        /// Restore the TCP connections saved with TCP repair as
        /// connections that were reset (the program reads ECONNRESET), for
        /// a restorer without CAP_NET_ADMIN; same as KCKPT_TCP_CLOSE=1.
        #[arg(long)]
        tcp_close: bool,
        /// The restored process stops (SIGSTOP) before its first
        /// instruction, and its pid is printed: `gdb -p PID` attaches to a
        /// live copy of the saved process, `kill -CONT PID` lets it run;
        /// same as KCKPT_STOPPED=1.
        #[arg(long)]
        stopped: bool,
    },
    /// Take images of a running process at intervals, leaving it running:
    /// DIR/snapshot-NNNNNN.kckpt, numbered on, the newest --keep kept (an
    /// image is removed only once a newer one is complete).
    Snapshot {
        /// Process to checkpoint, with all its descendants.
        #[arg(short, long)]
        pid: i32,
        /// Time between snapshots (e.g. 10m, 30s, 500ms).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        every: std::time::Duration,
        /// Images kept, the newest.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        keep: u64,
        /// Directory of the images (made when missing).
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        /// Stop after this many snapshots (default: until the process
        /// ends).
        #[arg(long)]
        count: Option<u64>,
        /// As `kckpt dump --skip-unsupported`.
        #[arg(long)]
        skip_unsupported: bool,
    },
    /// Write man pages, shell completions and the binfmt.d file into DIR
    /// (for packaging).
    #[command(hide = true)]
    Generate {
        /// Where the files go (man/, completions/, binfmt/).
        dir: PathBuf,
        /// The stub's installed path, for binfmt/kckpt.conf.
        #[arg(long, default_value = "/usr/lib/kckpt/kckpt-stub")]
        stub: PathBuf,
        /// The aarch64 stub's installed path, when it is installed too.
        #[arg(long)]
        aarch64_stub: Option<PathBuf>,
    },
    /// Check an image and describe it.
    Info {
        /// The image.
        file: PathBuf,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Also check every stored data chunk (memory, descriptor data)
        /// against its checksum, in every process of a tree; metadata
        /// checksums are checked always.
        #[arg(long)]
        verify: bool,
        /// Of a process tree image: show the details (memory, descriptors,
        /// threads...) of the process with this pid rather than the root's.
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
    },
    /// Write the core image of one process of a process tree image, for
    /// gdb or kckpt info (a zombie has none).
    Extract {
        /// The process (its pid, as `kckpt info` lists them).
        #[arg(short, long)]
        pid: u32,
        /// The tree image (`-`: standard input).
        file: PathBuf,
        /// The image to write (`-`: standard output).
        out: PathBuf,
    },
    /// Manage the binfmt_misc entry that makes images executable.
    Binfmt {
        /// The binfmt_misc operation.
        #[command(subcommand)]
        action: BinfmtAction,
    },
}

/// `--external [PID:]FD`.
fn parse_external(s: &str) -> std::result::Result<(Option<i32>, u32), String> {
    let bad = || format!("`{s}` is not [PID:]FD");
    let (pid, fd) = match s.split_once(':') {
        Some((p, fd)) => (Some(p.parse::<i32>().map_err(|_| bad())?), fd),
        None => (None, s),
    };
    if pid.is_some_and(|p| p <= 0) {
        return Err(bad());
    }
    Ok((pid, fd.parse().map_err(|_| bad())?))
}

/// `--inherit-fd KEY=N`.
fn parse_inherit(s: &str) -> std::result::Result<String, String> {
    match kckpt_image::external::parse_entry(s.as_bytes()) {
        Some((key, _)) if kckpt_image::external::key_ok(key) => Ok(s.to_owned()),
        _ => Err(format!(
            "`{s}` is not KEY=N (KEY as `kckpt info` lists it, without commas)"
        )),
    }
}

/// `kckpt restore --stdio`: where descriptors 0-2 come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stdio {
    /// Files and devices from the image, terminals and outside pipes from
    /// the caller.
    Auto,
    /// All from the caller.
    Inherit,
    /// All from the image (terminals by their saved path).
    Saved,
}

impl Stdio {
    /// The `KCKPT_STDIO` value.
    pub fn env_value(self) -> &'static str {
        match self {
            Stdio::Auto => "auto",
            Stdio::Inherit => "inherit",
            Stdio::Saved => "saved",
        }
    }
}

/// `kckpt binfmt` operations.
#[derive(Debug, Subcommand)]
pub enum BinfmtAction {
    /// Register the restore stub as the interpreter of kckpt images.
    Register {
        /// The stub (default: $KCKPT_STUB, else kckpt-stub next to kckpt).
        #[arg(long)]
        stub: Option<PathBuf>,
    },
    /// Remove the registration.
    Unregister,
    /// Show the registration.
    Status,
}

/// Execute a parsed command line.
pub fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dump {
            pid,
            output,
            leave_running,
            quiet,
            skip_unsupported,
            ghost_limit,
            no_children,
            pgid,
            session,
            external,
            tcp_close,
        } => {
            use crate::dump::tree::Scope;
            let group = pgid.map(Scope::Pgid).or(session.map(Scope::Session));
            let options = crate::dump::DumpOptions {
                leave_running,
                skip_unsupported,
                ghost_limit,
                no_children,
                group,
                external: Vec::leak(external),
                tcp_close,
            };
            let started = std::time::Instant::now();
            let bar = crate::progress::start(!quiet);
            let summary = crate::dump::dump(pid.unwrap_or(0), &output, &options);
            drop(bar);
            let summary = summary?;
            for w in &summary.warnings {
                eprintln!("kckpt: {w}");
            }
            if !quiet {
                eprintln!(
                    "kckpt: {}",
                    summary_line(&summary, &output, leave_running, started.elapsed())
                );
            }
            Ok(())
        }
        Command::Restore {
            file,
            new_pid_ns,
            new_net_ns,
            force,
            stdio,
            inherit_fd,
            tcp_close,
            stopped,
        } => {
            crate::restore::add_inherit_fds(&inherit_fd)?;
            if stopped {
                std::env::set_var("KCKPT_STOPPED", "1");
            }
            if tcp_close {
                std::env::set_var("KCKPT_TCP_CLOSE", "1");
            }
            if new_net_ns {
                std::env::set_var("KCKPT_NEW_NET_NS", "1");
            }
            crate::restore::restore(&file, new_pid_ns, force, stdio)
        }
        Command::Snapshot {
            pid,
            every,
            keep,
            output,
            count,
            skip_unsupported,
        } => crate::snapshot::run(&crate::snapshot::SnapshotOptions {
            pid,
            dir: output,
            every,
            keep: keep as usize,
            count,
            skip_unsupported,
        }),
        Command::Generate {
            dir,
            stub,
            aarch64_stub,
        } => {
            let foreign: Vec<(u16, &std::path::Path)> = aarch64_stub
                .as_deref()
                .filter(|_| kckpt_arch::ELF_MACHINE != kckpt_image::read::EM_AARCH64)
                .map(|p| (kckpt_image::read::EM_AARCH64, p))
                .into_iter()
                .collect();
            crate::generate::generate(&dir, &stub, &foreign)
        }
        Command::Info {
            file,
            json,
            verify,
            pid,
        } => crate::info::info(&file, json, verify, pid),
        Command::Extract { pid, file, out } => crate::extract::extract(&file, pid, &out),
        Command::Binfmt { action } => match action {
            BinfmtAction::Register { stub } => crate::binfmt::register(stub.as_deref()),
            BinfmtAction::Unregister => crate::binfmt::unregister(),
            BinfmtAction::Status => crate::binfmt::status(),
        },
    }
}

/// Parse `std::env::args`, run, and return the process exit status.
pub fn main() -> i32 {
    // Never a backtrace: an internal error is one line too.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("kckpt: internal error: {}", msg.replace('\n', " "));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return 0;
            }
            let msg = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                "a subcommand is missing".to_owned()
            } else {
                usage_message(&e.render().to_string())
            };
            report(&Error::Usage(format!("{msg} (see kckpt --help)")));
            return 1;
        }
    };
    match execute(cli) {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            e.exit_code()
        }
    }
}

/// clap's error text up to its "Usage:" block, on one line, without the
/// "error: " prefix.
fn usage_message(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let text = parts.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text).to_owned();
    if text.is_empty() {
        "invalid command line".to_owned()
    } else {
        text
    }
}

fn report(e: &Error) {
    let msg = e.to_string().replace('\n', " ");
    eprintln!("kckpt: {msg}");
}

/// Bytes in the largest binary unit that keeps a number of at least 1
/// (`12.5 MiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The line a successful dump prints (unless `--quiet`): what was saved,
/// where, how large, how long it took, what became of the processes.
fn summary_line(
    s: &crate::dump::DumpSummary,
    output: &std::path::Path,
    left_running: bool,
    took: std::time::Duration,
) -> String {
    let image = if output.as_os_str() == "-" {
        "standard output".to_owned()
    } else {
        let size = std::fs::metadata(output).map_or(0, |m| m.len());
        format!("{} ({})", output.display(), human_bytes(size))
    };
    let shared = if s.shared_bytes > 0 {
        format!(
            ", {} shared between them stored once",
            human_bytes(s.shared_bytes)
        )
    } else {
        String::new()
    };
    format!(
        "saved {} process(es) to {image}: {} of memory stored, {} mapped not stored (file pages, zeros){shared}; {} ms; {}",
        s.processes,
        human_bytes(s.stored_bytes),
        human_bytes(s.mapped_bytes.saturating_sub(s.stored_bytes + s.shared_bytes)),
        took.as_millis(),
        if left_running { "left running" } else { "killed" }
    )
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
