//! Login for IMAP and POP3 alike: which mechanism to use, from the config, the credential
//! and the server's offer, and the SASL responses that carry the credential.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::AuthMech;
use crate::secret::{CredentialKind, Secret};

/// What a server offers for login, in terms both protocols can state.
#[derive(Clone, Debug, Default)]
pub struct Offer {
    /// SASL mechanism names, any case: IMAP's `AUTH=` capabilities, POP3's CAPA `SASL`.
    pub sasl: Vec<String>,
    /// IMAP's LOGINDISABLED: the plain LOGIN command is refused.
    pub login_disabled: bool,
    /// POP3's APOP: the greeting carried a timestamp.
    pub apop: bool,
}

impl Offer {
    pub fn offers(&self, mechanism: &str) -> bool {
        self.sasl.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }
}

/// The mechanism to use. `Auto` is SASL PLAIN if offered, else the protocol's own login
/// command (IMAP LOGIN, POP3 USER/PASS) for a password, and XOAUTH2 (else OAUTHBEARER)
/// for a token. APOP only when configured.
pub fn choose_mechanism(
    configured: AuthMech,
    kind: CredentialKind,
    offer: &Offer,
) -> Result<AuthMech, String> {
    match (configured, kind) {
        (AuthMech::Auto | AuthMech::Oauth2, CredentialKind::OAuth2Token) => {
            // XOAUTH2 first: Microsoft offers nothing else, Google and Dovecot both.
            if offer.offers("XOAUTH2") {
                Ok(AuthMech::Xoauth2)
            } else if offer.offers("OAUTHBEARER") {
                Ok(AuthMech::Oauthbearer)
            } else {
                Err("the server offers neither SASL XOAUTH2 nor OAUTHBEARER for the OAuth2 token".into())
            }
        }
        (AuthMech::Auto, CredentialKind::Password) => {
            if offer.offers("PLAIN") {
                Ok(AuthMech::Plain)
            } else if offer.login_disabled {
                Err("the server disables LOGIN and offers no AUTH=PLAIN".into())
            } else {
                Ok(AuthMech::Login)
            }
        }
        (AuthMech::Oauth2, CredentialKind::Password) => {
            Err("auth = \"oauth2\" but the credential is a password".into())
        }
        (AuthMech::Apop, _) if !offer.apop => Err(
            "auth = \"apop\" but the server's greeting has no APOP timestamp (it does not offer APOP)"
                .into(),
        ),
        (m, _) => Ok(m),
    }
}

/// A SASL mechanism with the credentials for its initial response.
#[derive(Clone, Copy, Debug)]
pub enum Sasl<'a> {
    Plain {
        user: &'a str,
        password: &'a Secret,
    },
    Xoauth2 {
        user: &'a str,
        token: &'a Secret,
    },
    Oauthbearer {
        user: &'a str,
        host: &'a str,
        port: u16,
        token: &'a Secret,
    },
}

impl<'a> Sasl<'a> {
    /// The chosen mechanism as SASL with an initial response; `None` for the ones that
    /// are not (a protocol's own login command, APOP, SASL LOGIN: see [`login_responses`]).
    pub fn for_mechanism(
        mechanism: AuthMech,
        user: &'a str,
        host: &'a str,
        port: u16,
        secret: &'a Secret,
    ) -> Option<Sasl<'a>> {
        match mechanism {
            AuthMech::Plain => Some(Sasl::Plain {
                user,
                password: secret,
            }),
            AuthMech::Xoauth2 => Some(Sasl::Xoauth2 {
                user,
                token: secret,
            }),
            AuthMech::Oauthbearer => Some(Sasl::Oauthbearer {
                user,
                host,
                port,
                token: secret,
            }),
            AuthMech::Auto | AuthMech::Oauth2 | AuthMech::Login | AuthMech::Apop => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Sasl::Plain { .. } => "PLAIN",
            Sasl::Xoauth2 { .. } => "XOAUTH2",
            Sasl::Oauthbearer { .. } => "OAUTHBEARER",
        }
    }

    pub fn user(&self) -> &str {
        match self {
            Sasl::Plain { user, .. }
            | Sasl::Xoauth2 { user, .. }
            | Sasl::Oauthbearer { user, .. } => user,
        }
    }

    /// The initial response before base64, as async-imap takes it. It holds the
    /// credential, hence a `Secret`.
    pub fn initial_response(&self) -> Secret {
        Secret::new(match self {
            Sasl::Plain { user, password } => format!("\0{user}\0{}", password.expose()),
            Sasl::Xoauth2 { user, token } => xoauth2_response(user, token.expose()),
            Sasl::Oauthbearer {
                user,
                host,
                port,
                token,
            } => oauthbearer_response(user, host, *port, token.expose()),
        })
    }

    /// The initial response in base64, as a POP3 AUTH line carries it.
    pub fn initial_response_base64(&self) -> Secret {
        Secret::new(STANDARD.encode(self.initial_response().expose()))
    }
}

/// SASL LOGIN's responses before base64: the user name, then the password, each the
/// answer to one server challenge.
pub fn login_responses(user: &str, password: &Secret) -> [Secret; 2] {
    [Secret::new(user), password.clone()]
}

/// The SASL XOAUTH2 initial response (before base64), as Google and Microsoft define it.
fn xoauth2_response(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// The SASL OAUTHBEARER initial response (RFC 7628, before base64). The user goes into
/// the GS2 header as a `saslname` (RFC 5801): `,` and `=` are escaped as `=2C` and `=3D`,
/// or a user name with a comma would end the header early.
fn oauthbearer_response(user: &str, host: &str, port: u16, token: &str) -> String {
    let user = user.replace('=', "=3D").replace(',', "=2C");
    format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(sasl: &[&str], apop: bool) -> Offer {
        Offer {
            sasl: sasl.iter().map(|s| s.to_string()).collect(),
            login_disabled: false,
            apop,
        }
    }

    #[test]
    fn auto_prefers_sasl_plain_then_user_pass() {
        let pw = CredentialKind::Password;
        assert_eq!(
            choose_mechanism(AuthMech::Auto, pw, &offer(&["PLAIN", "LOGIN"], false)),
            Ok(AuthMech::Plain)
        );
        assert_eq!(
            choose_mechanism(AuthMech::Auto, pw, &offer(&[], true)),
            Ok(AuthMech::Login),
            "APOP is never chosen by auto"
        );
        let tok = CredentialKind::OAuth2Token;
        assert_eq!(
            choose_mechanism(AuthMech::Auto, tok, &offer(&["PLAIN", "XOAUTH2"], false)),
            Ok(AuthMech::Xoauth2)
        );
        assert!(choose_mechanism(AuthMech::Auto, tok, &offer(&["PLAIN"], false)).is_err());
        assert!(choose_mechanism(AuthMech::Apop, pw, &offer(&[], false)).is_err());
        assert_eq!(
            choose_mechanism(AuthMech::Apop, pw, &offer(&[], true)),
            Ok(AuthMech::Apop)
        );
    }

    #[test]
    fn oauthbearer_escapes_the_user_as_a_gs2_saslname() {
        assert_eq!(
            oauthbearer_response("a,b=c@x", "imap.x", 993, "T"),
            "n,a=a=2Cb=3Dc@x,\x01host=imap.x\x01port=993\x01auth=Bearer T\x01\x01"
        );
        assert_eq!(
            xoauth2_response("u@x", "T"),
            "user=u@x\x01auth=Bearer T\x01\x01"
        );
    }

    #[test]
    fn initial_responses_in_base64_are_rfc_4648() {
        // RFC 4616's example, PLAIN with an empty authorization identity.
        let pw = Secret::new("tanstaaftanstaaf");
        let plain = Sasl::for_mechanism(AuthMech::Plain, "tim", "h", 1, &pw).unwrap();
        assert_eq!(
            plain.initial_response_base64().expose(),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        assert!(Sasl::for_mechanism(AuthMech::Login, "tim", "h", 1, &pw).is_none());
    }
}
