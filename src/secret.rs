//! Secret sources: password_command, oauth2_token_command, password.
