//! `syncmail init`: write the annotated example config where syncmail reads it, never
//! over an existing file, so a binary installed without the source tree can start.

use std::path::Path;

use super::{Failure, config_path};
use crate::config::Dirs;
use crate::config::keys::EXAMPLE;

/// What goes above the example's own text.
const HEADER: &str = "\
# Written by `syncmail init`. The two accounts below are examples: put in your own
# host, user and password_command (or delete an account you do not need), then run
#   syncmail check-config --connect
# to log in and see which folders would be synced. `man syncmail.toml` lists every key.
#
";

pub fn run(given: Option<&Path>) -> Result<(), Failure> {
    let dirs = Dirs::from_env();
    let path = config_path(given, &dirs)?;
    let text = format!("{HEADER}{EXAMPLE}");
    crate::import::write_new(&path, &text).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::Other(format!(
                "{} already exists; refusing to overwrite it (check it with `syncmail check-config`, or move it away first)",
                path.display()
            ))
        } else {
            Failure::Other(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    println!("syncmail: wrote {} (mode 0600)", path.display());
    println!("  edit the example accounts in it, then run: syncmail check-config --connect");
    Ok(())
}
