//! The `archivist` binary: parses arguments, runs one command, maps errors to exit codes
//! (0 done, 1 failure, 2 usage error) and prints them with their causes.

use std::process::ExitCode;

use clap::Parser;

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
