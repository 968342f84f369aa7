//! What syncmail does where a server lacks an extension it uses: one line per missing
//! capability, for `check-config --connect`, so a user can tell what a server costs.

/// The extensions syncmail uses, each with what it does without it, in the order shown.
const FALLBACKS: &[(&str, &str)] = &[
    (
        "UIDPLUS",
        "a deletion marks \\Deleted and the folder is expunged (by CLOSE) only when no other message is marked, else left marked and tried again next pass; an upload's UID is confirmed on the next pass by Message-ID, size and content",
    ),
    (
        "CONDSTORE",
        "every pass over a changed folder lists all its flags (UID FETCH 1:* FLAGS), and flag changes are sent without an UNCHANGEDSINCE guard",
    ),
    (
        "QRESYNC",
        "an unchanged folder costs a listing instead of one round trip, and expunges are found by comparing UID lists",
    ),
    (
        "MOVE",
        "a move to the trash folder is UID COPY, then a deletion; a message moved between folders locally is uploaded to the new folder and deleted from the old one",
    ),
    (
        "OBJECTID",
        "a message another client copied into several folders is downloaded and stored once per folder (with OBJECTID or Gmail's X-GM-EXT-1 it is stored once and linked into each)",
    ),
    ("IDLE", "no push: the daemon polls every poll_interval"),
    ("COMPRESS=DEFLATE", "traffic is not compressed"),
    (
        "NAMESPACE",
        "folder names are used as LIST shows them, with no personal prefix",
    ),
];

/// `missing CAP: what syncmail does instead`, for each extension `has` says is absent.
pub fn fallbacks(has: impl Fn(&str) -> bool) -> Vec<String> {
    FALLBACKS
        .iter()
        // QRESYNC implies CONDSTORE (RFC 7162); Gmail's X-GM-MSGID does OBJECTID's job.
        .filter(|(cap, _)| {
            let offered = has(cap)
                || (*cap == "CONDSTORE" && has("QRESYNC"))
                || (*cap == "OBJECTID" && has("X-GM-EXT-1"));
            !offered
        })
        .map(|(cap, what)| format!("no {cap}: {what}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_capability_is_named_with_its_fallback() {
        let imap4d = [
            "IMAP4rev1",
            "NAMESPACE",
            "ID",
            "IDLE",
            "LITERAL+",
            "UNSELECT",
            "STARTTLS",
        ];
        let lines = fallbacks(|c| imap4d.iter().any(|x| x.eq_ignore_ascii_case(c)));
        let named: Vec<&str> = lines
            .iter()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            named,
            [
                "no UIDPLUS",
                "no CONDSTORE",
                "no QRESYNC",
                "no MOVE",
                "no OBJECTID",
                "no COMPRESS=DEFLATE"
            ]
        );
        assert!(lines[0].contains("only when no other message is marked"));
        let everything = fallbacks(|_| true);
        assert!(everything.is_empty(), "{everything:?}");
        let qresync_only = fallbacks(|c| c != "CONDSTORE");
        assert!(
            qresync_only.is_empty(),
            "QRESYNC implies CONDSTORE: {qresync_only:?}"
        );
        let gmail = fallbacks(|c| c != "OBJECTID");
        assert!(
            gmail.is_empty(),
            "X-GM-EXT-1 does OBJECTID's job: {gmail:?}"
        );
        let bare = fallbacks(|_| false);
        assert_eq!(bare.len(), 8, "{bare:?}");
    }
}
