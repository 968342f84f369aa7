//! The few Python expressions in OfflineIMAP configs that have a syncmail equivalent: a
//! list of strings (`idlefolders`, `folderincludes`) and the common `folderfilter`
//! lambdas. Anything else is reported as not convertible, never evaluated or guessed at.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Name(String),
    Str(String),
    /// `[ ] ( ) { } , : . == !=`
    Op(&'static str),
}

/// Python tokens for the subset we read; `None` for anything outside it.
fn tokenize(src: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\\' && chars.get(i + 1) == Some(&'\n') {
            i += 2;
        } else if c == '\''
            || c == '"'
            || (is_prefix(c) && matches!(chars.get(i + 1), Some('\'' | '"')))
        {
            let raw = c == 'r' || c == 'R';
            if c != '\'' && c != '"' {
                i += 1;
            }
            let (s, next) = string(&chars, i, raw)?;
            out.push(Tok::Str(s));
            i = next;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else if (c == '=' || c == '!') && chars.get(i + 1) == Some(&'=') {
            out.push(Tok::Op(if c == '=' { "==" } else { "!=" }));
            i += 2;
        } else {
            let op = match c {
                '[' => "[",
                ']' => "]",
                '(' => "(",
                ')' => ")",
                '{' => "{",
                '}' => "}",
                ',' => ",",
                ':' => ":",
                '.' => ".",
                _ => return None,
            };
            out.push(Tok::Op(op));
            i += 1;
        }
    }
    Some(out)
}

fn is_prefix(c: char) -> bool {
    matches!(c, 'r' | 'R' | 'u' | 'U')
}

/// A single-quoted or double-quoted string starting at `chars[at]`; its value and the
/// index after it. Triple quotes and byte strings are outside the subset.
fn string(chars: &[char], at: usize, raw: bool) -> Option<(String, usize)> {
    let quote = chars[at];
    if chars.get(at + 1) == Some(&quote) && chars.get(at + 2) == Some(&quote) {
        return None;
    }
    let mut s = String::new();
    let mut i = at + 1;
    loop {
        let c = *chars.get(i)?;
        if c == quote {
            return Some((s, i + 1));
        }
        if c == '\n' {
            return None;
        }
        if c == '\\' {
            let next = *chars.get(i + 1)?;
            if raw {
                s.push('\\');
                s.push(next);
            } else {
                match next {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    '\\' | '\'' | '"' => s.push(next),
                    // Python keeps an unknown escape as written.
                    other => {
                        s.push('\\');
                        s.push(other);
                    }
                }
            }
            i += 2;
        } else {
            s.push(c);
            i += 1;
        }
    }
}

/// `['INBOX', 'Sent']` (or a tuple or set of strings) as its strings.
pub fn string_list(src: &str) -> Option<Vec<String>> {
    let toks = tokenize(src)?;
    let mut p = Parser { toks, at: 0 };
    let list = p.strings()?;
    (p.at == p.toks.len()).then_some(list)
}

/// A folder test: the name matches one of `globs` (syncmail pattern syntax), or, when
/// `negated`, matches none of them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Match(Vec<String>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_name(&mut self, name: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Name(n)) if n == name) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// `[ 'a', 'b' ]`, `( 'a', )` or `{ 'a' }`.
    fn strings(&mut self) -> Option<Vec<String>> {
        let close = match self.next()? {
            Tok::Op("[") => "]",
            Tok::Op("(") => ")",
            Tok::Op("{") => "}",
            _ => return None,
        };
        let mut out = Vec::new();
        loop {
            if self.eat_op(close) {
                return Some(out);
            }
            match self.next()? {
                Tok::Str(s) => out.push(s),
                _ => return None,
            }
            if !self.eat_op(",") {
                return self.eat_op(close).then_some(out);
            }
        }
    }

    fn or(&mut self, var: &str) -> Option<Expr> {
        let mut terms = vec![self.and(var)?];
        while self.eat_name("or") {
            terms.push(self.and(var)?);
        }
        Some(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self, var: &str) -> Option<Expr> {
        let mut terms = vec![self.not(var)?];
        while self.eat_name("and") {
            terms.push(self.not(var)?);
        }
        Some(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn not(&mut self, var: &str) -> Option<Expr> {
        if self.eat_name("not") {
            return Some(Expr::Not(Box::new(self.not(var)?)));
        }
        self.atom(var)
    }

    fn atom(&mut self, var: &str) -> Option<Expr> {
        if self.eat_op("(") {
            let e = self.or(var)?;
            return self.eat_op(")").then_some(e);
        }
        if self.eat_name("True") {
            return Some(Expr::Match(vec!["*".into()]));
        }
        if self.eat_name("False") {
            return Some(Expr::Not(Box::new(Expr::Match(vec!["*".into()]))));
        }
        match self.next()? {
            // 'Lists' in folder: a substring test.
            Tok::Str(s) => {
                let negated = self.eat_name("not");
                if !self.eat_name("in") || !self.eat_name(var) {
                    return None;
                }
                let s = literals(vec![s])?.remove(0);
                Some(negate(negated, Expr::Match(vec![format!("*{s}*")])))
            }
            Tok::Name(n) if n == var => self.about_var(var),
            _ => None,
        }
    }

    /// What follows the lambda's argument: `in [...]`, `not in [...]`, `== 'x'`,
    /// `!= 'x'`, `.startswith(...)`, `.endswith(...)`.
    fn about_var(&mut self, _var: &str) -> Option<Expr> {
        if self.eat_name("in") {
            return Some(Expr::Match(literals(self.strings()?)?));
        }
        if self.eat_name("not") {
            if !self.eat_name("in") {
                return None;
            }
            return Some(negate(true, Expr::Match(literals(self.strings()?)?)));
        }
        if self.eat_op("==") {
            return match self.next()? {
                Tok::Str(s) => Some(Expr::Match(literals(vec![s])?)),
                _ => None,
            };
        }
        if self.eat_op("!=") {
            return match self.next()? {
                Tok::Str(s) => Some(negate(true, Expr::Match(literals(vec![s])?))),
                _ => None,
            };
        }
        if self.eat_op(".") {
            let Some(Tok::Name(method)) = self.next() else {
                return None;
            };
            if !self.eat_op("(") {
                return None;
            }
            let args = match self.peek()? {
                Tok::Str(s) => {
                    let s = s.clone();
                    self.at += 1;
                    vec![s]
                }
                Tok::Op("(") => self.strings()?,
                _ => return None,
            };
            if !self.eat_op(")") {
                return None;
            }
            let args = literals(args)?;
            let globs = match method.as_str() {
                "startswith" => args.iter().map(|a| format!("{a}*")).collect(),
                "endswith" => args.iter().map(|a| format!("*{a}")).collect(),
                _ => return None,
            };
            return Some(Expr::Match(globs));
        }
        None
    }
}

/// Folder names for patterns: a name holding `*` or `%` would be read as a wildcard and
/// select more than it names, and patterns have no escape for them.
fn literals(names: Vec<String>) -> Option<Vec<String>> {
    (!names.iter().any(|n| n.contains(['*', '%']))).then_some(names)
}

fn negate(negated: bool, e: Expr) -> Expr {
    if negated { Expr::Not(Box::new(e)) } else { e }
}

/// One conjunction of the normal form: matches each of `pos` (each a set of globs) and
/// none of `neg`.
#[derive(Clone, Debug, Default)]
struct Term {
    pos: Vec<Vec<String>>,
    neg: Vec<String>,
}

/// More terms than this and the filter is not worth writing as patterns.
const MAX_TERMS: usize = 32;

/// The expression as a disjunction of [`Term`]s, negations pushed inward.
fn dnf(e: &Expr, negated: bool) -> Option<Vec<Term>> {
    match (e, negated) {
        (Expr::Match(globs), false) => Some(vec![Term {
            pos: vec![globs.clone()],
            neg: Vec::new(),
        }]),
        (Expr::Match(globs), true) => Some(vec![Term {
            pos: Vec::new(),
            neg: globs.clone(),
        }]),
        (Expr::Not(inner), n) => dnf(inner, !n),
        (Expr::Or(items), false) | (Expr::And(items), true) => {
            let mut out = Vec::new();
            for item in items {
                out.extend(dnf(item, negated)?);
            }
            (out.len() <= MAX_TERMS).then_some(out)
        }
        (Expr::And(items), false) | (Expr::Or(items), true) => {
            let mut out = vec![Term::default()];
            for item in items {
                let alternatives = dnf(item, negated)?;
                let mut next = Vec::new();
                for a in &out {
                    for b in &alternatives {
                        let mut t = a.clone();
                        t.pos.extend(b.pos.iter().cloned());
                        t.neg.extend(b.neg.iter().cloned());
                        next.push(t);
                    }
                }
                if next.len() > MAX_TERMS {
                    return None;
                }
                out = next;
            }
            Some(out)
        }
    }
}

/// An OfflineIMAP `folderfilter` as syncmail `folders` patterns (the last pattern that
/// matches decides), or why it cannot be one.
pub fn folder_filter(src: &str) -> Result<Vec<String>, String> {
    const UNSUPPORTED: &str = "only lambdas testing the name with in, not in, ==, !=, startswith, endswith, and, or, not convert";
    let toks = tokenize(src).ok_or(UNSUPPORTED)?;
    let mut p = Parser { toks, at: 0 };
    if !p.eat_name("lambda") {
        return Err("not a lambda (a function from pythonfile cannot be converted)".into());
    }
    let Some(Tok::Name(var)) = p.next() else {
        return Err(UNSUPPORTED.into());
    };
    if !p.eat_op(":") {
        return Err(UNSUPPORTED.into());
    }
    let expr = p.or(&var).ok_or(UNSUPPORTED)?;
    if p.at != p.toks.len() {
        return Err(UNSUPPORTED.into());
    }
    let terms = dnf(&expr, false).ok_or("the filter is too complex to write as patterns")?;
    patterns(terms)
}

/// Patterns for a disjunction of terms. Exact when at most one term excludes anything
/// and no term needs two positive tests at once: `[P, !N…, Q…]` includes a folder that
/// matches a later Q, else one that matches P and no N.
fn patterns(terms: Vec<Term>) -> Result<Vec<String>, String> {
    let mut excluding: Option<Term> = None;
    let mut positive: Vec<String> = Vec::new();
    for mut term in terms {
        // A term that excludes every folder selects nothing.
        if term.neg.iter().any(|g| g == "*") {
            continue;
        }
        // `'*'` matches every folder, so it adds nothing to a conjunction.
        term.pos.retain(|globs| !globs.iter().any(|g| g == "*"));
        if term.pos.len() > 1 {
            return Err("a folder must pass two tests at once, which patterns cannot say".into());
        }
        if term.neg.is_empty() {
            match term.pos.pop() {
                Some(globs) => positive.extend(globs),
                None => positive.push("*".into()),
            }
        } else if excluding.replace(term).is_some() {
            return Err("several exclusions joined with `or` cannot be written as patterns".into());
        }
    }
    let mut out: Vec<String> = Vec::new();
    if let Some(term) = excluding {
        match term.pos.first() {
            Some(globs) => out.extend(globs.iter().cloned()),
            None => out.push("*".into()),
        }
        out.extend(term.neg.iter().map(|g| format!("!{g}")));
    }
    out.extend(positive);
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| seen.insert(p.clone()));
    for p in &out {
        crate::config::FolderPattern::parse(p).map_err(|e| format!("pattern {p:?}: {e}"))?;
    }
    if out.is_empty() {
        return Err("the filter selects no folder".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Vec<String> {
        folder_filter(src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    #[test]
    fn the_documented_forms() {
        assert_eq!(
            ok("lambda foldername: foldername in ['INBOX', 'Sent']"),
            ["INBOX", "Sent"]
        );
        assert_eq!(
            ok("lambda foldername: foldername not in ['Trash']"),
            ["*", "!Trash"]
        );
        assert_eq!(ok("lambda f: f.startswith('INBOX')"), ["INBOX*"]);
        assert_eq!(
            ok("lambda f: f in [\n    'INBOX', 'Sent Mail',\n    'Deleted Items', 'Received']"),
            ["INBOX", "Sent Mail", "Deleted Items", "Received"]
        );
    }

    #[test]
    fn combinations_that_patterns_can_say() {
        assert_eq!(
            ok(
                "lambda f: f not in ['[Gmail]/All Mail', '[Gmail]/Spam'] and not f.startswith('Lists/')"
            ),
            ["*", "![Gmail]/All Mail", "![Gmail]/Spam", "!Lists/*"]
        );
        assert_eq!(
            ok("lambda f: f.startswith('INBOX') and f != 'INBOX.Trash'"),
            ["INBOX*", "!INBOX.Trash"]
        );
        assert_eq!(
            ok("lambda f: f == 'INBOX' or f.startswith(('Work/', 'Lists/'))"),
            ["INBOX", "Work/*", "Lists/*"]
        );
        assert_eq!(
            ok("lambda f: not (f in ['Junk'] or f.endswith('.old'))"),
            ["*", "!Junk", "!*.old"]
        );
        assert_eq!(ok("lambda f: 'Archive' not in f"), ["*", "!*Archive*"]);
        assert_eq!(
            ok("lambda f: f not in ('Trash',) or f == 'INBOX'"),
            ["*", "!Trash", "INBOX"]
        );
        assert_eq!(ok(r#"lambda f: f in ["It's", "a\"b"]"#), ["It's", "a\"b"]);
    }

    #[test]
    fn what_cannot_be_converted_says_why() {
        for src in [
            "lambda f: not re.search('(^Trash$|Del)', f)",
            "my_filter",
            "lambda f: f.startswith('A') and f.endswith('B')",
            "lambda f: f not in ['A'] or f not in ['B']",
            "lambda f: len(f) < 10",
            "lambda f: f in folders",
            "lambda f: f in ['INBOX'] extra",
            "lambda f: False",
        ] {
            assert!(folder_filter(src).is_err(), "{src} converted");
        }
    }

    #[test]
    fn string_lists() {
        assert_eq!(
            string_list("['INBOX', \"Lists/rust\"]"),
            Some(vec!["INBOX".into(), "Lists/rust".into()])
        );
        assert_eq!(string_list("('INBOX',)"), Some(vec!["INBOX".into()]));
        assert_eq!(string_list("[]"), Some(vec![]));
        assert_eq!(string_list("get_folders()"), None);
        assert_eq!(string_list("['a' 'b']"), None);
    }
}
