//! Who may call the mutating endpoints: a bearer token when one is configured,
//! loopback clients otherwise.

use std::net::IpAddr;

use hyper::StatusCode;

/// Decides whether a mutating call may proceed: `token` is `server.admin_token`,
/// `header` the request's `Authorization` value, `peer` the client's address.
///
/// With a token, only `Bearer <token>` passes (401 otherwise), from anywhere; without
/// one, only loopback clients pass (403 otherwise), since anyone who can reach the port
/// could otherwise drain every region.
pub fn authorize(
    token: Option<&str>,
    header: Option<&str>,
    peer: IpAddr,
) -> Result<(), (StatusCode, String)> {
    match token {
        Some(token) => match header.and_then(bearer) {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong bearer token".into())),
            None => Err((
                StatusCode::UNAUTHORIZED,
                "this call needs \"Authorization: Bearer <admin_token>\"".into(),
            )),
        },
        None if peer.to_canonical().is_loopback() => Ok(()),
        None => Err((
            StatusCode::FORBIDDEN,
            format!(
                "mutating calls are accepted from loopback only while server.admin_token \
                 is unset ({peer} is not loopback); set admin_token to allow them with \
                 \"Authorization: Bearer <admin_token>\""
            ),
        )),
    }
}

/// The credentials of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let token = rest.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without an early exit, so response time does not tell an attacker how many
/// leading bytes of a guess are right. The time depends only on the guess's length.
pub(super) fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() {
        return false;
    }
    let mut diff = u8::from(given.len() != expected.len());
    for (i, b) in given.iter().enumerate() {
        diff |= b ^ expected[i % expected.len()];
    }
    std::hint::black_box(diff) == 0
}
