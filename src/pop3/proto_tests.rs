//! Known-answer transcripts for the POP3 state machine: every byte the client sends and
//! every event it reads, with the server's side scripted.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

use super::*;

/// A session past the greeting.
fn ready() -> Protocol {
    let mut p = Protocol::new();
    p.feed(b"+OK POP3 ready\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Greeting { .. }))));
    p
}

fn sent(p: &mut Protocol, c: Command<'_>) -> String {
    String::from_utf8(p.send(c).unwrap().bytes().to_vec()).unwrap()
}

/// Every event until more input is needed.
fn drain(p: &mut Protocol) -> Result<Vec<Event>, ProtoError> {
    let mut out = Vec::new();
    while let Some(e) = p.next_event()? {
        out.push(e);
    }
    Ok(out)
}

/// Dot-stuff a message as a server does: a dot at the start of a line (after CR LF) is
/// doubled; the terminator follows. `msg` must end with CR LF.
fn stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line_start = true;
    for (i, &b) in msg.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && msg[i - 1] == b'\r';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Feed `wire` (the answer to a RETR) in the given pieces; returns the body read.
fn retr_in_pieces(wire: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut p = ready();
    p.send(Command::Retr(MsgNo(1))).unwrap();
    let mut body = Vec::new();
    let mut ended = 0;
    let mut feed_and_drain = |p: &mut Protocol, piece: &[u8]| {
        p.feed(piece);
        for e in drain(p).unwrap() {
            match e {
                Event::Body(b) => {
                    assert!(ended == 0, "body after End");
                    assert!(!b.is_empty() && b.len() <= BODY_CHUNK);
                    body.extend_from_slice(&b);
                }
                Event::End => ended += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
        let cut = cut.clamp(start, wire.len());
        feed_and_drain(&mut p, &wire[start..cut]);
        start = cut;
    }
    assert_eq!(ended, 1, "exactly one End");
    assert_eq!(p.pending(), 0);
    assert_eq!(p.buffered(), 0);
    body
}

/// Lines that start with dots, a line that is a lone dot, CRs in odd places, and an
/// empty line: everything the terminator could be confused with.
const TRICKY: &[u8] = b"From: a@example.com\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n...\r\n.\rbare CR after dot\r\nmid.dle\r\n\r\n.x\r\n\r\r\n.\r\n";

fn retr_wire(body: &[u8]) -> Vec<u8> {
    let mut wire = b"+OK message follows\r\n".to_vec();
    wire.extend_from_slice(&stuff(body));
    wire
}

#[test]
fn a_whole_session_transcript() {
    let mut p = Protocol::new();
    p.feed(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
    assert_eq!(
        p.next_event(),
        Ok(Some(Event::Greeting {
            text: "POP3 server ready <1896.697170952@dbc.mtview.ca.us>".into(),
            apop_timestamp: Some("<1896.697170952@dbc.mtview.ca.us>".into()),
        }))
    );
    assert_eq!(sent(&mut p, Command::Capa), "CAPA\r\n");
    p.feed(b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nSASL PLAIN LOGIN\r\nSTLS\r\n.\r\n");
    assert_eq!(
        drain(&mut p),
        Ok(vec![
            Event::Capability("TOP".into()),
            Event::Capability("UIDL".into()),
            Event::Capability("SASL PLAIN LOGIN".into()),
            Event::Capability("STLS".into()),
            Event::End,
        ])
    );
    assert_eq!(sent(&mut p, Command::User("mrose")), "USER mrose\r\n");
    p.feed(b"+OK mrose is a real hoopy frood\r\n");
    assert_eq!(
        drain(&mut p),
        Ok(vec![Event::Ok {
            text: "mrose is a real hoopy frood".into()
        }])
    );
    let pw = Secret::new("tanstaaf");
    let out = p.send(Command::Pass(&pw)).unwrap();
    assert_eq!(out.bytes(), b"PASS tanstaaf\r\n");
    assert_eq!(out.shown(), "PASS <redacted>");
    assert!(!format!("{out:?}").contains("tanstaaf"));
    p.feed(b"+OK maildrop has 2 messages (320 octets)\r\n");
    assert!(matches!(drain(&mut p).unwrap()[..], [Event::Ok { .. }]));

    assert_eq!(sent(&mut p, Command::Stat), "STAT\r\n");
    p.feed(b"+OK 2 320\r\n");
    assert_eq!(
        drain(&mut p),
        Ok(vec![Event::Stat {
            count: 2,
            octets: 320
        }])
    );
    assert_eq!(sent(&mut p, Command::Uidl(None)), "UIDL\r\n");
    p.feed(b"+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n");
    assert_eq!(
        drain(&mut p),
        Ok(vec![
            Event::Uidl {
                msg: MsgNo(1),
                uidl: "whqtswO00WBw418f9t5JxYwZ".into()
            },
            Event::Uidl {
                msg: MsgNo(2),
                uidl: "QhdPYR:00WBw1Ph7x7".into()
            },
            Event::End,
        ])
    );
    assert_eq!(sent(&mut p, Command::Uidl(Some(MsgNo(2)))), "UIDL 2\r\n");
    p.feed(b"+OK 2 QhdPYR:00WBw1Ph7x7\r\n");
    assert_eq!(
        drain(&mut p),
        Ok(vec![Event::Uidl {
            msg: MsgNo(2),
            uidl: "QhdPYR:00WBw1Ph7x7".into()
        }])
    );
    assert_eq!(sent(&mut p, Command::List(None)), "LIST\r\n");
    p.feed(b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n");
    assert_eq!(
        drain(&mut p),
        Ok(vec![
            Event::Size {
                msg: MsgNo(1),
                octets: 120
            },
            Event::Size {
                msg: MsgNo(2),
                octets: 200
            },
            Event::End,
        ])
    );
    assert_eq!(sent(&mut p, Command::List(Some(MsgNo(2)))), "LIST 2\r\n");
    p.feed(b"+OK 2 200\r\n");
    assert_eq!(
        drain(&mut p),
        Ok(vec![Event::Size {
            msg: MsgNo(2),
            octets: 200
        }])
    );
    assert_eq!(sent(&mut p, Command::Top(MsgNo(1), 0)), "TOP 1 0\r\n");
    p.feed(b"+OK\r\nSubject: hi\r\n\r\n.\r\n");
    assert_eq!(
        drain(&mut p),
        Ok(vec![
            Event::Body(b"Subject: hi\r\n\r\n".to_vec()),
            Event::End
        ])
    );
    assert_eq!(sent(&mut p, Command::Dele(MsgNo(1))), "DELE 1\r\n");
    p.feed(b"+OK message 1 deleted\r\n");
    assert!(matches!(drain(&mut p).unwrap()[..], [Event::Ok { .. }]));
    assert_eq!(sent(&mut p, Command::Rset), "RSET\r\n");
    p.feed(b"+OK\r\n");
    assert_eq!(drain(&mut p), Ok(vec![Event::Ok { text: "".into() }]));
    assert_eq!(sent(&mut p, Command::Noop), "NOOP\r\n");
    p.feed(b"+OK\r\n");
    assert_eq!(drain(&mut p).unwrap().len(), 1);
    assert_eq!(sent(&mut p, Command::Quit), "QUIT\r\n");
    p.feed(b"+OK dewey POP3 server signing off\r\n");
    assert_eq!(drain(&mut p).unwrap().len(), 1);
    assert_eq!((p.pending(), p.buffered()), (0, 0));
}

#[test]
fn stls_is_a_simple_command() {
    let mut p = ready();
    assert_eq!(sent(&mut p, Command::Stls), "STLS\r\n");
    p.feed(b"+OK Begin TLS negotiation\r\n");
    assert!(matches!(drain(&mut p).unwrap()[..], [Event::Ok { .. }]));
    assert_eq!(p.buffered(), 0);
}

#[test]
fn injected_bytes_after_the_stls_ok_stay_buffered_for_the_driver_to_see() {
    let mut p = ready();
    p.send(Command::Stls).unwrap();
    p.feed(b"+OK Begin TLS\r\n+OK fake CAPA\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Ok { .. }))));
    assert!(p.buffered() > 0);
    // Nothing answers them, and the next command refuses to go out on top of them.
    assert!(matches!(
        p.next_event(),
        Err(ProtoError::Unsolicited { .. })
    ));
    assert!(matches!(
        p.send(Command::Capa),
        Err(ProtoError::Unsolicited { .. })
    ));
}

#[test]
fn err_answers_carry_the_server_text_and_the_session_goes_on() {
    let mut p = ready();
    p.send(Command::Retr(MsgNo(9))).unwrap();
    p.feed(b"-ERR no such message, only 2 messages in maildrop\r\n");
    assert_eq!(
        p.next_event(),
        Err(ProtoError::Negative {
            command: "RETR 9".into(),
            text: "no such message, only 2 messages in maildrop".into()
        })
    );
    let e = ProtoError::Negative {
        command: "RETR 9".into(),
        text: "x".into(),
    };
    assert!(!e.is_fatal());
    // Still in step: the next command is answered normally.
    p.send(Command::Noop).unwrap();
    p.feed(b"+OK\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Ok { .. }))));

    p.send(Command::Uidl(None)).unwrap();
    p.feed(b"-ERR unknown command\r\n");
    assert!(matches!(p.next_event(), Err(ProtoError::Negative { .. })));
    assert_eq!(p.pending(), 0);
}

#[test]
fn a_bad_greeting_and_garbage_are_errors() {
    let mut p = Protocol::new();
    p.feed(b"-ERR [SYS/TEMP] too many connections\r\n");
    match p.next_event() {
        Err(ProtoError::Negative { command, text }) => {
            assert_eq!(command, "greeting");
            assert_eq!(response_code(&text), Some("SYS/TEMP"));
        }
        other => panic!("{other:?}"),
    }
    let mut p = Protocol::new();
    p.feed(b"* OK IMAP4rev1 here\r\n");
    let e = p.next_event().unwrap_err();
    assert!(
        e.is_fatal() && e.to_string().contains("* OK IMAP4rev1"),
        "{e}"
    );
    // Sticky: the stream is out of step for good.
    assert_eq!(p.next_event(), Err(e.clone()));
    assert_eq!(p.send(Command::Quit).unwrap_err(), e);
    // "+OKAY" is not "+OK".
    let mut p = Protocol::new();
    p.feed(b"+OKAY\r\n");
    assert!(p.next_event().is_err());
}

#[test]
fn a_bare_lf_status_line_is_read() {
    let mut p = Protocol::new();
    p.feed(b"+OK lax server\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Greeting { .. }))));
}

#[test]
fn rule_18_overlong_line_is_an_error() {
    // Without a line end: refused as soon as the limit is reached, not buffered forever.
    let mut p = ready();
    p.send(Command::Stat).unwrap();
    p.feed(b"+OK ");
    assert_eq!(p.next_event(), Ok(None));
    p.feed(&vec![b'9'; MAX_LINE]);
    let e = p.next_event().unwrap_err();
    assert!(
        matches!(e, ProtoError::LineTooLong { ref command, limit } if command == "STAT" && limit == MAX_LINE),
        "{e:?}"
    );
    assert!(e.is_fatal());

    // With a line end, in a listing.
    let mut p = ready();
    p.send(Command::Capa).unwrap();
    let mut wire = b"+OK\r\nTOP\r\n".to_vec();
    wire.extend(std::iter::repeat_n(b'X', MAX_LINE));
    wire.extend_from_slice(b"\r\n.\r\n");
    p.feed(&wire);
    assert_eq!(p.next_event(), Ok(Some(Event::Capability("TOP".into()))));
    assert!(matches!(
        p.next_event(),
        Err(ProtoError::LineTooLong { .. })
    ));

    // Just under the limit is fine.
    let mut p = ready();
    p.send(Command::Noop).unwrap();
    let mut wire = b"+OK ".to_vec();
    wire.extend(std::iter::repeat_n(b'x', MAX_LINE - 6));
    wire.extend_from_slice(b"\r\n");
    assert_eq!(wire.len(), MAX_LINE);
    p.feed(&wire);
    assert!(matches!(p.next_event(), Ok(Some(Event::Ok { .. }))));
}

#[test]
fn rule_18_a_200_byte_uidl_is_rejected_naming_the_message() {
    let mut p = ready();
    p.send(Command::Uidl(None)).unwrap();
    let mut wire = b"+OK\r\n1 good\r\n2 ".to_vec();
    wire.extend(std::iter::repeat_n(b'u', 200));
    wire.extend_from_slice(b"\r\n.\r\n");
    p.feed(&wire);
    assert!(matches!(p.next_event(), Ok(Some(Event::Uidl { .. }))));
    let e = p.next_event().unwrap_err();
    assert!(
        matches!(e, ProtoError::BadUidl { msg: MsgNo(2), .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("message 2"), "{e}");
    assert!(e.is_fatal());

    // Exactly 70 is allowed; 71 is not; nor a space or a control byte inside.
    let ok = format!("+OK 3 {}\r\n", "a".repeat(70));
    let mut p = ready();
    p.send(Command::Uidl(Some(MsgNo(3)))).unwrap();
    p.feed(ok.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(Event::Uidl { .. }))));
    for bad in [
        format!("+OK 3 {}\r\n", "a".repeat(71)),
        "+OK 3 abc def\r\n".into(),
        "+OK 3 abc\x01def\r\n".into(),
        "+OK 3\r\n".into(),
        "+OK 3 caf\u{e9}\r\n".into(),
    ] {
        let mut p = ready();
        p.send(Command::Uidl(Some(MsgNo(3)))).unwrap();
        p.feed(bad.as_bytes());
        assert!(
            matches!(p.next_event(), Err(ProtoError::BadUidl { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn rule_18_listings_are_bounded_in_count_and_must_ascend() {
    let mut p = ready();
    p.send(Command::List(None)).unwrap();
    p.feed(b"+OK\r\n");
    let mut n = 0usize;
    let mut chunk = Vec::new();
    let err = loop {
        chunk.clear();
        for _ in 0..10_000 {
            n += 1;
            chunk.extend_from_slice(format!("{n} 100\r\n").as_bytes());
        }
        p.feed(&chunk);
        match drain(&mut p) {
            Ok(events) => assert!(events.iter().all(|e| matches!(e, Event::Size { .. }))),
            Err(e) => break e,
        }
        assert!(n <= MAX_LISTING + 10_000, "no bound");
    };
    assert!(
        matches!(err, ProtoError::TooManyEntries { limit, .. } if limit == MAX_LISTING),
        "{err:?}"
    );

    for wire in [
        &b"+OK\r\n1 a\r\n1 b\r\n.\r\n"[..],
        b"+OK\r\n2 a\r\n1 b\r\n.\r\n",
        b"+OK\r\n0 a\r\n.\r\n",
        b"+OK\r\nx a\r\n.\r\n",
    ] {
        let mut p = ready();
        p.send(Command::Uidl(None)).unwrap();
        p.feed(wire);
        assert!(
            drain(&mut p).is_err(),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn malformed_stat_and_list_answers_are_errors() {
    for (cmd, wire) in [
        (Command::Stat, &b"+OK two 320\r\n"[..]),
        (Command::Stat, b"+OK 2\r\n"),
        (Command::List(Some(MsgNo(1))), b"+OK 1\r\n"),
        (Command::List(None), b"+OK\r\n1 -5\r\n.\r\n"),
    ] {
        let mut p = ready();
        p.send(cmd).unwrap();
        p.feed(wire);
        assert!(
            matches!(drain(&mut p), Err(ProtoError::Malformed { .. })),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    // Extra words after a LIST size are allowed (RFC 1939).
    let mut p = ready();
    p.send(Command::List(Some(MsgNo(1)))).unwrap();
    p.feed(b"+OK 1 120 octets\r\n");
    assert!(matches!(
        p.next_event(),
        Ok(Some(Event::Size { octets: 120, .. }))
    ));
}

#[test]
fn rule_15_dot_unstuffing_across_read_boundaries() {
    let wire = retr_wire(TRICKY);
    // Whole, then one byte at a time.
    assert_eq!(retr_in_pieces(&wire, &[]), TRICKY);
    let every: Vec<usize> = (1..wire.len()).collect();
    assert_eq!(retr_in_pieces(&wire, &every), TRICKY);
    // Every single split point and every pair of split points: covers a split between
    // CR and LF, between two dots, and at each place inside the terminator.
    for a in 1..wire.len() {
        assert_eq!(retr_in_pieces(&wire, &[a]), TRICKY, "split at {a}");
        for b in a + 1..wire.len() {
            assert_eq!(retr_in_pieces(&wire, &[a, b]), TRICKY, "split at {a},{b}");
        }
    }
}

#[test]
fn unstuffing_examples() {
    let cases: [(&[u8], &[u8]); 6] = [
        (b"+OK\r\n.\r\n", b""),
        (b"+OK\r\n..\r\n.\r\n", b".\r\n"),
        (b"+OK\r\n...\r\n.\r\n", b"..\r\n"),
        (b"+OK\r\na\r\n..b\r\n.\r\n", b"a\r\n.b\r\n"),
        // A lone dot that is not followed by CR LF is stuffing too (RFC 1939 3).
        (b"+OK\r\n.b\r\n.\r\n", b"b\r\n"),
        // A dot in the middle of a line is data, as is ". \r\n".
        (b"+OK\r\na.\r\n. \r\n.\r\n", b"a.\r\n \r\n"),
    ];
    for (wire, want) in cases {
        assert_eq!(
            retr_in_pieces(wire, &[]),
            want,
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn a_body_comes_out_in_bounded_chunks_and_the_next_answer_follows() {
    let body: Vec<u8> = (0..10_000)
        .flat_map(|i| format!("line {i} .. with some text to make it longer\r\n").into_bytes())
        .collect();
    assert!(body.len() > 4 * BODY_CHUNK);
    let mut p = ready();
    p.send(Command::Retr(MsgNo(1))).unwrap();
    p.send(Command::Dele(MsgNo(1))).unwrap();
    let mut wire = retr_wire(&body);
    wire.extend_from_slice(b"+OK deleted\r\n");
    p.feed(&wire);
    let events = drain(&mut p).unwrap();
    let mut got = Vec::new();
    for e in &events[..events.len() - 2] {
        let Event::Body(chunk) = e else {
            panic!("{e:?}")
        };
        assert!(chunk.len() <= BODY_CHUNK);
        got.extend_from_slice(chunk);
    }
    assert_eq!(got, body);
    assert_eq!(events[events.len() - 2], Event::End);
    assert!(matches!(events[events.len() - 1], Event::Ok { .. }));
}

/// Found while writing the fuzz invariants: a `.` CR held over from the previous read is
/// owed back as a CR when the next byte is not LF, and that used to push the next chunk
/// one byte past the bound.
#[test]
fn a_held_dot_cr_does_not_push_a_chunk_past_the_bound() {
    let mut p = ready();
    p.send(Command::Retr(MsgNo(1))).unwrap();
    p.feed(b"+OK\r\n.\r");
    assert_eq!(drain(&mut p).unwrap(), []);
    p.feed(&vec![b'x'; 2 * BODY_CHUNK]);
    let events = drain(&mut p).unwrap();
    let mut got = Vec::new();
    for e in &events {
        let Event::Body(chunk) = e else {
            panic!("{e:?}")
        };
        assert!(chunk.len() <= BODY_CHUNK, "chunk of {} bytes", chunk.len());
        got.extend_from_slice(chunk);
    }
    assert_eq!(got.len(), 2 * BODY_CHUNK + 1);
    assert_eq!(&got[..2], b"\rx");
}

#[test]
fn pipelined_answers_match_their_commands_in_order() {
    let mut p = ready();
    for n in 1..=3 {
        p.send(Command::Dele(MsgNo(n))).unwrap();
    }
    p.send(Command::Retr(MsgNo(4))).unwrap();
    p.feed(b"+OK 1\r\n-ERR message 2 already deleted\r\n+OK 3\r\n+OK\r\nhi\r\n.\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Ok { .. }))));
    assert!(
        matches!(p.next_event(), Err(ProtoError::Negative { ref command, .. }) if command == "DELE 2")
    );
    assert!(matches!(p.next_event(), Ok(Some(Event::Ok { .. }))));
    assert_eq!(
        drain(&mut p),
        Ok(vec![Event::Body(b"hi\r\n".to_vec()), Event::End])
    );
}

#[test]
fn apop_digest_is_the_rfc1939_example() {
    let mut p = Protocol::new();
    p.feed(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
    drain(&mut p).unwrap();
    let secret = Secret::new("tanstaaf");
    let out = p
        .send(Command::Apop {
            user: "mrose",
            secret: &secret,
        })
        .unwrap();
    assert_eq!(
        out.bytes(),
        b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
    );
    assert_eq!(out.shown(), "APOP mrose <redacted>");

    // No timestamp in the greeting: APOP is impossible, and nothing is sent.
    let mut p = ready();
    let e = p
        .send(Command::Apop {
            user: "mrose",
            secret: &secret,
        })
        .unwrap_err();
    assert!(matches!(e, ProtoError::Usage(_)) && !e.is_fatal(), "{e}");
    assert_eq!(p.pending(), 0);
}

#[test]
fn greeting_timestamps_must_be_printable() {
    assert_eq!(apop_timestamp("ready <a@b>"), Some("<a@b>".into()));
    assert_eq!(apop_timestamp("ready <a b>"), None);
    assert_eq!(apop_timestamp("ready <>"), None);
    assert_eq!(apop_timestamp("ready <unclosed"), None);
}

#[test]
fn auth_plain_initial_response() {
    let mut p = ready();
    let pw = Secret::new("secret");
    let out = p
        .send(Command::Auth(Sasl::Plain {
            user: "alice",
            password: &pw,
        }))
        .unwrap();
    assert_eq!(out.bytes(), b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert_eq!(out.shown(), "AUTH PLAIN <redacted>");
    p.feed(b"+OK Logged in.\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Ok { .. }))));
}

#[test]
fn auth_xoauth2_initial_response_and_error_challenge() {
    // The example from Google's XOAUTH2 documentation.
    let mut p = ready();
    let token = Secret::new("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
    let out = p
        .send(Command::Auth(Sasl::Xoauth2 {
            user: "someuser@example.com",
            token: &token,
        }))
        .unwrap();
    assert_eq!(
        out.bytes(),
        &b"AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n"[..]
    );
    // A rejected token comes back as a challenge; the empty reply lets the server finish.
    p.feed(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n");
    assert_eq!(
        p.next_event(),
        Ok(Some(Event::Challenge("eyJzdGF0dXMiOiI0MDEifQ==".into())))
    );
    assert_eq!(p.sasl_reply().unwrap().bytes(), b"\r\n");
    p.feed(b"-ERR [AUTH] Invalid credentials\r\n");
    assert!(matches!(
        p.next_event(),
        Err(ProtoError::Negative { ref command, .. }) if command == "AUTH XOAUTH2"
    ));
    assert!(p.sasl_reply().is_err(), "no AUTH in progress any more");
}

#[test]
fn a_long_sasl_response_waits_for_the_challenge() {
    // RFC 5034: an AUTH line over 255 octets must not carry the initial response.
    let mut p = ready();
    let token = Secret::new("t".repeat(400));
    let out = p
        .send(Command::Auth(Sasl::Oauthbearer {
            user: "alice@example.com",
            host: "pop.example.com",
            port: 995,
            token: &token,
        }))
        .unwrap();
    assert_eq!(out.bytes(), b"AUTH OAUTHBEARER\r\n");
    p.feed(b"+ \r\n");
    assert_eq!(p.next_event(), Ok(Some(Event::Challenge(String::new()))));
    let reply = p.sasl_reply().unwrap();
    let expected = STANDARD.encode(
        format!(
            "n,a=alice@example.com,\x01host=pop.example.com\x01port=995\x01auth=Bearer {}\x01\x01",
            token.expose()
        )
        .as_bytes(),
    );
    assert_eq!(reply.bytes(), format!("{expected}\r\n").as_bytes());
    assert!(!format!("{reply:?}").contains("ttttt"));
    // A server that keeps challenging gets an empty reply, then a cancel.
    p.feed(b"+\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Challenge(_)))));
    assert_eq!(p.sasl_reply().unwrap().bytes(), b"\r\n");
    p.feed(b"+\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Challenge(_)))));
    assert_eq!(p.sasl_reply().unwrap().bytes(), b"*\r\n");
    p.feed(b"+OK\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Ok { .. }))));
}

#[test]
fn a_challenge_outside_auth_is_garbage() {
    let mut p = ready();
    p.send(Command::Noop).unwrap();
    p.feed(b"+ hello\r\n");
    assert!(matches!(p.next_event(), Err(ProtoError::Malformed { .. })));
}

#[test]
fn arguments_cannot_smuggle_a_second_command() {
    let mut p = ready();
    let e = p.send(Command::User("alice\r\nDELE 1")).unwrap_err();
    assert!(matches!(e, ProtoError::Usage(_)));
    let pw = Secret::new("pw\r\nDELE 1");
    let e = p.send(Command::Pass(&pw)).unwrap_err();
    assert!(!e.to_string().contains("pw"), "{e}");
    assert!(p.send(Command::User("")).is_err());
    assert_eq!(p.pending(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any message (ending in CR LF), stuffed and cut anywhere, comes back byte-exact.
    #[test]
    fn rule_15_unstuffing_any_message_in_random_pieces(
        mut body in prop::collection::vec(
            prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'x'), any::<u8>()],
            0..400,
        ),
        cuts in prop::collection::vec(0usize..500, 0..40),
    ) {
        body.extend_from_slice(b"\r\n");
        let wire = retr_wire(&body);
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(retr_in_pieces(&wire, &cuts), body);
    }

    /// The tricky message, in random piece sizes.
    #[test]
    fn rule_15_tricky_message_in_random_chunk_sizes(sizes in prop::collection::vec(1usize..8, 1..200)) {
        let wire = retr_wire(TRICKY);
        let mut cuts = Vec::new();
        let mut at = 0;
        for s in sizes {
            at += s;
            cuts.push(at);
        }
        prop_assert_eq!(retr_in_pieces(&wire, &cuts), TRICKY);
    }

    /// No input makes the state machine panic; garbage ends in an error or waits.
    #[test]
    fn hostile_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut p = ready();
        p.send(Command::Uidl(None)).unwrap();
        p.send(Command::Retr(MsgNo(1))).unwrap();
        p.feed(&data);
        for _ in 0..10_000 {
            match p.next_event() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}
