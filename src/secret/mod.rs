//! Fetches the account's password or OAuth2 token from its configured source. Commands
//! run without a shell; the secret is wrapped so that no `Debug` or log can print it.
//! [`oauth2`] is syncmail's own OAuth2: login, token store, refresh.

pub mod oauth2;

use std::fmt;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::config::SecretSource;

/// A password or token. Its `Debug` and `Display` are redacted on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What kind of credential a source yields: it decides the login mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    Password,
    OAuth2Token,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{key} {argv:?} could not be started: {source}")]
    Spawn {
        key: &'static str,
        argv: Vec<String>,
        source: std::io::Error,
    },
    #[error("{key} {argv:?} did not finish within {timeout:?}")]
    Timeout {
        key: &'static str,
        argv: Vec<String>,
        timeout: Duration,
    },
    #[error("{key} {argv:?} failed ({status}){stderr}")]
    Failed {
        key: &'static str,
        argv: Vec<String>,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{key} {argv:?} printed nothing on its first line")]
    Empty {
        key: &'static str,
        argv: Vec<String>,
    },
    /// The account needs a human: no stored OAuth2 login, or the provider refused it.
    #[error("account {account}: {why}; run `syncmail login {account}`")]
    LoginNeeded { account: String, why: String },
    /// The authorization server could not be asked (network, TLS, a 5xx): transient.
    #[error("account {account}: OAuth2: {why}")]
    OAuth2 { account: String, why: String },
    #[error("account {account}: the OAuth2 token store: {why}")]
    TokenStore { account: String, why: String },
    #[error("{key} {argv:?}: {source}")]
    Io {
        key: &'static str,
        argv: Vec<String>,
        source: std::io::Error,
    },
}

impl SecretError {
    /// Only a new `syncmail login` can help.
    pub fn needs_login(&self) -> bool {
        matches!(self, SecretError::LoginNeeded { .. })
    }

    /// Worth retrying soon by itself.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SecretError::OAuth2 { .. } | SecretError::Timeout { .. }
        )
    }
}

/// How long a password command may take: long enough for a GPG pinentry prompt.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The credentials of one login, with one more try allowed when the server refuses
/// syncmail's own OAuth2 access token: a token can be refused early (clock skew, a
/// revocation the provider has not told us about), and the user should not see that.
///
/// ```ignore
/// let mut login = Login::new(&account.secret);
/// loop {
///     let (secret, kind) = login.credential().await?;
///     match connect(&secret, kind).await {
///         Err(e) if is_rejection(&e) && login.rejected(&e).await => continue,
///         other => break other,
///     }
/// }
/// ```
pub struct Login<'a> {
    source: &'a SecretSource,
    retried: bool,
}

impl<'a> Login<'a> {
    pub fn new(source: &'a SecretSource) -> Login<'a> {
        Login {
            source,
            retried: false,
        }
    }

    pub async fn credential(&self) -> Result<(Secret, CredentialKind), SecretError> {
        fetch(self.source, COMMAND_TIMEOUT).await
    }

    /// The server refused the login: whether to try once more, with a fresh token.
    pub async fn rejected(&mut self, why: &(dyn fmt::Display + Sync)) -> bool {
        let SecretSource::OAuth2(cfg) = self.source else {
            return false;
        };
        if self.retried {
            return false;
        }
        self.retried = true;
        tracing::info!(
            account = %cfg.account,
            "the server refused the OAuth2 access token ({why}); refreshing it and logging in once more"
        );
        oauth2::rejected(cfg).await;
        true
    }
}

/// Fetch the secret. The first line of a command's stdout is the secret; the rest is
/// ignored, as `pass` prints metadata after the first line.
pub async fn fetch(
    source: &SecretSource,
    timeout: Duration,
) -> Result<(Secret, CredentialKind), SecretError> {
    let (key, argv, kind) = match source {
        SecretSource::Password(p) => return Ok((Secret::new(p.clone()), CredentialKind::Password)),
        SecretSource::PasswordCommand(argv) => ("password_command", argv, CredentialKind::Password),
        SecretSource::OAuth2TokenCommand(argv) => {
            ("oauth2_token_command", argv, CredentialKind::OAuth2Token)
        }
        SecretSource::OAuth2(cfg) => {
            let token = oauth2::access_token(cfg, std::time::SystemTime::now()).await?;
            return Ok((token, CredentialKind::OAuth2Token));
        }
    };
    let argv_owned = argv.clone();
    let Some((program, args)) = argv.split_first() else {
        return Err(SecretError::Empty {
            key,
            argv: argv_owned,
        });
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SecretError::Spawn {
            key,
            argv: argv_owned.clone(),
            source,
        })?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(s) = stdout.as_mut() {
            s.read_to_end(&mut out).await?;
        }
        if let Some(s) = stderr.as_mut() {
            s.read_to_end(&mut err).await?;
        }
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out, err))
    };
    let (status, out, err) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| SecretError::Timeout {
            key,
            argv: argv_owned.clone(),
            timeout,
        })?
        .map_err(|source| SecretError::Io {
            key,
            argv: argv_owned.clone(),
            source,
        })?;
    if !status.success() {
        let first = String::from_utf8_lossy(&err)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        return Err(SecretError::Failed {
            key,
            argv: argv_owned,
            status,
            stderr: if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            },
        });
    }
    let text = String::from_utf8_lossy(&out);
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(SecretError::Empty {
            key,
            argv: argv_owned,
        });
    }
    Ok((Secret::new(line), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(argv: &[&str]) -> SecretSource {
        SecretSource::PasswordCommand(argv.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn first_line_of_stdout_without_a_shell() {
        let (secret, kind) = fetch(&cmd(&["printf", "hunter2\nuser: me\n"]), COMMAND_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(kind, CredentialKind::Password);
        // No shell: `$HOME` stays literal.
        let (secret, _) = fetch(&cmd(&["echo", "$HOME;x"]), COMMAND_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(secret.expose(), "$HOME;x");
    }

    #[tokio::test]
    async fn failures_name_the_command_and_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let script = format!("cat {}; echo nope >&2; exit 3", file.display());
        let err = fetch(&cmd(&["sh", "-c", &script]), COMMAND_TIMEOUT)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("password_command") && text.contains("nope"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        let err = fetch(&cmd(&["/nonexistent/prog"]), COMMAND_TIMEOUT)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("could not be started"), "{err}");
        let err = fetch(&cmd(&["true"]), COMMAND_TIMEOUT).await.unwrap_err();
        assert!(err.to_string().contains("printed nothing"), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_command_times_out() {
        let err = fetch(&cmd(&["sleep", "10"]), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::Timeout { .. }), "{err}");
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
    }
}
