//! Kiln's web UI, served by `kiln` itself on the HTTP port.
//!
//! The UI is a handful of plain ES modules, a stylesheet and one HTML page
//! under `crates/ui/assets/`, embedded into the binary at build time (see
//! `build.rs`): no bundler, no npm step, `cargo build` is enough.
//!
//! [`router`] serves the page at the UI's view paths (`/` Single view,
//! `/comparison`, `/diff`, `/explore` Tag Explorer) and the files at
//! `/assets/...`. [`mount`] puts the UI next to the API router and, when a
//! base path is configured (`--http.base-path /kiln`), serves everything
//! under that prefix as well as at the root, so Kiln works both behind a
//! proxy that keeps the prefix and behind one that strips it. The page
//! learns the prefix from a `<base href>` written into it when served; all
//! of its links, module imports and API calls are relative to it.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
    etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The paths of the UI's views; each one answers with the page.
pub const VIEW_PATHS: &[&str] = &["/", "/comparison", "/diff", "/explore"];

/// What the page's `<base href>` placeholder looks like in `index.html`.
const BASE_PLACEHOLDER: &str = "__KILN_BASE_PATH__";

fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|a| a.path.cmp(path))
        .ok()
        .map(|i| &ASSETS[i])
}

/// Checks and normalises a base path: empty or `/` means none; otherwise it
/// must start with `/`, may end with one (dropped), and may contain only
/// letters, digits and `-._~/`.
pub fn normalize_base_path(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed == "/" {
        return Ok(String::new());
    }
    if !trimmed.starts_with('/') {
        return Err(format!(
            "`http.base_path` must start with `/`, got {trimmed:?}"
        ));
    }
    let path = trimmed.trim_end_matches('/');
    let ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c));
    if !ok || path.contains("//") {
        return Err(format!(
            "`http.base_path` may contain only letters, digits and -._~/ (no empty segments), got {trimmed:?}"
        ));
    }
    Ok(path.to_owned())
}

/// The page with its `<base href>` pointing at `base_path` (normalised).
pub fn index_html(base_path: &str) -> String {
    let page = asset("index.html").map(|a| a.bytes).unwrap_or_default();
    String::from_utf8_lossy(page).replace(BASE_PLACEHOLDER, &format!("{base_path}/"))
}

fn page_response(base_path: &str) -> Response {
    let mut resp = index_html(base_path).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn serve_asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = asset(&path) else {
        return (StatusCode::NOT_FOUND, format!("no asset {path}")).into_response();
    };
    let etag = HeaderValue::from_static(a.etag);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == a.etag.as_bytes());
    // Assets change with the binary; `no-cache` revalidates them with the
    // ETag so an upgrade never serves a stale module.
    let cache = HeaderValue::from_static("no-cache");
    if fresh {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        a.bytes,
    )
        .into_response()
}

/// The UI's routes (views and assets) for a page served under `base_path`
/// (already normalised). The routes themselves are not prefixed; see
/// [`mount`].
pub fn router<S: Clone + Send + Sync + 'static>(base_path: &str) -> Router<S> {
    let mut r = Router::new().route("/assets/{*path}", get(serve_asset));
    for view in VIEW_PATHS {
        let base = base_path.to_owned();
        r = r.route(view, get(move || async move { page_response(&base) }));
    }
    r
}

/// Serves the UI next to `api`. With a base path, everything (UI and API)
/// answers under the prefix and at the root; the page answers at both
/// `<prefix>` and `<prefix>/`. `base_path` must be normalised
/// ([`normalize_base_path`]).
pub fn mount(api: Router, base_path: &str) -> Router {
    let app = api.merge(router(base_path));
    if base_path.is_empty() {
        return app;
    }
    let base = base_path.to_owned();
    Router::new()
        .nest(base_path, app.clone())
        .route(
            &format!("{base_path}/"),
            get(move || async move { page_response(&base) }),
        )
        .merge(app)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_path(app: &Router, path: &str) -> (StatusCode, HeaderMap, String) {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn api() -> Router {
        Router::new().route("/ready", get(|| async { "ready" }))
    }

    #[test]
    fn base_paths_are_normalised_and_checked() {
        assert_eq!(normalize_base_path("").unwrap(), "");
        assert_eq!(normalize_base_path("/").unwrap(), "");
        assert_eq!(normalize_base_path("/kiln/").unwrap(), "/kiln");
        assert_eq!(normalize_base_path(" /a/b ").unwrap(), "/a/b");
        assert!(normalize_base_path("kiln").is_err());
        assert!(normalize_base_path("/a//b").is_err());
        assert!(normalize_base_path("/a\"b").is_err());
        assert!(normalize_base_path("/a<b").is_err());
    }

    #[test]
    fn every_asset_the_page_references_is_embedded() {
        let page = index_html("");
        for needle in ["assets/js/app.js", "assets/style.css"] {
            assert!(page.contains(needle), "index.html references {needle}");
            let path = needle.trim_start_matches("assets/");
            assert!(asset(path).is_some(), "{path} is embedded");
        }
        assert!(page.contains("<base href=\"/\">"));
        assert!(!page.contains(BASE_PLACEHOLDER));
        // The table is sorted, as the binary search needs.
        assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path));
    }

    #[tokio::test]
    async fn serves_views_and_assets_at_the_root() {
        let app = mount(api(), "");
        for view in VIEW_PATHS {
            let (status, headers, body) = get_path(&app, view).await;
            assert_eq!(status, StatusCode::OK, "{view}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert!(body.contains("<base href=\"/\">"), "{view}");
        }
        let (status, headers, body) = get_path(&app, "/assets/js/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(body.contains("import"));
        let etag = headers[header::ETAG].clone();
        let resp = app
            .clone()
            .oneshot(
                Request::get("/assets/js/app.js")
                    .header(header::IF_NONE_MATCH, etag)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            get_path(&app, "/assets/nope.js").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(get_path(&app, "/ready").await.2, "ready");
    }

    #[tokio::test]
    async fn serves_everything_under_a_base_path_and_at_the_root() {
        let app = mount(api(), "/kiln");
        for path in ["/kiln/", "/kiln/diff", "/kiln/explore", "/diff", "/"] {
            let (status, _, body) = get_path(&app, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(body.contains("<base href=\"/kiln/\">"), "{path}");
        }
        let (status, _, body) = get_path(&app, "/kiln").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<base href=\"/kiln/\">"));
        assert_eq!(get_path(&app, "/kiln/ready").await.2, "ready");
        assert_eq!(get_path(&app, "/ready").await.2, "ready");
        assert_eq!(
            get_path(&app, "/kiln/assets/style.css").await.0,
            StatusCode::OK
        );
    }
}
