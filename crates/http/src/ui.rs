//! The analyst workbench: one page, its script and its style, embedded in
//! the binary and served by the host beside the API (no framework, nothing
//! fetched from any other host). The page learns how to sign in from
//! `GET /ui/config.json` ([`SignIn`]): with a pasted bearer token
//! (`agencylink serve`'s users), or through a Cognito hosted UI with the
//! authorization code flow and PKCE (the AWS deployment). It asks the
//! purpose once per session and then only calls the API's own routes; the
//! policy that goes with every asset ([`SignIn::csp`]) forbids anything
//! else, the Cognito domain's token endpoint apart when there is one.
//!
//! Both hosts answer these paths through [`page`], so they send the same
//! bytes and headers; the paths ([`PATHS`]) are not API routes, need no
//! caller, and are not in the OpenAPI document.

use std::borrow::Cow;

/// An embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The Content-Security-Policy sent with every asset when the page signs
/// in with a token: scripts, styles and requests from this origin only, no
/// inline script or style, no frames, no plugins. `blob:` is for downloads
/// the page hands to the browser.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The asset at `path` (`/` is the page), if it is one.
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, body): (&str, &[u8]) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            include_bytes!("../ui/index.html"),
        ),
        "/ui/app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../ui/app.js"),
        ),
        "/ui/app.css" => ("text/css; charset=utf-8", include_bytes!("../ui/app.css")),
        "/ui/icon.svg" | "/favicon.ico" => ("image/svg+xml", include_bytes!("../ui/icon.svg")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// Every path [`page`] answers (GET only, no caller needed): the embedded
/// files and `/ui/config.json`. The deployment's template routes exactly
/// these past its authorizer (`crates/http/tests/contract.rs` holds it to
/// that).
pub const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/favicon.ico",
    "/ui/app.js",
    "/ui/app.css",
    "/ui/icon.svg",
    CONFIG,
];

/// Where the page reads how to sign in.
pub const CONFIG: &str = "/ui/config.json";

/// How the page signs in, as [`CONFIG`] tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SignIn {
    /// The user pastes a bearer token: `agencylink serve`'s users, or on
    /// AWS without a hosted UI configured, a Cognito ID token got some
    /// other way.
    #[default]
    Token,
    /// A Cognito hosted UI: authorization code with PKCE, a public client.
    OAuth(OAuth),
}

/// A Cognito hosted UI the page signs in through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth {
    /// `https://HOST`, no path: the domain's origin, which is all the
    /// policy lets the page reach besides its own server.
    origin: String,
    client_id: String,
    redirect_uri: String,
    /// The origin of the host's download links (presigned S3 URLs), which
    /// the page fetches to show a profile and to save a file: the data
    /// bucket's own endpoint, added to `connect-src` beside the domain.
    downloads: Option<String>,
}

/// Why a hosted UI's settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The domain is not `https://HOST`.
    #[error(
        "the sign-in domain must be https:// and a host name only (lower case, no path, no port)"
    )]
    Domain,
    /// The client id is not one Cognito issues.
    #[error("the sign-in app client id must be letters and digits")]
    ClientId,
    /// The page's own address is not an https URL.
    #[error("the workbench's redirect URL must be an https URL without spaces or quotes")]
    RedirectUri,
    /// The download links' origin is not `https://HOST[:PORT]` (or plain
    /// http to a loopback address, as a local S3 stand-in serves).
    #[error("the download links' origin must be https:// and a host name only")]
    Downloads,
}

/// A lower-case DNS host name: labels of letters, digits and hyphens (not
/// at a label's ends), at most 253 bytes; nothing a policy could widen.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// `scheme://host[:port]` of an absolute http(s) URL, lower-cased, if that
/// is all a policy source would name: a host of letters, digits, dots and
/// hyphens (with an optional numeric port), and https unless the host is a
/// loopback address. `None` for anything else (a relative link, user info,
/// an IP literal in brackets, a quote or space that could widen a policy).
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority.as_str(), None),
    };
    let host_ok = plain_host(host);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let loopback = host == "localhost" || host == "127.0.0.1";
    let scheme_ok = scheme == "https" || (scheme == "http" && loopback);
    (host_ok && port_ok && scheme_ok && (host.contains('.') || loopback))
        .then(|| format!("{scheme}://{authority}"))
}

impl OAuth {
    /// Check the settings: each ends up in the page's policy or in the
    /// requests it makes, so nothing outside a plain host name, client id
    /// and URL is accepted.
    pub fn new(domain: &str, client_id: &str, redirect_uri: &str) -> Result<Self, ConfigError> {
        let domain = domain.trim().trim_end_matches('/');
        let host = domain.strip_prefix("https://").ok_or(ConfigError::Domain)?;
        if !(plain_host(host) && host.contains('.')) {
            return Err(ConfigError::Domain);
        }
        let client_id = client_id.trim();
        if client_id.is_empty()
            || client_id.len() > 128
            || !client_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ConfigError::ClientId);
        }
        let redirect_uri = redirect_uri.trim();
        let redirect_ok = redirect_uri
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
            && redirect_uri.len() <= 1024
            && redirect_uri
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\'));
        if !redirect_ok {
            return Err(ConfigError::RedirectUri);
        }
        Ok(OAuth {
            origin: domain.to_owned(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            downloads: None,
        })
    }

    /// Let the page fetch the host's download links, which are on `link`'s
    /// origin ([`origin_of`]; pass a link the host made, so the policy
    /// names exactly where its links point).
    pub fn with_downloads_from(mut self, link: &str) -> Result<Self, ConfigError> {
        self.downloads = Some(origin_of(link).ok_or(ConfigError::Downloads)?);
        Ok(self)
    }

    /// The origin the policy lets the page fetch download links from, if
    /// any.
    pub fn downloads(&self) -> Option<&str> {
        self.downloads.as_deref()
    }
}

impl SignIn {
    /// What [`CONFIG`] answers. The endpoints are Cognito's hosted UI
    /// paths on the domain; `scope` is `openid` alone, as the page needs
    /// the ID token and nothing else.
    pub fn config(&self) -> serde_json::Value {
        match self {
            SignIn::Token => serde_json::json!({ "sign_in": "token" }),
            SignIn::OAuth(o) => serde_json::json!({
                "sign_in": "oauth",
                "authorize": format!("{}/oauth2/authorize", o.origin),
                "token": format!("{}/oauth2/token", o.origin),
                "logout": format!("{}/logout", o.origin),
                "client_id": o.client_id,
                "redirect_uri": o.redirect_uri,
                "scope": "openid",
            }),
        }
    }

    /// The policy sent with every asset: [`CSP`], and with a hosted UI its
    /// origin in `connect-src` only, for the token request, and the
    /// download links' origin when the host has one
    /// ([`OAuth::with_downloads_from`]), for the profile view and saved
    /// files. Going to the hosted UI's sign-in and sign-out pages is a
    /// navigation, which `connect-src` and `form-action` do not govern, so
    /// nothing else opens.
    pub fn csp(&self) -> Cow<'static, str> {
        match self {
            SignIn::Token => Cow::Borrowed(CSP),
            SignIn::OAuth(o) => {
                let mut connect = format!("connect-src 'self' {}", o.origin);
                if let Some(d) = &o.downloads {
                    connect.push(' ');
                    connect.push_str(d);
                }
                Cow::Owned(CSP.replacen("connect-src 'self'", &connect, 1))
            }
        }
    }
}

/// An answer to one of [`PATHS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Its bytes.
    pub body: Cow<'static, [u8]>,
    /// Every header to send with it, the media type included.
    pub headers: Vec<(&'static str, String)>,
}

/// The answer to `GET path` (without its query) if `path` is one of the
/// workbench's, with the headers both hosts send: the policy, no sniffing,
/// never in a frame, no referrer (a code or token in the address never
/// leaves in one), and revalidated on every load so a new release is
/// picked up at once.
pub fn page(path: &str, sign_in: &SignIn) -> Option<Page> {
    let (content_type, body) = if path == CONFIG {
        (
            "application/json",
            Cow::Owned(sign_in.config().to_string().into_bytes()),
        )
    } else {
        let a = asset(path)?;
        (a.content_type, Cow::Borrowed(a.body))
    };
    let headers = vec![
        ("Content-Type", content_type.to_owned()),
        ("Content-Security-Policy", sign_in.csp().into_owned()),
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("X-Frame-Options", "DENY".to_owned()),
        ("Referrer-Policy", "no-referrer".to_owned()),
        ("Cache-Control", "no-cache".to_owned()),
    ];
    Some(Page { body, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_no_inline_code() {
        let page = std::str::from_utf8(asset("/").expect("the page").body).expect("UTF-8");
        assert!(page.contains("src=\"/ui/app.js\"") && page.contains("href=\"/ui/app.css\""));
        for banned in [
            "http://", "https://", "<script>", "style=", "onclick", "//cdn",
        ] {
            assert!(!page.contains(banned), "the page holds {banned}");
        }
        let script = std::str::from_utf8(asset("/ui/app.js").expect("script").body)
            .expect("UTF-8")
            // A namespace name, not an address anything is fetched from.
            .replace("'http://www.w3.org/2000/svg'", "");
        // Values from the API go in as text: no markup is ever parsed.
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "http://",
            "https://",
        ] {
            assert!(!script.contains(banned), "the script uses {banned}");
        }
        assert!(asset("/ui/../Cargo.toml").is_none() && asset("/ui/other.js").is_none());
    }

    fn cognito() -> SignIn {
        SignIn::OAuth(
            OAuth::new(
                "https://agencylink-test.auth.eu-west-2.amazoncognito.com/",
                "4example0client0id",
                "https://a1b2c3.execute-api.eu-west-2.amazonaws.com/",
            )
            .expect("valid settings"),
        )
    }

    /// The policy's `connect-src` directive.
    fn connect_src(csp: &str) -> &str {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with("connect-src"))
            .expect("connect-src")
    }

    #[test]
    fn the_policy_names_the_hosted_ui_only_when_there_is_one() {
        assert_eq!(SignIn::Token.csp(), CSP);
        assert!(!CSP.contains("https:") && !CSP.contains("http:"));
        let csp = cognito().csp();
        let connect = connect_src(&csp);
        assert_eq!(
            connect,
            "connect-src 'self' https://agencylink-test.auth.eu-west-2.amazoncognito.com"
        );
        // Nowhere else: the rest of the policy is unchanged.
        assert_eq!(
            csp.replace(
                " https://agencylink-test.auth.eu-west-2.amazoncognito.com",
                ""
            ),
            CSP
        );
    }

    #[test]
    fn the_download_links_origin_is_added_beside_the_hosted_ui() {
        let SignIn::OAuth(o) = cognito() else {
            unreachable!()
        };
        let link = "https://agencylink-data-123.s3.eu-west-2.amazonaws.com/profiles/x/profile.json?X-Amz-Signature=ab";
        let o = o.with_downloads_from(link).expect("an S3 link");
        assert_eq!(
            o.downloads(),
            Some("https://agencylink-data-123.s3.eu-west-2.amazonaws.com")
        );
        let csp = SignIn::OAuth(o).csp();
        let connect = connect_src(&csp);
        assert_eq!(
            connect,
            "connect-src 'self' https://agencylink-test.auth.eu-west-2.amazoncognito.com https://agencylink-data-123.s3.eu-west-2.amazonaws.com"
        );
        assert_eq!(
            csp.replace(
                " https://agencylink-test.auth.eu-west-2.amazoncognito.com https://agencylink-data-123.s3.eu-west-2.amazonaws.com",
                ""
            ),
            CSP
        );
        // Path-style links, and a local stand-in over plain http.
        assert_eq!(
            origin_of("https://s3.eu-west-2.amazonaws.com/bucket/k?a=b").as_deref(),
            Some("https://s3.eu-west-2.amazonaws.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:5112/bucket/k").as_deref(),
            Some("http://127.0.0.1:5112")
        );
        for bad in [
            "/downloads/abc",
            "http://s3.example.org/k",
            "https://a.example:x/k",
            "https://user@a.example/k",
            "https://a.example k",
            "https://a.example;script-src",
            "https://*.example/k",
            "https://[::1]/k",
            "https:///k",
            "https://nodot/k",
        ] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_config_tells_the_page_how_to_sign_in() {
        assert_eq!(
            SignIn::Token.config(),
            serde_json::json!({"sign_in": "token"})
        );
        let c = cognito().config();
        assert_eq!(c["sign_in"], "oauth");
        assert_eq!(
            c["authorize"],
            "https://agencylink-test.auth.eu-west-2.amazoncognito.com/oauth2/authorize"
        );
        assert_eq!(
            c["token"],
            "https://agencylink-test.auth.eu-west-2.amazoncognito.com/oauth2/token"
        );
        assert_eq!(c["client_id"], "4example0client0id");
        assert_eq!(
            c["redirect_uri"],
            "https://a1b2c3.execute-api.eu-west-2.amazonaws.com/"
        );
        assert_eq!(c["scope"], "openid");
        let p = page(CONFIG, &cognito()).expect("the config");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&p.body).expect("JSON"),
            c
        );
    }

    #[test]
    fn settings_that_could_widen_the_policy_are_refused() {
        let ok_client = "abc123";
        let ok_redirect = "https://x.example/";
        for domain in [
            "",
            "http://auth.example",
            "https://",
            "https://auth.example/path",
            "https://auth.example:8443",
            "https://auth.example https://evil.example",
            "https://auth.example;script-src *",
            "https://*.example",
            "https://AUTH.example",
            "https://localhost",
        ] {
            assert_eq!(
                OAuth::new(domain, ok_client, ok_redirect),
                Err(ConfigError::Domain),
                "{domain}"
            );
        }
        for client in ["", "a b", "abc\"", "x;y"] {
            assert_eq!(
                OAuth::new("https://auth.example", client, ok_redirect),
                Err(ConfigError::ClientId),
                "{client}"
            );
        }
        for redirect in [
            "",
            "http://x.example/",
            "https://",
            "https:///x",
            "https://x.example/\"a",
        ] {
            assert_eq!(
                OAuth::new("https://auth.example", ok_client, redirect),
                Err(ConfigError::RedirectUri),
                "{redirect}"
            );
        }
    }

    #[test]
    fn every_path_is_answered_with_the_same_headers() {
        for path in PATHS {
            let p = page(path, &SignIn::Token).expect(path);
            let names: Vec<&str> = p.headers.iter().map(|(n, _)| *n).collect();
            assert_eq!(
                names,
                [
                    "Content-Type",
                    "Content-Security-Policy",
                    "X-Content-Type-Options",
                    "X-Frame-Options",
                    "Referrer-Policy",
                    "Cache-Control"
                ],
                "{path}"
            );
        }
        assert!(page("/ui/x", &SignIn::Token).is_none());
        assert!(page("/me", &SignIn::Token).is_none());
        assert!(page("/ui/config.json/", &SignIn::Token).is_none());
    }
}
