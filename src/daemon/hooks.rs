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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::spawn;

    /// The process exists (a zombie not yet reaped still would).
    fn alive(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    #[tokio::test]
    async fn a_hook_past_its_timeout_is_killed_and_the_environment_reaches_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!(
            "echo \"$$ $SYNCMAIL_ACCOUNT\" > {}; exec sleep 30",
            pid_file.display()
        );
        spawn(
            "test",
            &["sh".into(), "-c".into(), script],
            vec![("SYNCMAIL_ACCOUNT", "work".into())],
            Duration::from_millis(300),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let line = loop {
            match std::fs::read_to_string(&pid_file) {
                Ok(s) if s.ends_with('\n') => break s,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                other => panic!("the hook never ran: {other:?}"),
            }
        };
        let (pid, account) = line.trim().split_once(' ').unwrap();
        assert_eq!(account, "work");
        let pid: u32 = pid.parse().unwrap();
        assert!(alive(pid), "running until the timeout");
        while alive(pid) {
            // Reaped by the hook's task after the kill; a zombie would stay "alive".
            assert!(Instant::now() < deadline, "the hook outlived its timeout");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
