//! Command-line interface: subcommands and exit codes.

pub fn main() -> std::process::ExitCode {
    eprintln!("syncmail: not yet implemented");
    std::process::ExitCode::from(1)
}
