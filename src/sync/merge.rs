//! Per-flag three-way merge (rule 10): each flag, and each keyword both sides can carry,
//! is compared with its base on each side; a change on one side is carried to the other.

use std::collections::BTreeSet;

use crate::model::{Flag, Flags};

use super::actions::Side;
use super::policy::Direction;

/// One side's flags now and at the last sync.
#[derive(Clone, Copy, Debug)]
pub struct SideFlags<'a> {
    pub base: &'a Flags,
    pub now: &'a Flags,
}

/// The merged target for each side, and every flag set on one side while removed on the
/// other (only possible when the two bases differ, e.g. after a `pull` period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    pub remote: Flags,
    pub local: Flags,
    /// (flag, side that set it). The flag ends up set on both sides.
    pub conflicts: Vec<(Flags, Side)>,
}

/// `a` without the flags and keywords of `b`.
pub fn minus(a: &Flags, b: &Flags) -> Flags {
    let mut out: Flags = a.iter().filter(|f| !b.contains(*f)).collect();
    for k in a.keywords() {
        if !b.keywords().contains(k) {
            out.insert_keyword(k.clone());
        }
    }
    out
}

/// Equality as the local side can store it: keywords count only if it carries them.
pub fn local_eq(a: &Flags, b: &Flags, carries_keywords: bool) -> bool {
    if carries_keywords {
        a == b
    } else {
        a.iter().eq(b.iter())
    }
}

/// One flag: (remote target, local target, side that set it if the sides contradict).
fn decide(
    (br, r): (bool, bool),
    (bl, l): (bool, bool),
    direction: Direction,
) -> (bool, bool, Option<Side>) {
    let (dr, dl) = (r != br, l != bl);
    match direction {
        Direction::Both => match (dr, dl) {
            (false, false) => (r, l, None),
            (false, true) => (l, l, None),
            (true, false) => (r, r, None),
            (true, true) if r == l => (r, l, None),
            (true, true) => (true, true, Some(if r { Side::Server } else { Side::Local })),
        },
        // Pull: the server is never written; a server change overrides the local one.
        Direction::Pull => (r, if dr { r } else { l }, None),
        // Push: the Maildir is never written; a local change overrides the server's.
        Direction::Push => (if dl { l } else { r }, l, None),
    }
}

/// Merge one pair's flags. Keywords are merged only when the Maildir carries them;
/// otherwise the server's keywords are left exactly as they are and the local target has
/// none, so a side that cannot store keywords never removes them.
pub fn merge_flags(
    remote: SideFlags<'_>,
    local: SideFlags<'_>,
    carries_keywords: bool,
    direction: Direction,
) -> Merged {
    let mut out = Merged {
        remote: Flags::new(),
        local: Flags::new(),
        conflicts: Vec::new(),
    };
    for flag in Flag::ALL {
        let (rt, lt, conflict) = decide(
            (remote.base.contains(flag), remote.now.contains(flag)),
            (local.base.contains(flag), local.now.contains(flag)),
            direction,
        );
        out.remote.set(flag, rt);
        out.local.set(flag, lt);
        if let Some(side) = conflict {
            out.conflicts.push((Flags::new().with(flag), side));
        }
    }
    if !carries_keywords {
        for k in remote.now.keywords() {
            out.remote.insert_keyword(k.clone());
        }
        return out;
    }
    let all: BTreeSet<&String> = [remote.base, remote.now, local.base, local.now]
        .into_iter()
        .flat_map(|f| f.keywords())
        .collect();
    for k in all {
        let has = |f: &Flags| f.keywords().contains(k);
        let (rt, lt, conflict) = decide(
            (has(remote.base), has(remote.now)),
            (has(local.base), has(local.now)),
            direction,
        );
        if rt {
            out.remote.insert_keyword(k.clone());
        }
        if lt {
            out.local.insert_keyword(k.clone());
        }
        if let Some(side) = conflict {
            let mut flag = Flags::new();
            flag.insert_keyword(k.clone());
            out.conflicts.push((flag, side));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(letters: &str) -> Flags {
        let mut flags = Flags::new();
        for part in letters.split('+') {
            for c in part.chars() {
                if let Some(fl) = Flag::from_maildir_letter(c) {
                    flags.insert(fl);
                }
            }
        }
        for kw in letters.split('+').skip(1) {
            flags.insert_keyword(kw);
        }
        flags
    }

    fn both(br: &str, r: &str, bl: &str, l: &str, kw: bool) -> Merged {
        let (br, r, bl, l) = (f(br), f(r), f(bl), f(l));
        merge_flags(
            SideFlags { base: &br, now: &r },
            SideFlags { base: &bl, now: &l },
            kw,
            Direction::Both,
        )
    }

    #[test]
    fn change_on_one_side_is_carried_to_the_other() {
        let m = both("R", "R", "R", "RS", false);
        assert_eq!((m.remote, m.local), (f("RS"), f("RS")));
        let m = both("R", "", "R", "R", false);
        assert_eq!((m.remote, m.local), (f(""), f("")));
    }

    #[test]
    fn independent_changes_on_both_sides_combine() {
        // base R; local +S; server +F -R.
        let m = both("R", "F", "R", "RS", false);
        assert_eq!((m.remote, m.local), (f("FS"), f("FS")));
        assert!(m.conflicts.is_empty());
    }

    #[test]
    fn keywords_survive_a_side_that_cannot_carry_them() {
        let m = both("S+work", "S+work+urgent", "S", "FS", false);
        assert_eq!(m.remote, f("FS+work+urgent"));
        assert_eq!(m.local, f("FS"));
    }

    #[test]
    fn keyword_set_on_one_side_removed_on_the_other_relative_to_different_bases() {
        // The server never had `work` in its base (pull period); the Maildir had it.
        // Server adds it, Maildir removes it: set wins, recorded as a conflict.
        let m = both("S", "S+work", "S+work", "S", true);
        assert_eq!(m.remote, f("S+work"));
        assert_eq!(m.local, f("S+work"));
        assert_eq!(m.conflicts, vec![(f("+work"), Side::Server)]);
    }

    #[test]
    fn pull_never_changes_the_server_and_push_never_the_maildir() {
        let (br, r, bl, l) = (f("R"), f("RF"), f("R"), f("RS"));
        let pull = merge_flags(
            SideFlags { base: &br, now: &r },
            SideFlags { base: &bl, now: &l },
            false,
            Direction::Pull,
        );
        assert_eq!((pull.remote, pull.local), (f("FR"), f("FRS")));
        let push = merge_flags(
            SideFlags { base: &br, now: &r },
            SideFlags { base: &bl, now: &l },
            false,
            Direction::Push,
        );
        assert_eq!((push.remote, push.local), (f("FRS"), f("RS")));
    }

    #[test]
    fn minus_removes_flags_and_keywords() {
        assert_eq!(minus(&f("FS+a+b"), &f("S+b")), f("F+a"));
    }
}
