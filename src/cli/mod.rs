//! Command-line interface: parses arguments, loads the config, runs one subcommand and
//! maps the outcome to a sysexits-style exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Account, AccountKind, Config, ConfigError, Dirs, Tls};
use crate::engine::{self, EngineError};
use crate::imap::{self, ImapError};
use crate::import;
use crate::secret::{self, SecretError};
use crate::unified;

mod init;
mod labels;
mod log;
pub mod manual;

/// Exit codes: 0 ok, 1 other failure, 2 usage, 75 transient (EX_TEMPFAIL: try again
/// later), 78 config error (EX_CONFIG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Failure = 1,
    Usage = 2,
    TempFail = 75,
    Config = 78,
}

#[derive(Parser, Debug)]
#[command(
    name = "syncmail",
    version,
    about = "Two-way IMAP <-> Maildir sync with push, and POP3 polling"
)]
pub struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/syncmail/config.toml]
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); overrides general.log_level
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the config file and print what it configures
    CheckConfig {
        /// Also log in to every account and list the folders that would be synced
        #[arg(long)]
        connect: bool,
    },
    /// Sync accounts once and exit
    ///
    /// An IMAP account that `syncmail daemon` holds is synced by the daemon: `sync` asks
    /// it for a pass of every folder that starts after the request, prints that pass's
    /// outcome and exits with its code, waiting at most 120 s. --folder, --dry-run,
    /// --confirm-delete and --restore cannot be handed over; with them (and for a POP3
    /// account the daemon polls) `sync` does nothing and exits 75 (EX_TEMPFAIL).
    Sync {
        /// Accounts to sync [default: all]
        accounts: Vec<String>,
        /// Only this folder
        #[arg(long)]
        folder: Option<String>,
        /// Print the plan without changing anything
        #[arg(long)]
        dry_run: bool,
        /// Carry out deletions a safety guard held back (more than max_delete_share of a
        /// folder, or an emptied side); with --folder, a Maildir folder you deleted on
        /// purpose deletes its messages on the server too
        #[arg(long)]
        confirm_delete: bool,
        /// With --folder: a Maildir folder that is missing is made again and its mail
        /// fetched again (its sync state is forgotten; nothing is deleted anywhere)
        #[arg(long, requires = "folder", conflicts_with = "confirm_delete")]
        restore: bool,
        /// With --folder: lift the folder's halt and sync it; after a UIDVALIDITY change,
        /// keep the pairs confirmed by Message-ID and size however few they are (the
        /// others stay in the Maildir as they are; nothing is deleted)
        #[arg(long, requires = "folder")]
        confirm_repair: bool,
    },
    /// Run in the foreground, syncing on push events and timers
    Daemon,
    /// Write a commented starting config at the default path (or --config FILE); never
    /// overwrites a file
    Init,
    /// Show each account's and folder's state: last pass, errors, halts, unread and total
    /// counts, whether a daemon runs
    Status {
        /// One JSON document instead of text (schema: /usr/share/doc/syncmail/json-schema.md)
        #[arg(long)]
        json: bool,
    },
    /// The unified inbox: status, reconcile, rebuild
    Unified {
        #[command(subcommand)]
        command: UnifiedCommand,
    },
    /// Decide about messages a first contact held because it could not tell them apart
    /// (listed by `syncmail status`); without an option, list them
    Adopt {
        /// The account whose held messages to list or release
        account: String,
        /// Only this folder
        #[arg(long)]
        folder: Option<String>,
        /// They are distinct messages: copy each to the other side on the next pass
        #[arg(long, conflicts_with = "keep_apart")]
        transfer: bool,
        /// Leave each on its own side for good (nothing is copied or deleted)
        #[arg(long)]
        keep_apart: bool,
    },
    /// Sign in to an account with `[account.oauth2]` and store its refresh token: a
    /// browser on this machine (loopback redirect, PKCE), or --device on a headless one
    Login {
        /// The account to sign in to (it has `auth = "oauth2"`)
        account: String,
        /// The device flow (RFC 8628): enter a code on another device's browser
        #[arg(long)]
        device: bool,
        /// Only print the URL; do not start a browser
        #[arg(long)]
        no_browser: bool,
        /// Listen for the redirect on this loopback port instead of a random one (to
        /// forward it over SSH from a machine with a browser)
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Print the change and conflict log
    Log {
        /// Only this account [default: all]
        account: Option<String>,
        /// Only conflicts and how they were resolved
        #[arg(long)]
        conflicts: bool,
        /// One JSON document instead of text (schema: /usr/share/doc/syncmail/json-schema.md)
        #[arg(long)]
        json: bool,
    },
    /// List each message the server identifies across folders (OBJECTID, Gmail) with the
    /// folders it is in: its labels on Gmail; one file linked into each of them
    Labels {
        /// Only this account [default: all]
        account: Option<String>,
        /// One JSON document instead of text (schema: /usr/share/doc/syncmail/json-schema.md)
        #[arg(long)]
        json: bool,
    },
    /// Convert an mbsync or OfflineIMAP config into a syncmail config (printed, or
    /// written with --write) that adopts the same Maildir tree
    Import {
        #[command(subcommand)]
        tool: ImportTool,
    },
    /// Write man pages and shell completions into DIR (for packaging)
    #[command(hide = true)]
    GenerateManual { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum ImportTool {
    /// Convert an mbsync (isync 1.4) config [default FILE: ~/.mbsyncrc]
    Mbsync(ImportArgs),
    /// Convert an OfflineIMAP config [default FILE: ~/.offlineimaprc]
    Offlineimap(ImportArgs),
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The file to convert (never its sync state)
    pub file: Option<PathBuf>,
    /// Write the config where syncmail reads it (--config, else
    /// $XDG_CONFIG_HOME/syncmail/config.toml) instead of printing it; never overwrites
    #[arg(long)]
    pub write: bool,
    /// Write the config to PATH instead (implies --write); never overwrites
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum UnifiedCommand {
    /// Entries per account, the last reconcile, halts
    Status,
    /// Reconcile the unified folder with the accounts' Maildirs now (no network)
    Reconcile {
        /// Carry out deletions a safety guard held back
        #[arg(long)]
        confirm_delete: bool,
    },
    /// Drop the mapping and the unified folder's entries and build it again from the
    /// accounts' Maildirs; nothing is deleted in any account
    Rebuild,
}

/// A failed command, carrying the exit code it deserves.
#[derive(Debug)]
pub enum Failure {
    Config(ConfigError),
    Usage(String),
    TempFail(String),
    Other(String),
}

impl Failure {
    fn exit(&self) -> Exit {
        match self {
            Failure::Config(_) => Exit::Config,
            Failure::Usage(_) => Exit::Usage,
            Failure::TempFail(_) => Exit::TempFail,
            Failure::Other(_) => Exit::Failure,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Config(e) => write!(f, "{e}"),
            Failure::Usage(m) | Failure::TempFail(m) | Failure::Other(m) => f.write_str(m),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure::Config(e)
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            return ExitCode::from(code as u8);
        }
    };
    let exit = match run(cli) {
        Ok(()) => Exit::Ok,
        Err(failure) => {
            eprintln!("syncmail: {failure}");
            failure.exit()
        }
    };
    ExitCode::from(exit as u8)
}

/// Log to stderr in a form journald and launchd keep readable. `log` records from
/// dependencies are never bridged in: async-imap traces raw commands, LOGIN included.
fn init_tracing(level: &str, verbose: u8) {
    let level = match verbose {
        0 => std::env::var("SYNCMAIL_LOG").unwrap_or_else(|_| level.to_owned()),
        1 => "debug".to_owned(),
        _ => "trace".to_owned(),
    };
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{level},async_imap=off,imap_proto=off"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: the journal and launchd's log file keep them
        // as literal escape sequences.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_timer(LocalTimer)
        .try_init();
}

/// Log line times in the local zone (`TZ`, else the system's), as every other time
/// syncmail prints; tracing's default is UTC.
struct LocalTimer;

impl tracing_subscriber::fmt::time::FormatTime for LocalTimer {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = jiff::Zoned::now();
        write!(w, "{}", now.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z"))
    }
}

/// The config file to read (or write): `--config`, else the default path.
fn config_path(given: Option<&Path>, dirs: &Dirs) -> Result<PathBuf, Failure> {
    match given {
        Some(p) => Ok(p.to_owned()),
        None => dirs.default_config_path().ok_or_else(|| {
            Failure::Other("neither XDG_CONFIG_HOME nor HOME is set: pass --config FILE".into())
        }),
    }
}

fn load_config(config: Option<&Path>, verbose: u8) -> Result<Config, Failure> {
    let dirs = Dirs::from_env();
    let path = config_path(config, &dirs)?;
    let loaded = config::load(&path, &dirs)?;
    init_tracing(&loaded.config.general.log_level, verbose);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded.config)
}

/// The runtime of a one-shot command. One thread: the command is one future (every
/// account and folder of a `sync` is joined in it), so worker threads only polled the
/// sockets and woke this thread for each read, 20,000 context switches in an initial
/// sync of 10,000 messages against 700 with the reads on this thread. The fsync pool,
/// the store's writer and blocking tasks keep their own threads.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    build_runtime(tokio::runtime::Builder::new_current_thread())
}

/// The daemon's runtime: each account runs as its own task, in parallel on the workers.
fn daemon_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    build_runtime(tokio::runtime::Builder::new_multi_thread())
}

fn build_runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, Failure> {
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the async runtime: {e}")))
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    // The commands that work without a syncmail config: two make one.
    match cli.command {
        Command::Import { tool } => return run_import(cli.config.as_deref(), tool),
        Command::Init => return init::run(cli.config.as_deref()),
        Command::GenerateManual { dir } => {
            let written = manual::write_all(&dir)
                .map_err(|e| Failure::Other(format!("cannot write to {}: {e}", dir.display())))?;
            for path in written {
                println!("{}", path.display());
            }
            return Ok(());
        }
        _ => {}
    }
    let config = load_config(cli.config.as_deref(), cli.verbose)?;
    match cli.command {
        // Handled above, before a config is needed.
        Command::Import { .. } | Command::Init | Command::GenerateManual { .. } => Ok(()),
        Command::CheckConfig { connect } => {
            print_summary(&config);
            for account in &config.accounts {
                if let config::SecretSource::OAuth2(cfg) = &account.secret {
                    println!(
                        "  account {}: OAuth2 ({:?}, client id {}, scopes {}); {}",
                        account.name,
                        cfg.provider,
                        cfg.client_id,
                        cfg.scopes.join(" "),
                        secret::oauth2::store::describe_now(cfg)
                    );
                }
            }
            if connect {
                runtime()?.block_on(connect_all(&config))?;
            }
            Ok(())
        }
        Command::Sync {
            accounts,
            folder,
            dry_run,
            confirm_delete,
            restore,
            confirm_repair,
        } => {
            let opts = engine::SyncOptions {
                folder,
                dry_run,
                confirm_delete,
                restore,
                confirm_repair,
                progress: None,
            };
            let selected = select_accounts(&config, &accounts)?;
            let unified = config.unified.is_some() && !dry_run;
            if config.unified.is_some() && dry_run {
                println!("unified: --dry-run does not reconcile the unified folder; nothing done");
            }
            // Before the passes, so a change made in the unified folder reaches the
            // servers in this run; after them, so what the passes brought shows there.
            let before = if unified {
                print_unified(unified::reconcile(&config, unified::Options::default()))
            } else {
                Ok(())
            };
            let passes = runtime()?.block_on(sync_all(&config, &selected, &opts));
            let after = if unified {
                print_unified(unified::reconcile(&config, unified::Options::default()))
            } else {
                Ok(())
            };
            passes.and(before).and(after)
        }
        Command::Unified { command } => run_unified(&config, command),
        Command::Daemon => run_daemon(config),
        Command::Status { json } => {
            if json {
                print!("{}", crate::daemon::status::render_json(&config));
            } else {
                print!("{}", crate::daemon::status::render(&config));
            }
            Ok(())
        }
        Command::Adopt {
            account,
            folder,
            transfer,
            keep_apart,
        } => {
            let selected = select_accounts(&config, std::slice::from_ref(&account))?;
            let decision = match (transfer, keep_apart) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            runtime()?.block_on(adopt(&config, selected[0], folder, decision))
        }
        Command::Login {
            account,
            device,
            no_browser,
            port,
            timeout,
        } => {
            let selected = select_accounts(&config, std::slice::from_ref(&account))?;
            let opts = secret::oauth2::login::Options {
                device,
                open_browser: !no_browser,
                port,
                timeout: std::time::Duration::from_secs(timeout),
            };
            runtime()?.block_on(login(selected[0], &opts))
        }
        Command::Log {
            account,
            conflicts,
            json,
        } => {
            let names: Vec<String> = account.into_iter().collect();
            let selected = select_accounts(&config, &names)?;
            runtime()?.block_on(log::print(&config, &selected, conflicts, json))
        }
        Command::Labels { account, json } => {
            let names: Vec<String> = account.into_iter().collect();
            let selected = select_accounts(&config, &names)?;
            runtime()?.block_on(labels::print(&config, &selected, json))
        }
    }
}

/// `syncmail import`: convert the other tool's config; print it, or write a new file.
/// The rc file's errors name its line (exit 78); a draft that does not load yet is still
/// printed or written, and the loader's complaint follows on stderr.
fn run_import(config: Option<&Path>, tool: ImportTool) -> Result<(), Failure> {
    let (tool, args) = match tool {
        ImportTool::Mbsync(a) => (import::Tool::Mbsync, a),
        ImportTool::Offlineimap(a) => (import::Tool::OfflineImap, a),
    };
    let dirs = Dirs::from_env();
    let rc = match args.file {
        Some(f) => f,
        None => tool.default_rc(&dirs).ok_or_else(|| {
            Failure::Usage(format!(
                "HOME is not set: name the {} config file to convert",
                tool.command()
            ))
        })?,
    };
    let text = std::fs::read_to_string(&rc)
        .map_err(|e| Failure::Other(format!("cannot read {}: {e}", rc.display())))?;
    let rc = std::path::absolute(&rc).unwrap_or(rc);
    let converted = import::convert(tool, &rc, &text, &dirs)?;
    let target = match (&args.output, args.write) {
        (Some(out), _) => Some(out.clone()),
        (None, true) => Some(config_path(config, &dirs)?),
        (None, false) => None,
    };
    let shown = target
        .clone()
        .unwrap_or_else(|| PathBuf::from("<standard output>"));
    match &target {
        Some(path) => import::write_new(path, &converted.text).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Failure::Other(format!(
                    "{} already exists; refusing to overwrite it (move it away, or write elsewhere with --output PATH)",
                    path.display()
                ))
            } else {
                Failure::Other(format!("cannot write {}: {e}", path.display()))
            }
        })?,
        None => print!("{}", converted.text),
    }
    eprintln!(
        "syncmail import: {} account{} from {}{}; {} setting{} without a syncmail equivalent (`# not converted:`), {} place{} to edit (`# fix:`)",
        converted.accounts,
        if converted.accounts == 1 { "" } else { "s" },
        rc.display(),
        target
            .as_ref()
            .map(|p| format!(" written to {}", p.display()))
            .unwrap_or_default(),
        converted.not_converted,
        if converted.not_converted == 1 {
            ""
        } else {
            "s"
        },
        converted.fixes,
        if converted.fixes == 1 { "" } else { "s" },
    );
    import::check(&converted.text, &shown, &dirs).map_err(|e| {
        eprintln!(
            "syncmail import: the converted config does not load yet; edit it as the error says:"
        );
        Failure::Config(e)
    })?;
    if let Some(path) = &target {
        eprintln!(
            "syncmail import: check it with `syncmail --config {} check-config --connect`",
            path.display()
        );
    }
    Ok(())
}

/// Print a reconcile's summary, halts and errors the way account passes print theirs.
fn print_unified(result: Result<unified::Report, unified::UnifiedError>) -> Result<(), Failure> {
    match result {
        Ok(report) => {
            for halt in &report.halts {
                eprintln!("syncmail: unified: {halt}");
            }
            for error in &report.errors {
                eprintln!("syncmail: unified: {error}");
            }
            println!("unified: {report}");
            if report.halts.is_empty() && report.errors.is_empty() {
                Ok(())
            } else {
                Err(Failure::Other(
                    "the unified folder needs attention (see above)".into(),
                ))
            }
        }
        Err(e) => Err(Failure::Other(e.to_string())),
    }
}

fn run_unified(config: &Config, command: UnifiedCommand) -> Result<(), Failure> {
    if config.unified.is_none() {
        return Err(Failure::Usage(format!(
            "{} has no [unified] table; config/syncmail.example.toml shows one",
            config.path.display()
        )));
    }
    match command {
        UnifiedCommand::Status => {
            print!("{}", unified::render_status(config));
            Ok(())
        }
        UnifiedCommand::Reconcile { confirm_delete } => print_unified(unified::reconcile(
            config,
            unified::Options { confirm_delete },
        )),
        UnifiedCommand::Rebuild => print_unified(unified::rebuild(config)),
    }
}

/// `syncmail daemon`: runs until SIGTERM/SIGINT; SIGHUP re-reads the same config file.
fn run_daemon(config: Config) -> Result<(), Failure> {
    let path = config.path.clone();
    let reload: crate::daemon::Reloader = Box::new(move || {
        let loaded = config::load(&path, &Dirs::from_env()).map_err(|e| e.to_string())?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        Ok(loaded.config)
    });
    daemon_runtime()?
        .block_on(crate::daemon::serve(config, reload))
        .map_err(|e| Failure::Other(e.to_string()))
}

/// The accounts named on the command line (all when none), or a usage error naming the
/// unknown one.
fn select_accounts<'a>(config: &'a Config, names: &[String]) -> Result<Vec<&'a Account>, Failure> {
    if names.is_empty() {
        return Ok(config.accounts.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            config.account(n).ok_or_else(|| {
                let known: Vec<&str> = config.accounts.iter().map(|a| a.name.0.as_str()).collect();
                Failure::Usage(format!(
                    "no account named `{n}` in {}; accounts: {}",
                    config.path.display(),
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// On a terminal, one line redrawn in place; otherwise a log line per batch, which is
/// what journald and cron mail want.
fn progress_reporter(account: String) -> engine::Progress {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    // The counts are the account's running totals (over every folder and connection),
    // so they are labelled with the account; the folder is only where the pass is now.
    engine::Progress(std::sync::Arc::new(move |folder, c| {
        let line = format!(
            "{account}: {} fetched ({:.1} MiB), {} appended so far; now in {}",
            c.fetched,
            c.fetched_bytes as f64 / (1024.0 * 1024.0),
            c.appended,
            crate::maildir::shown_prefix(&folder.0)
        );
        if tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        } else {
            tracing::info!("{line}");
        }
    }))
}

/// Sync the accounts concurrently; a failure in one never stops the others.
async fn sync_all(
    config: &Config,
    accounts: &[&Account],
    opts: &engine::SyncOptions,
) -> Result<(), Failure> {
    let (pop3, imap): (Vec<&Account>, Vec<&Account>) = accounts
        .iter()
        .partition(|a| matches!(a.kind, AccountKind::Pop3(_)));
    let per_account: Vec<engine::SyncOptions> = imap
        .iter()
        .map(|a| engine::SyncOptions {
            progress: Some(progress_reporter(a.name.0.clone())),
            ..opts.clone()
        })
        .collect();
    let runs = imap
        .iter()
        .zip(&per_account)
        .map(|(a, o)| engine::sync_account(a, &config.general, o));
    let (results, (mut failed, mut transient, mut busy)) = futures::future::join(
        futures::future::join_all(runs),
        poll_pop3(config, &pop3, opts),
    )
    .await;
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprint!("\r\x1b[2K");
    }
    // Accounts the daemon holds: it runs the pass for us when the options let it.
    let mut handed = Vec::new();
    for (account, result) in imap.iter().zip(results) {
        match result {
            Ok(report) => {
                for plan in &report.plans {
                    println!("{plan}");
                }
                for note in &report.notes {
                    println!("{}: {note}", account.name);
                }
                for halt in &report.halts {
                    eprintln!("syncmail: account `{}`: {halt}", account.name);
                }
                for error in &report.errors {
                    eprintln!("syncmail: account `{}`: {error}", account.name);
                }
                failed |= !report.halts.is_empty() || !report.errors.is_empty();
                if !opts.dry_run {
                    println!("{}: {}", account.name, report.counts);
                }
            }
            Err(engine::EngineError::Lock(crate::store::LockError::Held { pid, .. })) => {
                match (held_by_daemon(&pid), not_handed_over(opts)) {
                    (true, None) => handed.push((*account, pid)),
                    (true, Some(option)) => busy.push(format!(
                        "account `{}`: the daemon (pid {pid}) holds this account, and {option} cannot be handed to it; nothing done here (stop the daemon to use {option})",
                        account.name
                    )),
                    (false, _) => busy.push(busy_line(&account.name.0, &pid)),
                }
            }
            Err(e) => {
                eprintln!("syncmail: account `{}`: {e}", account.name);
                if e.is_transient() {
                    transient = true;
                } else {
                    failed = true;
                }
            }
        }
    }
    let asks = handed.into_iter().map(|(account, pid)| async move {
        let answer = match crate::daemon::request::socket_path(&config.general.state_dir, &account.name) {
            Some(socket) => {
                eprintln!(
                    "syncmail: account `{}`: the daemon (pid {pid}) holds this account; it runs the pass (waiting up to {}s)",
                    account.name,
                    HANDOVER_LIMIT.as_secs()
                );
                crate::daemon::request::ask(&socket, HANDOVER_LIMIT).await
            }
            None => Err(crate::daemon::request::AskError::Closed),
        };
        (account, pid, answer)
    });
    for (account, pid, answer) in futures::future::join_all(asks).await {
        use crate::daemon::request::{AskError, Outcome};
        match answer {
            Ok(answer) => {
                for line in &answer.stdout {
                    println!("{line}");
                }
                for line in &answer.stderr {
                    eprintln!("{line}");
                }
                match answer.outcome {
                    Outcome::Ok => {}
                    Outcome::TempFail => transient = true,
                    Outcome::Failed => failed = true,
                }
            }
            // A daemon that takes no requests (an older one): refused as before.
            Err(AskError::NotListening(_)) => busy.push(busy_line(&account.name.0, &pid)),
            Err(e @ (AskError::Timeout(_) | AskError::Closed)) => {
                eprintln!(
                    "syncmail: account `{}`: {e}; nothing done here (`syncmail status` shows what the daemon is doing)",
                    account.name
                );
                transient = true;
            }
            Err(e @ AskError::Garbled(_)) => {
                eprintln!("syncmail: account `{}`: {e}", account.name);
                failed = true;
            }
        }
    }
    // An account another syncmail holds is being synced by it: not a fault, but this
    // run did not sync it (EX_TEMPFAIL). Said once, as the run's closing line when it is
    // the only news.
    if !busy.is_empty() && !failed && !transient {
        return Err(Failure::TempFail(busy.join("\nsyncmail: ")));
    }
    for line in &busy {
        eprintln!("syncmail: {line}");
    }
    transient |= !busy.is_empty();
    if failed {
        Err(Failure::Other(
            "some folders need attention (see above)".into(),
        ))
    } else if transient {
        Err(Failure::TempFail(
            "some accounts could not be reached; try again later".into(),
        ))
    } else {
        Ok(())
    }
}

/// How long `sync` waits for the daemon to run the pass it asked for: a pass of every
/// folder after whatever pass is running, on a slow link.
const HANDOVER_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Whether the process holding an account is `syncmail daemon`, by its command line.
fn held_by_daemon(pid: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.split(|b| *b == 0).any(|arg| arg == b"daemon")
}

/// The option that keeps a `sync` from being handed to the daemon, whose passes are
/// plain passes of every folder.
fn not_handed_over(opts: &engine::SyncOptions) -> Option<&'static str> {
    if opts.folder.is_some() {
        Some("--folder")
    } else if opts.dry_run {
        Some("--dry-run")
    } else if opts.confirm_delete {
        Some("--confirm-delete")
    } else if opts.restore {
        Some("--restore")
    } else {
        None
    }
}

/// What `sync` says of an account another syncmail process holds: who, and that nothing
/// was done here. The daemon is told apart by its command line.
fn busy_line(account: &str, pid: &str) -> String {
    if held_by_daemon(pid) {
        format!(
            "account `{account}`: the daemon (pid {pid}) is syncing this account; nothing done here (`syncmail status` shows its passes)"
        )
    } else {
        format!(
            "account `{account}`: another `syncmail sync` (pid {pid}) is syncing this account; nothing done here, try again when it has finished"
        )
    }
}

/// Poll POP3 accounts once, concurrently, printing a summary line each. Returns
/// `(failed, transient, busy)` as [`sync_all`] counts them.
async fn poll_pop3(
    config: &Config,
    accounts: &[&Account],
    opts: &engine::SyncOptions,
) -> (bool, bool, Vec<String>) {
    let now = std::time::SystemTime::now();
    let runs = accounts.iter().filter_map(|a| match &a.kind {
        AccountKind::Pop3(p) if !opts.dry_run => {
            let (account, pop3, general) = ((*a).clone(), p.clone(), config.general.clone());
            // Spawned onto a worker, where the IO driver runs: each network read then
            // wakes one thread instead of two, which shows on a busy machine.
            let poll = tokio::spawn(async move {
                crate::engine::pop3::poll_account(&account, &pop3, &general, now).await
            });
            Some(async move { (a, poll.await) })
        }
        _ => {
            println!(
                "{}: pop3: --dry-run does not contact POP3 servers; nothing done",
                a.name
            );
            None
        }
    });
    let (mut failed, mut transient, mut busy) = (false, false, Vec::new());
    for (account, result) in futures::future::join_all(runs).await {
        match result {
            Err(e) => {
                eprintln!(
                    "syncmail: POP3 account `{}`: the poll failed: {e}",
                    account.name
                );
                failed = true;
            }
            Ok(Ok(report)) => {
                for warning in &report.warnings {
                    eprintln!("syncmail: account `{}`: {warning}", account.name);
                }
                println!("{}: {report}", account.name);
            }
            Ok(Err(crate::engine::pop3::PollError {
                fault:
                    crate::engine::pop3::PollFault::Lock(crate::store::LockError::Held { pid, .. }),
                ..
            })) => busy.push(busy_line(&account.name.0, &pid)),
            Ok(Err(e)) => {
                eprintln!("syncmail: {e}");
                transient |= e.is_transient();
                failed |= !e.is_transient();
            }
        }
    }
    (failed, transient, busy)
}

/// List an account's held messages, or end their holds (`transfer`: copy them across
/// on the next pass; otherwise leave them apart for good).
async fn adopt(
    config: &Config,
    account: &Account,
    folder: Option<String>,
    transfer: Option<bool>,
) -> Result<(), Failure> {
    let (_lock, store) = engine::open_state(&config.general, &account.name).map_err(|e| {
        if e.is_transient() {
            Failure::TempFail(e.to_string())
        } else {
            Failure::Other(e.to_string())
        }
    })?;
    let folder_id = match &folder {
        Some(name) => Some(
            store
                .folder(&crate::model::FolderName(name.clone()))
                .await
                .map_err(|e| Failure::Other(e.to_string()))?
                .ok_or_else(|| {
                    Failure::Usage(format!("account `{}` has no folder {name:?}", account.name))
                })?
                .id,
        ),
        None => None,
    };
    let holds = store
        .holds(folder_id)
        .await
        .map_err(|e| Failure::Other(e.to_string()))?;
    let Some(transfer) = transfer else {
        if holds.is_empty() {
            println!("{}: nothing held", account.name);
        }
        for h in &holds {
            let what = match h.hold.side {
                crate::store::Side::Server => format!("server UID {}", h.hold.item),
                crate::store::Side::Local => format!("file {}", h.hold.item),
            };
            println!("{}: {}: {what}: {}", account.name, h.folder, h.hold.reason);
        }
        return Ok(());
    };
    store
        .release_holds(folder_id, transfer)
        .await
        .map_err(|e| Failure::Other(e.to_string()))?;
    let what = if transfer {
        "each will be copied to the other side by the next sync"
    } else {
        "each stays on its own side"
    };
    println!(
        "{}: {} held message(s) released; {what}",
        account.name,
        holds.len()
    );
    Ok(())
}

fn print_summary(config: &Config) {
    println!("{}: ok", config.path.display());
    println!("  maildir root: {}", config.general.maildir.display());
    println!("  state: {}", config.general.state_dir.display());
    for account in &config.accounts {
        let s = &account.server;
        let tls = match s.tls {
            Tls::Implicit => "TLS",
            Tls::Starttls => "STARTTLS",
            Tls::None => "plaintext",
        };
        let kind = match &account.kind {
            AccountKind::Imap(imap) => {
                let patterns: Vec<String> = imap
                    .folders
                    .0
                    .iter()
                    .map(|p| format!("{}{}", if p.exclude { "!" } else { "" }, p.glob))
                    .collect();
                let preset = match imap.provider {
                    Some((crate::config::Provider::Gmail, crate::config::ProviderFrom::Config)) => {
                        "gmail preset, "
                    }
                    Some((crate::config::Provider::Gmail, crate::config::ProviderFrom::Host)) => {
                        "gmail preset (from the host), "
                    }
                    None => "",
                };
                format!("imap, {preset}folders {}", patterns.join(" "))
            }
            AccountKind::Pop3(p) => format!(
                "pop3, every {}s, {}",
                account.poll_interval.as_secs(),
                if p.keep_on_server {
                    "keeps mail on the server"
                } else {
                    "deletes mail from the server after delivery"
                }
            ),
        };
        println!(
            "  account {}: {} as {} ({tls}), {kind}, into {}",
            account.name,
            format_args!("{}:{}", s.host, s.port),
            s.user,
            account.maildir.display()
        );
    }
    if let Some(u) = &config.unified {
        let list = |v: Vec<&str>| v.join(", ");
        println!(
            "  unified folder {}: {} of {}",
            u.path.display(),
            list(u.folders.iter().map(|f| f.0.as_str()).collect()),
            list(u.accounts.iter().map(|a| a.0.as_str()).collect())
        );
    }
}

async fn connect_all(config: &Config) -> Result<(), Failure> {
    let mut worst: Option<Failure> = None;
    for account in &config.accounts {
        match check_account(account).await {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
            }
            Err(f) => {
                eprintln!("syncmail: account `{}`: {f}", account.name);
                // A permanent failure outranks a transient one for the exit code.
                if !matches!(worst, Some(Failure::Other(_))) {
                    worst = Some(f);
                }
            }
        }
    }
    match worst {
        None => Ok(()),
        Some(Failure::TempFail(_)) => Err(Failure::TempFail(
            "some accounts could not be reached".into(),
        )),
        Some(_) => Err(Failure::Other("some accounts failed the check".into())),
    }
}

fn imap_failure(e: ImapError) -> Failure {
    if e.is_transient() {
        Failure::TempFail(e.to_string())
    } else {
        Failure::Other(e.to_string())
    }
}

/// `syncmail login ACCOUNT`: the flow, then who logged in and where the token went.
async fn login(account: &Account, opts: &secret::oauth2::login::Options) -> Result<(), Failure> {
    let config::SecretSource::OAuth2(cfg) = &account.secret else {
        return Err(Failure::Other(format!(
            "account {} has no [account.oauth2] table: `syncmail login` is for syncmail's own OAuth2 (auth = \"oauth2\")",
            account.name
        )));
    };
    let mut say = |line: &str| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let outcome = secret::oauth2::login::login(cfg, opts, &mut say)
        .await
        .map_err(secret_failure)?;
    match &outcome.who {
        Some(who) => println!("Logged in as {who}."),
        None => println!("Logged in (the provider did not say as whom)."),
    }
    println!(
        "The refresh token is stored in {}; a running daemon picks it up by itself.",
        outcome.place
    );
    Ok(())
}

fn secret_failure(e: SecretError) -> Failure {
    if e.is_transient() {
        Failure::TempFail(e.to_string())
    } else {
        Failure::Other(e.to_string())
    }
}

/// Log in to a POP3 account and report what the maildrop holds; changes nothing (QUIT
/// after STAT and no DELE).
async fn check_pop3(account: &Account) -> Result<Vec<String>, Failure> {
    let failure = |e: crate::pop3::Pop3Error| {
        if e.is_transient() {
            Failure::TempFail(e.to_string())
        } else {
            Failure::Other(e.to_string())
        }
    };
    let mut client = crate::engine::pop3::login(account)
        .await
        .map_err(|e| match e {
            crate::engine::pop3::PollFault::Pop3(e) => failure(e),
            crate::engine::pop3::PollFault::Secret(e) => secret_failure(e),
            other => Failure::Other(other.to_string()),
        })?;
    let stat = client.stat().await.map_err(failure)?;
    let uidl = client.has_capability("UIDL");
    let _ = client.quit().await;
    Ok(vec![format!(
        "  account {}: logged in; {} messages ({} KiB) on the server{}",
        account.name,
        stat.count,
        stat.octets / 1024,
        if uidl {
            ""
        } else {
            "; no UIDL: messages are told apart by a content hash"
        }
    )])
}

/// What the Gmail preset makes of this account, in words, for `check-config --connect`.
fn gmail_defaults(
    settings: &crate::config::ImapSettings,
    map: &crate::maildir::FolderMap,
) -> String {
    let all_mail = if settings.selects(map, "[Gmail]/All Mail") {
        "[Gmail]/All Mail synced as links (a message is downloaded and stored once, linked into INBOX, its label folders and All Mail)"
    } else {
        "[Gmail]/All Mail not synced (folders excludes it)"
    };
    let skipped: Vec<&str> = ["[Gmail]/Spam", "[Gmail]/Trash"]
        .into_iter()
        .filter(|f| !settings.selects(map, f))
        .collect();
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!("; not synced: {}", skipped.join(", "))
    };
    let deletion = match &settings.trash {
        Some(t) => format!("a deletion anywhere moves the message to {t} (trash)"),
        None => "a deletion in a label folder removes that label; in All Mail it moves the message to [Gmail]/Trash".to_owned(),
    };
    format!(
        "{all_mail}{skipped}; {deletion}; at most {} connections (Gmail allows {})",
        settings.max_connections,
        crate::config::GMAIL_MAX_CONNECTIONS
    )
}

async fn check_account(account: &Account) -> Result<Vec<String>, Failure> {
    let AccountKind::Imap(settings) = &account.kind else {
        return check_pop3(account).await;
    };
    let mut connected = crate::engine::login(account).await.map_err(|e| match e {
        EngineError::Imap(e) => imap_failure(e),
        EngineError::Secret(e) => secret_failure(e),
        other => Failure::Other(other.to_string()),
    })?;
    let folders = imap::list_folders(&mut connected, account.server.timeout)
        .await
        .map_err(imap_failure)?;
    let _ = connected.session.logout().await;
    let map = crate::engine::folder_map(account, &connected, &folders)
        .expect("an IMAP account has a folder map");
    let namespace = match (&connected.namespace, &map.prefix) {
        (None, _) => "the server has no NAMESPACE; folder names are used as they are".to_owned(),
        (Some(ns), Some(prefix)) => format!(
            "personal namespace {:?} (delimiter {}): server {prefix}Archive is the local folder Archive",
            ns.prefix,
            ns.delimiter.map_or("none".to_owned(), |d| format!("{d:?}")),
        ),
        (Some(ns), None) if ns.prefix.is_empty() => format!(
            "personal namespace \"\" (delimiter {}): folder names are used as they are",
            ns.delimiter.map_or("none".to_owned(), |d| format!("{d:?}")),
        ),
        (Some(ns), None) => format!(
            "personal namespace {:?}; kept in local folder names (use_namespace = false)",
            ns.prefix
        ),
    };
    let mut lines = vec![
        format!(
            "  account {}: logged in; capabilities: {}",
            account.name,
            connected.capabilities.join(" ")
        ),
        format!("  account {}: {namespace}", account.name),
    ];
    if connected.has("OBJECTID") {
        lines.push(format!(
            "  account {}: OBJECTID (EMAILID): a message in several folders is downloaded once and hard-linked into each",
            account.name
        ));
    } else if connected.has("X-GM-EXT-1") {
        lines.push(format!(
            "  account {}: Gmail (X-GM-EXT-1): X-GM-MSGID identifies a message across labels: downloaded once and hard-linked into each label folder",
            account.name
        ));
    }
    match settings.provider {
        Some((crate::config::Provider::Gmail, from)) => lines.push(format!(
            "  account {}: provider gmail ({}): {}",
            account.name,
            match from {
                crate::config::ProviderFrom::Config => "provider = \"gmail\"",
                crate::config::ProviderFrom::Host => "from the host",
            },
            gmail_defaults(settings, &map)
        )),
        None if connected.has("X-GM-EXT-1") => lines.push(format!(
            "  account {}: the server offers X-GM-EXT-1: it is Gmail; set provider = \"gmail\" for its defaults (Spam and Trash not synced, a deletion in All Mail moves to the Trash)",
            account.name
        )),
        None => {}
    }
    lines.extend(
        imap::fallbacks(|c| connected.has(c))
            .into_iter()
            .map(|l| format!("    {l}")),
    );
    let names: Vec<String> = folders
        .iter()
        .filter(|f| f.selectable)
        .filter_map(|f| crate::maildir::decode_server_name(&f.raw_name).ok())
        .map(|n| n.0)
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for p in settings.unmatched_patterns(&map, &names) {
        lines.push(format!(
            "  account {}: warning: folder pattern `{}` matches no folder on the server",
            account.name, p.glob
        ));
    }
    for f in folders.iter().filter(|f| f.selectable) {
        let line = match crate::maildir::decode_server_name(&f.raw_name) {
            Ok(name) if map.personal_name(&name.0).is_none() => {
                format!("    skip   {name} (outside the personal namespace)")
            }
            Ok(name) => {
                let selected = settings.selects(&map, &name.0);
                let local = match map.relative(&name) {
                    Ok(rel) if map.prefix.is_some() => format!(" -> {}", rel.display()),
                    Ok(_) => String::new(),
                    Err(e) => format!(" (refused: {e})"),
                };
                format!(
                    "    {} {name}{local}",
                    if selected { "sync  " } else { "skip  " }
                )
            }
            Err(e) => format!("    refuse {e}"),
        };
        lines.push(line);
    }
    Ok(lines)
}
