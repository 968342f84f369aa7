//! Sets of UIDs as IMAP writes them (`1:5,7,9:12`, RFC 3501 sequence-set): ordered, so a
//! plan prints and batches the same way every time.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::model::Uid;

/// An ordered set of UIDs that prints as a compressed IMAP sequence set.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UidSet(BTreeSet<Uid>);

impl UidSet {
    pub fn new() -> UidSet {
        UidSet::default()
    }

    pub fn insert(&mut self, uid: Uid) -> bool {
        self.0.insert(uid)
    }

    pub fn remove(&mut self, uid: Uid) -> bool {
        self.0.remove(&uid)
    }

    pub fn contains(&self, uid: Uid) -> bool {
        self.0.contains(&uid)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Uid> + '_ {
        self.0.iter().copied()
    }

    /// Maximal runs of consecutive UIDs, as inclusive `(first, last)` pairs.
    pub fn ranges(&self) -> Vec<(Uid, Uid)> {
        let mut out: Vec<(Uid, Uid)> = Vec::new();
        for uid in self.iter() {
            match out.last_mut() {
                Some((_, last)) if last.0.checked_add(1) == Some(uid.0) => *last = uid,
                _ => out.push((uid, uid)),
            }
        }
        out
    }
}

impl FromIterator<Uid> for UidSet {
    fn from_iter<I: IntoIterator<Item = Uid>>(iter: I) -> UidSet {
        UidSet(iter.into_iter().collect())
    }
}

impl Extend<Uid> for UidSet {
    fn extend<I: IntoIterator<Item = Uid>>(&mut self, iter: I) {
        self.0.extend(iter)
    }
}

impl fmt::Display for UidSet {
    /// `1:5,7,9:12`; an empty set prints as nothing, which no IMAP command accepts, so
    /// callers never send an empty batch (the planner never emits one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (first, last)) in self.ranges().into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if first == last {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}:{last}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for UidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UidSet({self})")
    }
}

/// Why a sequence set did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UID set {input:?}: {why}")]
pub struct ParseUidSetError {
    pub input: String,
    pub why: &'static str,
}

impl FromStr for UidSet {
    type Err = ParseUidSetError;

    /// Parses what `Display` writes, plus reversed ranges (`5:1`), which RFC 3501 allows.
    /// `*` is refused: it names "the highest UID", which only the server knows.
    fn from_str(s: &str) -> Result<UidSet, ParseUidSetError> {
        let err = |why| ParseUidSetError {
            input: s.to_owned(),
            why,
        };
        let mut set = UidSet::new();
        if s.is_empty() {
            return Ok(set);
        }
        let number = |part: &str| -> Result<u32, ParseUidSetError> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("expected a UID number"));
            }
            match part.parse::<u32>() {
                Ok(0) => Err(err("UID 0 does not exist")),
                Ok(n) => Ok(n),
                Err(_) => Err(err("UID out of range")),
            }
        };
        for item in s.split(',') {
            match item.split_once(':') {
                None => {
                    set.insert(Uid(number(item)?));
                }
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    set.extend((lo..=hi).map(Uid));
                }
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(uids: &[u32]) -> UidSet {
        uids.iter().copied().map(Uid).collect()
    }

    #[test]
    fn compresses_runs_into_ranges() {
        assert_eq!(
            set(&[1, 2, 3, 4, 5, 7, 9, 10, 11, 12]).to_string(),
            "1:5,7,9:12"
        );
        assert_eq!(set(&[42]).to_string(), "42");
        assert_eq!(set(&[]).to_string(), "");
        assert_eq!(
            set(&[u32::MAX - 1, u32::MAX]).to_string(),
            "4294967294:4294967295"
        );
    }

    #[test]
    fn parses_ranges_singles_and_reversed_ranges() {
        assert_eq!(
            "1:3,7,10:9".parse::<UidSet>(),
            Ok(set(&[1, 2, 3, 7, 9, 10]))
        );
        assert_eq!("".parse::<UidSet>(), Ok(UidSet::new()));
    }

    #[test]
    fn refuses_star_zero_and_garbage() {
        for bad in ["*", "1:*", "0", "1,,2", "a", "1:", "-3", "99999999999"] {
            assert!(bad.parse::<UidSet>().is_err(), "{bad} parsed");
        }
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(uids in proptest::collection::btree_set(1u32..200, 0..40)) {
            let s: UidSet = uids.iter().copied().map(Uid).collect();
            let text = s.to_string();
            prop_assert_eq!(text.parse::<UidSet>(), Ok(s.clone()));
            // Compressed: no two adjacent ranges could have been merged.
            for w in s.ranges().windows(2) {
                prop_assert!(w[0].1.0 + 1 < w[1].0.0);
            }
        }
    }
}
