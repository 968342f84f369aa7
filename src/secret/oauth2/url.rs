//! The little URL work OAuth2 needs: percent-encoding query values (RFC 3986) and
//! reading the query of the redirect the browser brings back.

/// Percent-encode everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base?k=v&k=v` with each value encoded.
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut out = base.to_owned();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
        sep = '&';
    }
    out
}

/// Decode `%XX` and `+`; `None` on a bad escape or bytes that are not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded `key=value` pairs of a query string (no leading `?`).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = "https://mail.google.com/ offline_access&x=1";
        assert_eq!(
            encode(s),
            "https%3A%2F%2Fmail.google.com%2F%20offline_access%26x%3D1"
        );
        assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        assert_eq!(
            query_pairs("code=a%2Bb&state=x+y&empty"),
            vec![
                ("code".into(), "a+b".into()),
                ("state".into(), "x y".into()),
                ("empty".into(), String::new())
            ]
        );
        assert_eq!(decode("%zz"), None);
        assert_eq!(
            with_query("http://h/a?x=1", &[("k", "v w")]),
            "http://h/a?x=1&k=v%20w"
        );
    }
}
