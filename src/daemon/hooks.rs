//! User hooks (`on_new_mail`, `after_sync`): run without a shell, in the background so a
//! slow hook never delays a sync, and killed at the timeout.

use std::time::Duration;

/// Start `argv` with `env` added; returns at once.
pub fn spawn(
    what: &'static str,
    argv: &[String],
    env: Vec<(&'static str, String)>,
    limit: Duration,
) {
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let program = program.clone();
    tokio::spawn(async move {
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("{what} hook: cannot run {program}: {e}");
                return;
            }
        };
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => tracing::warn!("{what} hook {program} exited with {status}"),
            Ok(Err(e)) => tracing::warn!("{what} hook {program}: {e}"),
            Err(_) => {
                tracing::warn!("{what} hook {program} ran longer than {limit:?}; killed");
                let _ = child.kill().await;
            }
        }
    });
}
