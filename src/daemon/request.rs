//! `syncmail sync` on an account the daemon holds: the one-shot asks the daemon for a
//! pass over a unix socket next to the account's lock (`<state_dir>/<account>.sock`,
//! bound by the account's supervisor, 0600 in the private state dir), and gets the
//! outcome of the first pass of every folder that started after it asked.
//!
//! The wire is lines: the client sends `sync`; the daemon answers, once the pass is
//! done, `ok` / `tempfail` / `failed`, then the lines `sync` would print, each prefixed
//! `1 ` (stdout) or `2 ` (stderr), and closes. A socket is the simplest channel that
//! also tells the client when the daemon stops or dies (the connection closes), with
//! no pid to signal, no files to clean up and no polling.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::triggers::{Triggers, Work};
use crate::model::AccountName;

/// How a handed-over pass ended, as `sync` maps it to its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    TempFail,
    Failed,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::TempFail => "tempfail",
            Outcome::Failed => "failed",
        }
    }

    fn parse(word: &str) -> Option<Outcome> {
        match word {
            "ok" => Some(Outcome::Ok),
            "tempfail" => Some(Outcome::TempFail),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// The daemon's answer: the outcome and what `sync` prints for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Answer {
    fn encode(&self) -> String {
        let mut out = format!("{}\n", self.outcome.word());
        for (fd, lines) in [(1, &self.stdout), (2, &self.stderr)] {
            for line in lines {
                // One line each: a line break inside a message would be read as a new one.
                out.push_str(&format!("{fd} {}\n", line.replace(['\r', '\n'], " ")));
            }
        }
        out
    }

    fn decode(text: &str) -> Option<Answer> {
        let mut lines = text.lines();
        let outcome = Outcome::parse(lines.next()?)?;
        let mut answer = Answer {
            outcome,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        for line in lines {
            match line.split_at_checked(2) {
                Some(("1 ", rest)) => answer.stdout.push(rest.to_owned()),
                Some(("2 ", rest)) => answer.stderr.push(rest.to_owned()),
                _ => return None,
            }
        }
        Some(answer)
    }
}

/// The socket of an account, next to its lock file.
pub fn socket_path(state_dir: &Path, account: &AccountName) -> Option<PathBuf> {
    let lock = crate::store::lock_path(state_dir, account).ok()?;
    Some(lock.with_extension("sock"))
}

/// Clients waiting for the next pass of every folder. Closed when the supervisor ends:
/// the waiting clients then see their connection close.
#[derive(Debug, Default)]
pub struct Waiting {
    inner: Mutex<(Vec<oneshot::Sender<Answer>>, bool)>,
}

impl Waiting {
    fn lock(&self) -> MutexGuard<'_, (Vec<oneshot::Sender<Answer>>, bool)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self) -> Option<oneshot::Receiver<Answer>> {
        let mut inner = self.lock();
        if inner.1 {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        inner.0.push(tx);
        Some(rx)
    }

    /// The clients a pass starting now answers.
    pub fn take(&self) -> Vec<oneshot::Sender<Answer>> {
        std::mem::take(&mut self.lock().0)
    }

    /// Put back clients a pass turned out not to answer (it did not cover every folder).
    pub fn restore(&self, asked: Vec<oneshot::Sender<Answer>>) {
        self.lock().0.extend(asked);
    }

    pub fn close(&self) {
        let mut inner = self.lock();
        inner.1 = true;
        inner.0.clear();
    }
}

/// Answer every client in `asked`.
pub fn answer(asked: Vec<oneshot::Sender<Answer>>, answer: &Answer) {
    for client in asked {
        let _ = client.send(answer.clone());
    }
}

/// How long a client may take to say what it wants.
const REQUEST_LIMIT: Duration = Duration::from_secs(5);

/// Bind the account's socket (a stale one is replaced: the caller holds the account's
/// lock) and serve it until `stop`. `None`, and a warning, if it cannot be bound: a
/// `sync` then refuses as before.
pub fn listen(
    state_dir: &Path,
    account: &AccountName,
    waiting: Arc<Waiting>,
    triggers: Arc<Triggers>,
    mut stop: watch::Receiver<bool>,
) -> Option<(PathBuf, JoinHandle<()>)> {
    let path = socket_path(state_dir, account)?;
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(account = %account, "cannot listen on {} ({e}); `syncmail sync` on this account is refused while the daemon runs", path.display());
            return None;
        }
    };
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(account = %account, "cannot make {} private ({e}); not listening", path.display());
        let _ = std::fs::remove_file(&path);
        return None;
    }
    let name = account.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = super::account::stopped(&mut stop) => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let (waiting, triggers) = (waiting.clone(), triggers.clone());
                        let name = name.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve(stream, &waiting, &triggers).await {
                                tracing::debug!(account = %name, "a sync request: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::debug!(account = %name, "accepting a sync request: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    });
    Some((path, task))
}

async fn serve(stream: UnixStream, waiting: &Waiting, triggers: &Triggers) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut read = BufReader::new(read.take(64));
    tokio::time::timeout(REQUEST_LIMIT, read.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    if line.trim_end() != "sync" {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unknown request {:?}", line.trim_end()),
        ));
    }
    let Some(answer) = waiting.add() else {
        return Ok(());
    };
    tracing::info!("`syncmail sync` asked for a pass of every folder");
    triggers.add(Work {
        all: true,
        now: true,
        ..Work::default()
    });
    // Dropped unanswered: the daemon is stopping; closing says so to the client.
    if let Ok(answer) = answer.await {
        write.write_all(answer.encode().as_bytes()).await?;
        write.shutdown().await?;
    }
    Ok(())
}

/// Why [`ask`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("the daemon does not take sync requests for this account ({0})")]
    NotListening(std::io::Error),
    #[error("the daemon ran no pass within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("the daemon stopped before its pass finished")]
    Closed,
    #[error("the daemon's answer could not be read: {0}")]
    Garbled(String),
}

/// The most an answer may hold: the lines of one pass's report.
const MAX_ANSWER: u64 = 1 << 20;

/// Ask the daemon behind `socket` for a pass of every folder and wait up to `limit`
/// for its outcome.
pub async fn ask(socket: &Path, limit: Duration) -> Result<Answer, AskError> {
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(AskError::NotListening)?;
    stream
        .write_all(b"sync\n")
        .await
        .map_err(AskError::NotListening)?;
    let mut text = String::new();
    let read = async {
        let mut limited = (&mut stream).take(MAX_ANSWER);
        limited.read_to_string(&mut text).await
    };
    match tokio::time::timeout(limit, read).await {
        Err(_) => Err(AskError::Timeout(limit)),
        Ok(Err(e)) => Err(AskError::Garbled(e.to_string())),
        Ok(Ok(_)) if text.is_empty() => Err(AskError::Closed),
        Ok(Ok(_)) => Answer::decode(&text).ok_or_else(|| AskError::Garbled(text.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_survives_the_wire_one_line_per_message() {
        let a = Answer {
            outcome: Outcome::TempFail,
            stdout: vec!["t: fetched 1".into()],
            stderr: vec!["syncmail: account `t`: a\nb".into()],
        };
        let back = Answer::decode(&a.encode()).unwrap();
        assert_eq!(back.outcome, Outcome::TempFail);
        assert_eq!(back.stdout, a.stdout);
        assert_eq!(back.stderr, ["syncmail: account `t`: a b"]);
        assert_eq!(Answer::decode("maybe\n"), None);
        assert_eq!(Answer::decode("ok\n3 x\n"), None);
    }

    #[test]
    fn the_socket_sits_next_to_the_lock() {
        let p = socket_path(Path::new("/s"), &AccountName("work.mail".into())).unwrap();
        assert_eq!(p, Path::new("/s/work.mail.sock"));
    }

    #[tokio::test]
    async fn a_request_is_answered_by_the_pass_that_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        let account = AccountName("t".into());
        let waiting = Arc::new(Waiting::default());
        let triggers = Arc::new(Triggers::default());
        let (stop, stop_rx) = watch::channel(false);
        let (path, task) = listen(
            dir.path(),
            &account,
            waiting.clone(),
            triggers.clone(),
            stop_rx,
        )
        .unwrap();
        let asking = tokio::spawn(async move { ask(&path, Duration::from_secs(5)).await });
        // The supervisor's side: the request shows as work, the pass answers it.
        let mut asked = Vec::new();
        while asked.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            asked = waiting.take();
        }
        assert!(triggers.take().all);
        answer(
            asked,
            &Answer {
                outcome: Outcome::Ok,
                stdout: vec!["t: quiet".into()],
                stderr: vec![],
            },
        );
        let got = asking.await.unwrap().unwrap();
        assert_eq!(got.outcome, Outcome::Ok);
        assert_eq!(got.stdout, ["t: quiet"]);
        // A daemon that stops closes on the waiting client.
        let path = socket_path(dir.path(), &account).unwrap();
        let asking = tokio::spawn(async move { ask(&path, Duration::from_secs(5)).await });
        while waiting.lock().0.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        waiting.close();
        assert!(matches!(asking.await.unwrap(), Err(AskError::Closed)));
        let _ = stop.send(true);
        task.await.unwrap();
    }
}
