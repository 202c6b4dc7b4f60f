//! The `archivist` binary: parses arguments, runs one command, maps errors to exit codes
//! (0 done, 1 failure, 2 usage error) and prints them with their causes.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: an import allocates and frees millions of
/// strings across threads (documents are built on one thread and freed on tantivy's), where
/// glibc's allocator spent several percent of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match archivist::cli::Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            // clap prints help and version to stdout with exit 0, usage errors with exit 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    match archivist::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`archivist search x | head`): nothing to say.
        Err(err) if broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("archivist: {err:#}");
            if err.is::<archivist::cli::UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
