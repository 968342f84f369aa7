//! IDLE against a scripted server: the transcripts a real server will not produce on
//! cue (a silent half-open link, a connection closed mid-IDLE, news before the `+`).

use std::time::Duration;

use syncmail::imap::{Connected, IdleSession, IdleWake, ImapError, ImapStream, Notice};
use syncmail::net;
use tokio::net::TcpStream;

use crate::support::idle_script::{self, Script};

async fn connected_to(script: Script) -> (Connected, tokio::task::JoinHandle<()>) {
    let (port, server) = idle_script::start(script).await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let client = async_imap::Client::new(ImapStream::Net(net::Stream::Plain(tcp)));
    let session = client.login("u", "p").await.map_err(|(e, _)| e).unwrap();
    let connected = Connected {
        session,
        capabilities: vec!["IMAP4rev1".into(), "IDLE".into(), "NOTIFY".into()],
        namespace: None,
    };
    (connected, server)
}

async fn idle_against(script: Script) -> (IdleSession, tokio::task::JoinHandle<()>) {
    let (connected, server) = connected_to(script).await;
    assert!(IdleSession::supported(&connected));
    let idle = IdleSession::start(connected, "INBOX", Duration::from_millis(500))
        .await
        .unwrap();
    (idle, server)
}

const REFRESH: Duration = Duration::from_millis(300);

#[tokio::test]
async fn idle_reports_exists_as_a_change() {
    let (mut idle, _s) = idle_against(Script::Exists).await;
    // The change is handed over as it arrives, before the DONE round trip.
    let mut early = Vec::new();
    let wake = idle
        .wait(REFRESH, std::future::pending(), |n| early.push(n))
        .await
        .unwrap();
    assert_eq!(wake, IdleWake::Changed);
    assert_eq!(early, [Notice::Selected]);
}

#[tokio::test]
async fn news_before_the_continuation_is_not_lost() {
    let (mut idle, _s) = idle_against(Script::ExistsBeforeContinue).await;
    let wake = idle
        .wait(REFRESH, std::future::pending(), |_| {})
        .await
        .unwrap();
    assert_eq!(wake, IdleWake::Changed);
    assert_eq!(idle.take_notices(), [Notice::Selected]);
}

#[tokio::test]
async fn a_quiet_folder_is_refreshed_and_interrupts_work() {
    let (mut idle, _s) = idle_against(Script::Quiet).await;
    let t0 = std::time::Instant::now();
    let wake = idle
        .wait(REFRESH, std::future::pending(), |_| {})
        .await
        .unwrap();
    assert_eq!(wake, IdleWake::Refreshed);
    assert!(t0.elapsed() >= REFRESH);
    let wake = idle
        .wait(
            Duration::from_secs(60),
            async { tokio::time::sleep(Duration::from_millis(50)).await },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(wake, IdleWake::Interrupted);
    idle.logout().await;
}

#[tokio::test]
async fn a_half_open_link_times_out_at_the_refresh() {
    let (mut idle, _s) = idle_against(Script::Silent).await;
    let t0 = std::time::Instant::now();
    let err = idle
        .wait(REFRESH, std::future::pending(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ImapError::Timeout { .. }), "{err}");
    assert!(err.is_transient());
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_closed_connection_is_an_error_not_an_interrupt() {
    let (mut idle, _s) = idle_against(Script::Close).await;
    let err = idle
        .wait(Duration::from_secs(60), std::future::pending(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ImapError::Connect(_)), "{err}");
}

#[tokio::test]
async fn notify_events_name_a_deep_folder_and_a_changed_folder_list() {
    let (connected, _s) = connected_to(Script::NotifyEvents).await;
    assert!(IdleSession::supports_notify(&connected));
    let mut idle = IdleSession::start_notify(connected, Some("INBOX"), Duration::from_millis(500))
        .await
        .unwrap();
    let mut notices = Vec::new();
    // The two events may come in one wake or two.
    while notices.len() < 2 {
        let wake = idle
            .wait(REFRESH, std::future::pending(), |n| notices.push(n))
            .await
            .unwrap();
        assert_eq!(wake, IdleWake::Changed);
        notices.extend(idle.take_notices());
    }
    assert_eq!(
        notices,
        [Notice::Folder("Lists/rust/2026".into()), Notice::Folders]
    );
}

#[tokio::test]
async fn a_refused_notify_is_a_protocol_error_the_daemon_falls_back_from() {
    let (connected, _s) = connected_to(Script::NotifyRefused).await;
    let Err(err) = IdleSession::start_notify(connected, None, Duration::from_millis(500)).await
    else {
        panic!("NOTIFY was refused");
    };
    assert!(matches!(err, ImapError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("NOTIFICATIONOVERFLOW"), "{err}");
}
