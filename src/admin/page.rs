//! The status page at `GET /`: one self-contained HTML file (`status.html`, its style and
//! script inline, nothing loaded from anywhere else, so it works on an isolated
//! management network) that polls `/api/v1/regions` and `/api/v1/status`.
//!
//! It is static: no value is written into it here, so it cannot leak the admin token or
//! the config. Its Content-Security-Policy lets only its own inline style and script run
//! (by hash) and lets it fetch only from the admin API itself.

use std::sync::LazyLock;

use hickory_proto::dnssec::DigestType;
use hickory_proto::dnssec::crypto::Digest;

use super::*;

/// The page.
pub(super) const PAGE: &str = include_str!("status.html");

/// The page's Content-Security-Policy, with the hashes of its inline style and script.
static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; connect-src 'self'; style-src '{}'; script-src '{}'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(inline(PAGE, "style")),
        hash(inline(PAGE, "script"))
    )
});

/// The text of the first `<tag>...</tag>` element of `page` (empty when there is none).
fn inline<'a>(page: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    page.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map_or("", |(text, _)| text)
}

/// A CSP source of `text`'s SHA-256 (`sha256-BASE64`).
fn hash(text: &str) -> String {
    let digest = Digest::new(text.as_bytes(), DigestType::SHA256).expect("SHA-256 is supported");
    format!("sha256-{}", data_encoding::BASE64.encode(digest.as_ref()))
}

/// The page, with headers that keep it from being framed, sniffed or given a referrer.
pub(super) fn reply() -> Reply {
    let mut r = text(StatusCode::OK, "text/html; charset=utf-8", PAGE.into());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&CSP).expect("the policy is ASCII"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_hashes_the_inline_style_and_script() {
        assert!(inline(PAGE, "script").contains("function poll"));
        assert!(inline(PAGE, "style").contains(".bar"));
        // The page has exactly one of each, and loads nothing from elsewhere.
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        for outside in ["http:", "https:", "src=", "<link", "@import", "url("] {
            assert!(!PAGE.contains(outside), "{outside} in the page");
        }
        // The SHA-256 of "abc", as a CSP source.
        assert_eq!(
            hash("abc"),
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert!(CSP.contains(&hash(inline(PAGE, "script"))));
    }
}
