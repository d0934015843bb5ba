//! Normal forms of the values records are matched on: emails and company domains. Both borrow
//! the input when it is already in normal form.
//!
//! ```
//! # use hubsync_processors::normalize::{domain, email};
//! assert_eq!(email(" Ada.Lovelace@Example.COM ").as_deref(), Ok("ada.lovelace@example.com"));
//! assert_eq!(domain("https://www.Acme.io/about").as_deref(), Some("acme.io"));
//! assert_eq!(domain("ada@acme.io").as_deref(), Some("acme.io"));
//! ```

use std::borrow::Cow;

/// `str::trim`, without its Unicode scan when the value starts and ends with a visible ASCII
/// character (the usual case).
pub fn trim(value: &str) -> &str {
    let visible = |byte: Option<&u8>| byte.is_some_and(|b| b.is_ascii_graphic());
    let bytes = value.as_bytes();
    if visible(bytes.first()) && visible(bytes.last()) {
        value
    } else {
        value.trim()
    }
}

/// Why a value is not an email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailError {
    /// Nothing but whitespace.
    Empty,
    /// Not `local@domain`, with a domain of at least two labels.
    Shape,
}

/// An email address trimmed and lower-cased, checked for the `local@domain.tld` shape HubSpot
/// accepts. Quoted local parts and IP-literal domains are refused: HubSpot refuses them too.
pub fn email(raw: &str) -> Result<Cow<'_, str>, EmailError> {
    let trimmed = trim(raw);
    if trimmed.is_empty() {
        return Err(EmailError::Empty);
    }
    let (local, domain) = trimmed.split_once('@').ok_or(EmailError::Shape)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.as_bytes().windows(2).any(|pair| pair == b"..")
        && local.chars().all(|c| {
            !c.is_whitespace() && !c.is_control() && !matches!(c, '@' | '"' | '(' | ')' | ',')
        });
    if !local_ok || !is_domain(domain) {
        return Err(EmailError::Shape);
    }
    Ok(lowercase(trimmed))
}

/// The company domain in a domain, a URL or an email address: trimmed, lower-cased, without
/// scheme, user, port, path or a leading `www.`. `None` when no domain name is there (an IP
/// address, a single label such as `localhost`, stray characters).
pub fn domain(raw: &str) -> Option<Cow<'_, str>> {
    let trimmed = trim(raw);
    if scheme_end(trimmed).is_none() && trimmed.contains('@') {
        domain_from_email(trimmed)
    } else {
        domain_from_url(trimmed)
    }
}

/// The domain of an email address (`ada@acme.io` -> `acme.io`).
pub fn domain_from_email(raw: &str) -> Option<Cow<'_, str>> {
    let (_, host) = trim(raw).rsplit_once('@')?;
    host_domain(host)
}

/// The domain of a URL or a bare host (`https://www.Acme.io/about` -> `acme.io`).
pub fn domain_from_url(raw: &str) -> Option<Cow<'_, str>> {
    let mut rest = trim(raw);
    if let Some(end) = scheme_end(rest) {
        rest = &rest[end..];
    } else if let Some(after) = rest.strip_prefix("//") {
        rest = after;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host.split_once(':').map_or(host, |(host, _port)| host);
    host_domain(host)
}

/// Where the authority of a URL starts, after its `scheme://`.
fn scheme_end(value: &str) -> Option<usize> {
    let bytes = value.as_bytes();
    let colon = bytes.iter().position(|b| *b == b':')?;
    bytes[colon + 1..].starts_with(b"//").then_some(colon + 3)
}

/// Addresses of free mail providers: their domain names the provider, not the person's company.
const FREE_MAIL: &[&str] = &[
    "aol.com",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "icloud.com",
    "live.com",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "orange.fr",
    "outlook.com",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "web.de",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.fr",
    "yandex.ru",
    "zoho.com",
    "163.com",
];

/// Whether a normalised domain belongs to a free mail provider, so an address there says
/// nothing about the person's company.
pub fn is_free_mail(domain: &str) -> bool {
    FREE_MAIL.contains(&domain)
}

fn host_domain(host: &str) -> Option<Cow<'_, str>> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let host = match host.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("www.") => &host[4..],
        _ => host,
    };
    is_domain(host).then(|| lowercase(host))
}

/// At least two labels of letters, digits and inner hyphens, each at most 63 characters, and a
/// top-level label that is not all digits (so IP addresses are not domains).
fn is_domain(host: &str) -> bool {
    if host.len() > 253 {
        return false;
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && if label.is_ascii() {
                label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            } else {
                label.chars().all(|c| c.is_alphanumeric() || c == '-')
            }
    };
    let Some((rest, last)) = host.rsplit_once('.') else {
        return false;
    };
    label_ok(last) && !last.bytes().all(|b| b.is_ascii_digit()) && rest.split('.').all(label_ok)
}

fn lowercase(value: &str) -> Cow<'_, str> {
    let upper = if value.is_ascii() {
        value.bytes().any(|b| b.is_ascii_uppercase())
    } else {
        value.chars().any(char::is_uppercase)
    };
    if upper {
        Cow::Owned(value.to_lowercase())
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            email("  Ada.Lovelace@Example.COM\t").as_deref(),
            Ok("ada.lovelace@example.com")
        );
        assert_eq!(
            email("grace+crm@navy.mil").as_deref(),
            Ok("grace+crm@navy.mil")
        );
        assert!(matches!(email("ada@acme.io"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn malformed_emails_are_refused() {
        assert_eq!(email("   "), Err(EmailError::Empty));
        for bad in [
            "ada",
            "ada@",
            "@acme.io",
            "ada@acme",
            "ada@@acme.io",
            "ada lovelace@acme.io",
            "ada@acme..io",
            ".ada@acme.io",
            "ada.@acme.io",
            "a..da@acme.io",
            "ada@-acme.io",
            "ada@acme.io/x",
            "ada@127.0.0.1",
            "\"ada\"@acme.io",
        ] {
            assert_eq!(email(bad), Err(EmailError::Shape), "{bad}");
        }
    }

    #[test]
    fn domains_come_from_urls_hosts_and_emails() {
        for (input, expected) in [
            ("https://www.Acme.io/about", "acme.io"),
            ("http://acme.io", "acme.io"),
            ("acme.io", "acme.io"),
            (" ACME.IO ", "acme.io"),
            ("www.acme.io/", "acme.io"),
            ("acme.io.", "acme.io"),
            (
                "https://user:secret@shop.acme.io:8443/cart?x=1#top",
                "shop.acme.io",
            ),
            ("//cdn.acme.io/logo.png", "cdn.acme.io"),
            ("ada@acme.io", "acme.io"),
            ("Ada@Mail.Acme.co.uk", "mail.acme.co.uk"),
            ("münchen.de", "münchen.de"),
            ("https://wwwacme.io", "wwwacme.io"),
        ] {
            assert_eq!(domain(input).as_deref(), Some(expected), "{input}");
        }
        assert!(matches!(domain("acme.io"), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn things_that_are_not_domains_are_refused() {
        for bad in [
            "",
            "n/a",
            "localhost",
            "https://",
            "192.168.0.1",
            "acme .io",
            "acme_corp.io",
            "-acme.io",
            "acme..io",
            "ada@",
        ] {
            assert_eq!(domain(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn trimming_matches_the_standard_library() {
        for value in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\u{a0}a",
            "a\u{2003}",
            "\u{b}a",
            "é",
            " é ",
        ] {
            assert_eq!(trim(value), value.trim(), "{value:?}");
        }
    }

    #[test]
    fn free_mail_domains_are_known() {
        assert!(is_free_mail("gmail.com"));
        assert!(!is_free_mail("acme.io"));
    }
}
