//! The web app's own files, compiled into the binary: the stylesheet, the device-key page's and the
//! passkey pages' scripts, and the vendored age-encryption bundle (see static/vendor/README.md). Each
//! is served under a path that names its content hash, so it can be cached for good; pages reference
//! it with a Subresource Integrity hash, so a changed byte is refused by the browser.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{PageError, Visitor};

pub struct Asset {
    pub name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// The first 16 hex digits of the SHA-256: the path's version.
    version: String,
    /// `sha256-…` for the `integrity` attribute.
    pub integrity: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let digest = Sha256::digest(bytes);
        Self {
            name,
            content_type,
            bytes,
            version: hex::encode(&digest[..8]),
            integrity: format!("sha256-{}", data_encoding::BASE64.encode(&digest)),
        }
    }

    pub fn url(&self) -> String {
        format!("/static/{}/{}", self.version, self.name)
    }
}

pub static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../static/app.css"),
    )
});

pub static DEVICE_JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "device.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/device.js"),
    )
});

pub static PASSKEY_JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "passkey.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/passkey.js"),
    )
});

pub static AGE_JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "age-encryption.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/vendor/age-encryption.js"),
    )
});

pub async fn serve(
    visitor: Visitor,
    Path((version, file)): Path<(String, String)>,
) -> Result<Response, PageError> {
    if version == "idle" {
        return idle_css(visitor, &file);
    }
    let asset = [&*CSS, &*DEVICE_JS, &*PASSKEY_JS, &*AGE_JS]
        .into_iter()
        .find(|a| a.name == file && a.version == version)
        .ok_or(PageError::NotFound(visitor.lang))?;
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}

/// The idle warning's delay: `/static/idle/{seconds}.css` makes the warning banner (hidden by
/// app.css) appear after that many seconds on the page. No script, no refresh: the browser's own
/// CSS animation clock.
fn idle_css(visitor: Visitor, file: &str) -> Result<Response, PageError> {
    let seconds: u32 = file
        .strip_suffix(".css")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n <= 86_400)
        .ok_or(PageError::NotFound(visitor.lang))?;
    let mut response = format!(".idle-warning{{animation-delay:{seconds}s}}\n").into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}
