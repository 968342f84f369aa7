//! IMAP modified UTF-7 (RFC 3501 §5.1.3), the encoding of folder names on the wire.
//! Decoding is strict: only the one canonical encoding of a name is accepted, so two wire
//! names can never decode to the same folder, and bad input is an error, never a panic.

/// Why a wire folder name is not canonical modified UTF-7.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Utf7Error {
    #[error("byte {byte:#04x} at {at} must not appear unencoded")]
    RawNonPrintable { at: usize, byte: u32 },
    #[error("shift starting at {at} is not terminated by '-'")]
    Unterminated { at: usize },
    #[error("invalid modified base64 character {ch:?} at {at}")]
    BadBase64 { at: usize, ch: char },
    #[error("shift starting at {at} has non-zero or excess padding bits")]
    BadPadding { at: usize },
    #[error("shift starting at {at} encodes printable ASCII {ch:?}")]
    EncodedPrintable { at: usize, ch: char },
    #[error("shift starting at {at} directly follows another shift (should be one)")]
    AdjacentShifts { at: usize },
    #[error("shift starting at {at} holds an unpaired UTF-16 surrogate")]
    LoneSurrogate { at: usize },
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

fn b64_value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Encode a folder name for the wire.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            flush_shift(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_shift(&mut out, &mut pending);
    out
}

fn flush_shift(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &u in units.iter() {
        acc = (acc << 16) | u32::from(u);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
    units.clear();
}

/// Decode a wire folder name, rejecting every non-canonical form.
pub fn decode(wire: &str) -> Result<String, Utf7Error> {
    let bytes = wire.as_bytes();
    let mut out = String::with_capacity(wire.len());
    let mut i = 0;
    // Index just past the '-' that closed the previous base64 shift, to catch two
    // shifts that a canonical encoder would have merged.
    let mut last_shift_end: Option<usize> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'&' {
            if !(0x20..=0x7e).contains(&b) {
                let byte = wire[i..].chars().next().map_or(u32::from(b), u32::from);
                return Err(Utf7Error::RawNonPrintable { at: i, byte });
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if bytes.get(i) == Some(&b'-') {
            out.push('&');
            i += 1;
            continue;
        }
        if last_shift_end == Some(start) {
            return Err(Utf7Error::AdjacentShifts { at: start });
        }
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        let mut units: Vec<u16> = Vec::new();
        loop {
            let Some(&c) = bytes.get(i) else {
                return Err(Utf7Error::Unterminated { at: start });
            };
            i += 1;
            if c == b'-' {
                break;
            }
            let Some(v) = b64_value(c) else {
                let ch = wire[i - 1..].chars().next().unwrap_or('\u{fffd}');
                return Err(Utf7Error::BadBase64 { at: i - 1, ch });
            };
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push(((acc >> bits) & 0xffff) as u16);
                acc &= (1 << bits) - 1;
            }
        }
        // Canonical: fewer than 6 leftover bits, all zero, and at least one unit.
        if units.is_empty() || bits >= 6 || acc != 0 {
            return Err(Utf7Error::BadPadding { at: start });
        }
        for r in char::decode_utf16(units.iter().copied()) {
            let c = r.map_err(|_| Utf7Error::LoneSurrogate { at: start })?;
            if is_direct(c) {
                return Err(Utf7Error::EncodedPrintable { at: start, ch: c });
            }
            out.push(c);
        }
        last_shift_end = Some(i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_3501_examples() {
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(decode("Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode("A&-B").unwrap(), "A&B");
        assert_eq!(encode("A&B"), "A&-B");
    }

    #[test]
    fn astral_characters_use_surrogate_pairs() {
        let s = "mail 📧";
        assert_eq!(decode(&encode(s)).unwrap(), s);
        assert_eq!(encode("📧"), "&2D3c5w-");
    }

    #[test]
    fn hostile_but_canonical_names_decode() {
        // Rule 17: these decode fine here; the folder mapping must reject them.
        assert_eq!(decode("&AAA-").unwrap(), "\0");
        // `..` encoded is not canonical, so decoding already refuses it.
        assert!(matches!(
            decode("&AC4ALg-"),
            Err(Utf7Error::EncodedPrintable { ch: '.', .. })
        ));
    }

    #[test]
    fn rejects_non_canonical_forms() {
        use Utf7Error::*;
        assert!(matches!(
            decode("&AGE-"),
            Err(EncodedPrintable { ch: 'a', .. })
        ));
        assert!(matches!(
            decode("&ACY-"),
            Err(EncodedPrintable { ch: '&', .. })
        ));
        assert!(matches!(decode("&APw"), Err(Unterminated { .. })));
        assert!(matches!(decode("x&"), Err(Unterminated { .. })));
        assert!(matches!(decode("&AP!-"), Err(BadBase64 { ch: '!', .. })));
        assert!(matches!(decode("&APx-"), Err(BadPadding { .. })));
        assert!(matches!(decode("&APwA-"), Err(BadPadding { .. })));
        assert!(matches!(decode("&AP-"), Err(BadPadding { .. })));
        assert!(matches!(decode("&APw-&APw-"), Err(AdjacentShifts { .. })));
        assert!(matches!(decode("&2D0-"), Err(LoneSurrogate { .. })));
        assert!(matches!(decode("&3OcAYQ-"), Err(LoneSurrogate { .. })));
        assert!(matches!(decode("tab\there"), Err(RawNonPrintable { .. })));
        assert!(matches!(decode("ü"), Err(RawNonPrintable { .. })));
        // A '/' is standard base64 but not modified base64.
        assert!(matches!(decode("&U/BTFw-"), Err(BadBase64 { ch: '/', .. })));
        // Separate shifts with something between them are fine.
        assert_eq!(decode("&APw-x&APw-").unwrap(), "üxü");
        assert_eq!(decode("&APw-&-").unwrap(), "ü&");
    }

    fn any_name() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                3 => proptest::char::range(' ', '~'),
                1 => Just('&'),
                2 => any::<char>(),
            ],
            0..24,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn round_trip(s in any_name()) {
            let wire = encode(&s);
            prop_assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&wire).unwrap(), s);
        }

        #[test]
        fn canonical_wire_forms_re_encode_identically(s in any_name()) {
            let wire = encode(&s);
            prop_assert_eq!(encode(&decode(&wire).unwrap()), wire);
        }

        #[test]
        fn encoding_printable_ascii_is_rejected(c in proptest::char::range(' ', '~'), tail in any::<char>()) {
            prop_assume!(!is_direct(tail));
            // Force the printable char into a shift with a non-printable neighbour.
            let mut units = vec![c as u16];
            let mut buf = [0u16; 2];
            units.extend_from_slice(tail.encode_utf16(&mut buf));
            let mut wire = String::new();
            flush_shift(&mut wire, &mut units);
            prop_assert!(decode(&wire).is_err());
        }

        #[test]
        fn splitting_a_shift_is_rejected(a in any::<char>(), b in any::<char>()) {
            prop_assume!(!is_direct(a) && !is_direct(b));
            let wire = format!("{}{}", encode(&a.to_string()), encode(&b.to_string()));
            let adjacent = matches!(decode(&wire), Err(Utf7Error::AdjacentShifts { .. }));
            prop_assert!(adjacent, "{wire} decoded as {:?}", decode(&wire));
        }

        #[test]
        fn nonzero_padding_bits_are_rejected(c in any::<char>(), pad in 1u32..4) {
            // One UTF-16 unit is 16 bits in three base64 characters: 2 padding bits.
            prop_assume!(!is_direct(c) && (c as u32) < 0x10000);
            let wire = encode(&c.to_string());
            let mut bytes = wire.into_bytes();
            let last = b64_value(bytes[3]).unwrap();
            prop_assert_eq!(last & 3, 0);
            bytes[3] = ALPHABET[(last | pad) as usize];
            let tampered = String::from_utf8(bytes).unwrap();
            let bad_padding = matches!(decode(&tampered), Err(Utf7Error::BadPadding { .. }));
            prop_assert!(bad_padding, "{tampered}");
        }

        #[test]
        fn decode_never_panics(s in "\\PC*") {
            let _ = decode(&s);
        }
    }
}
