//! The analyst workbench: one page, its script and its style, embedded in
//! the binary and served by the host beside the API (no framework, nothing
//! fetched from any other host). The page signs in with a user's bearer
//! token, asks the purpose once per session, and then only calls the API's
//! own routes; the [`CSP`] that goes with every asset forbids anything else.

/// An embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The Content-Security-Policy sent with every asset: scripts, styles and
/// requests from this origin only, no inline script or style, no frames,
/// no plugins. `blob:` is for downloads the page hands to the browser.
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
}
