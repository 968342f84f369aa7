//! Folder selection patterns (`folders = ["*", "!Junk", "!Spam"]`): IMAP LIST wildcards,
//! `*` any run of characters, `%` any run within one hierarchy level; `!` excludes.

/// One pattern, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderPattern {
    pub exclude: bool,
    pub glob: String,
}

impl FolderPattern {
    /// Parse one pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<FolderPattern, String> {
        let (exclude, glob) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if glob.is_empty() {
            return Err(if exclude {
                "`!` must be followed by the folder pattern to exclude".into()
            } else {
                "an empty folder pattern matches nothing".into()
            });
        }
        if glob.starts_with('!') {
            return Err("a pattern may start with one `!` only".into());
        }
        if glob.chars().any(char::is_control) {
            return Err("a folder pattern may not contain control characters".into());
        }
        if glob.trim() != glob {
            return Err("a folder pattern may not start or end with spaces".into());
        }
        Ok(FolderPattern {
            exclude,
            glob: glob.to_owned(),
        })
    }

    pub fn matches(&self, folder: &str, delimiter: Option<char>) -> bool {
        // INBOX is case-insensitive (RFC 3501 §5.1), so `inbox` selects it too.
        let folder_is_inbox = folder.eq_ignore_ascii_case("INBOX");
        if folder_is_inbox && self.glob.eq_ignore_ascii_case("INBOX") {
            return true;
        }
        glob_match(
            &self.glob.chars().collect::<Vec<_>>(),
            &folder.chars().collect::<Vec<_>>(),
            delimiter,
        )
    }
}

/// An ordered list of patterns; the last one that matches a folder decides, so
/// `["*", "!Archive*", "Archive/2024"]` keeps one archive year.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderPatterns(pub Vec<FolderPattern>);

impl FolderPatterns {
    pub fn includes(&self, folder: &str, delimiter: Option<char>) -> bool {
        self.includes_either(folder, None, delimiter)
    }

    /// The same for a folder with a second name (without the server's personal namespace
    /// prefix): a pattern that matches either name counts as matching the folder.
    pub fn includes_either(
        &self,
        folder: &str,
        other: Option<&str>,
        delimiter: Option<char>,
    ) -> bool {
        self.0
            .iter()
            .rev()
            .find(|p| {
                p.matches(folder, delimiter) || other.is_some_and(|o| p.matches(o, delimiter))
            })
            .is_some_and(|p| !p.exclude)
    }
}

/// IMAP LIST wildcards, matched as a set of pattern positions stepped through the name
/// one character at a time: O(pattern × name). (A backtracking matcher took exponential
/// time on patterns such as `%%%%%%%%x` against a long server name: found by fuzzing.)
fn glob_match(pattern: &[char], name: &[char], delimiter: Option<char>) -> bool {
    let mut states = vec![false; pattern.len() + 1];
    states[0] = true;
    close_wildcards(pattern, &mut states);
    for &c in name {
        let mut next = vec![false; pattern.len() + 1];
        for (j, &p) in pattern.iter().enumerate() {
            if !states[j] {
                continue;
            }
            match p {
                // A wildcard takes this character and stays.
                '*' => next[j] = true,
                '%' if Some(c) != delimiter => next[j] = true,
                '%' => {}
                p if p == c => next[j + 1] = true,
                _ => {}
            }
        }
        states = next;
        close_wildcards(pattern, &mut states);
        if !states.contains(&true) {
            return false;
        }
    }
    states[pattern.len()]
}

/// A wildcard may also match nothing: where one is live, so is the position after it.
fn close_wildcards(pattern: &[char], states: &mut [bool]) {
    for (j, p) in pattern.iter().enumerate() {
        if states[j] && matches!(p, '*' | '%') {
            states[j + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> FolderPatterns {
        FolderPatterns(
            list.iter()
                .map(|p| FolderPattern::parse(p).unwrap())
                .collect(),
        )
    }

    #[test]
    fn star_with_exclusions() {
        let p = patterns(&["*", "!Junk", "!Spam"]);
        assert!(p.includes("INBOX", Some('/')));
        assert!(p.includes("Archive/2024", Some('/')));
        assert!(!p.includes("Junk", Some('/')));
        assert!(
            p.includes("Junk/Old", Some('/')),
            "only Junk itself is excluded"
        );
    }

    #[test]
    fn percent_stays_within_one_level() {
        let p = patterns(&["Archive/%"]);
        assert!(p.includes("Archive/2024", Some('/')));
        assert!(!p.includes("Archive/2024/Q1", Some('/')));
        let p = patterns(&["Archive/*"]);
        assert!(p.includes("Archive/2024/Q1", Some('/')));
    }

    #[test]
    fn last_match_wins() {
        let p = patterns(&["*", "!Archive*", "Archive/2024"]);
        assert!(p.includes("Archive/2024", Some('/')));
        assert!(!p.includes("Archive/2023", Some('/')));
    }

    /// Rule 24: with a personal namespace prefix, a pattern matches a folder by its full
    /// server name or by its name without the prefix.
    #[test]
    fn rule_24_patterns_match_with_or_without_the_namespace_prefix() {
        let p = patterns(&["*", "!Junk", "!INBOX.Spam"]);
        let with = |full: &str, short: &str| p.includes_either(full, Some(short), Some('.'));
        assert!(!with("INBOX.Junk", "Junk"));
        assert!(!with("INBOX.Spam", "Spam"));
        assert!(with("INBOX.Archive", "Archive"));
        assert!(p.includes("INBOX", Some('.')));
        let p = patterns(&["INBOX", "Archive.%"]);
        assert!(p.includes_either("INBOX.Archive.2024", Some("Archive.2024"), Some('.')));
        assert!(!p.includes_either("INBOX.Sent", Some("Sent"), Some('.')));
    }

    #[test]
    fn inbox_is_case_insensitive() {
        assert!(patterns(&["inbox"]).includes("INBOX", Some('/')));
        assert!(!patterns(&["inbox"]).includes("Inboxes", Some('/')));
    }

    /// The backtracking matcher this module used before: the reference for the semantics.
    fn backtracking(pattern: &[char], name: &[char], delimiter: Option<char>) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => {
                (0..=name.len()).any(|i| backtracking(rest, &name[i..], delimiter))
            }
            Some(('%', rest)) => {
                let level = name
                    .iter()
                    .position(|c| Some(*c) == delimiter)
                    .unwrap_or(name.len());
                (0..=level).any(|i| backtracking(rest, &name[i..], delimiter))
            }
            Some((c, rest)) => name
                .split_first()
                .is_some_and(|(n, name_rest)| n == c && backtracking(rest, name_rest, delimiter)),
        }
    }

    /// Found by fuzzing (`tests/fuzz/regressions/folder_name/`): runs of wildcards against
    /// a long name that almost matches took exponential time.
    #[test]
    fn many_wildcards_against_a_long_name_match_quickly() {
        let name = format!("{}q", "p".repeat(1000));
        let p = patterns(&["%%%%%%%%%%%%%%%%%%%%x", "*p*p*p*p*p*p*p*p*p*p*p*p*x"]);
        let started = std::time::Instant::now();
        assert!(!p.includes(&name, Some('/')));
        assert!(patterns(&["%%%%%%%%%%%%%%%%%%%%q"]).includes(&name, Some('/')));
        assert!(patterns(&["*p*p*p*p*p*p*p*p*p*p*p*p*q"]).includes(&name, None));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    proptest::proptest! {
        #[test]
        fn matches_like_the_backtracking_matcher(
            pattern in "[ab/*%]{0,8}",
            name in "[ab/]{0,10}",
            delimiter in proptest::option::of(proptest::sample::select(vec!['/', 'a'])),
        ) {
            let pattern: Vec<char> = pattern.chars().collect();
            let name: Vec<char> = name.chars().collect();
            proptest::prop_assert_eq!(
                glob_match(&pattern, &name, delimiter),
                backtracking(&pattern, &name, delimiter)
            );
        }
    }

    #[test]
    fn invalid_patterns_say_why() {
        for bad in ["", "!", "!!Junk", "Ju\tnk", " Junk"] {
            assert!(FolderPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
