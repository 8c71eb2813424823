//! Kiln-specific endpoints for the web UI, beyond Pyroscope's API:
//! `POST /kiln.ui.v1/Table`, `/kiln.ui.v1/DiffTable` and
//! `/kiln.ui.v1/Sandwich` (JSON in, JSON out).
//!
//! Each merges the matching profiles with the querier's own merge path
//! ([`Querier::merge_tree`]) and computes from the **full** merged tree, so
//! the function table and the sandwich view stay exact when the flame graph
//! is truncated to `maxNodes`. The computations are in `kiln-model`
//! (`function_table`, `sandwich`, `truncation`); this file only decodes,
//! calls and encodes. Also here: [`with_ui`], which puts the web UI
//! (`kiln-ui`) next to the API router under the configured base path.

use std::io::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kiln_model::function_table::{DiffFunctionTable, FunctionTable};
use kiln_model::sandwich::Sandwich;
use kiln_model::truncation::TruncationSummary;
use kiln_model::{
    ErrorCode, FlameGraph, FlameGraphDiff, ProfileType, Selector, StackTree, TenantId,
};
use kiln_querier::{Querier, TreeQuery};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, not_running, read_body};
use crate::tenant::tenants_for_read;

/// Largest request body of these endpoints.
const BODY_LIMIT: usize = 1 << 20;
/// Responses larger than this are gzipped when the client accepts it.
const GZIP_OVER: usize = 32 << 10;

/// The routes of the UI API (merged into the main router).
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/kiln.ui.v1/{method}", post(ui_method))
}

/// The API router with the web UI mounted next to it, everything under
/// `base_path` (and at the root); see [`kiln_ui::mount`].
/// `base_path` is checked by the configuration's validation; an invalid
/// one here means none.
pub fn with_ui(api: Router, base_path: &str) -> Router {
    let base = kiln_ui::normalize_base_path(base_path).unwrap_or_default();
    kiln_ui::mount(api, &base)
}

/// An int64 as Connect JSON writes it (string) or as a plain number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Int64 {
    Number(i64),
    Text(String),
}

impl Int64 {
    fn get(&self, field: &str) -> Result<i64, ApiError> {
        match self {
            Int64::Number(n) => Ok(*n),
            Int64::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| ApiError::invalid(format!("`{field}` must be an integer, got {s:?}"))),
        }
    }
}

/// Which profiles to merge: the fields of `SelectMergeStacktraces`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileQuery {
    #[serde(rename = "profileTypeID")]
    profile_type_id: String,
    #[serde(default)]
    label_selector: String,
    start: Int64,
    end: Int64,
    #[serde(default)]
    max_nodes: Option<Int64>,
}

impl ProfileQuery {
    fn tree_query(&self) -> Result<TreeQuery, ApiError> {
        let selector = if self.label_selector.trim().is_empty() {
            "{}"
        } else {
            self.label_selector.as_str()
        };
        Ok(TreeQuery {
            profile_type: ProfileType::parse(&self.profile_type_id)
                .map_err(|e| ApiError::from_err(&e))?,
            selector: Selector::parse(selector).map_err(|e| ApiError::from_err(&e))?,
            start_ms: self.start.get("start")?,
            end_ms: self.end.get("end")?,
            call_site: Vec::new(),
            span_ids: None,
            profile_ids: None,
        })
    }

    fn max_nodes(&self, querier: &Querier) -> Result<usize, ApiError> {
        let requested = match &self.max_nodes {
            Some(n) => Some(n.get("maxNodes")?),
            None => None,
        };
        querier
            .max_nodes(requested)
            .map_err(|e| ApiError::from_err(&e))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TableRequest {
    #[serde(flatten)]
    query: ProfileQuery,
    /// Also answer the flame graph (truncated to `maxNodes`) of the same
    /// merge, saving the UI a second query.
    #[serde(default)]
    flamegraph: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiffTableRequest {
    left: ProfileQuery,
    right: ProfileQuery,
    #[serde(default)]
    flamegraph: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SandwichRequest {
    #[serde(flatten)]
    query: ProfileQuery,
    function: String,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid request: {e}")))
}

/// Flame-graph levels as plain JSON arrays (not Connect's int64 strings).
fn flamegraph_json(f: &FlameGraph) -> Value {
    json!({"names": f.names, "levels": f.levels, "total": f.total, "maxSelf": f.max_self})
}

fn diff_flamegraph_json(f: &FlameGraphDiff) -> Value {
    json!({
        "names": f.names, "levels": f.levels, "total": f.total, "maxSelf": f.max_self,
        "leftTicks": f.left_ticks, "rightTicks": f.right_ticks,
    })
}

fn truncation_json(t: &TruncationSummary) -> Value {
    json!({
        "nodes": t.nodes, "maxNodes": t.max_nodes, "threshold": t.threshold, "kept": t.kept,
        "folded": t.folded, "otherNodes": t.other_nodes, "otherTotal": t.other_total,
    })
}

/// The answer of `Table`.
fn table_response(tree: &StackTree, max_nodes: usize, with_flamegraph: bool) -> Value {
    let table = FunctionTable::from_tree(tree);
    let rows: Vec<Value> = table
        .rows
        .iter()
        .map(|r| json!({"name": r.name, "self": r.self_value, "total": r.total}))
        .collect();
    let mut out = json!({
        "total": table.total,
        "rows": rows,
        "truncation": truncation_json(&TruncationSummary::of(tree, max_nodes)),
    });
    if with_flamegraph {
        out["flamegraph"] = flamegraph_json(&FlameGraph::from_tree(tree, max_nodes));
    }
    out
}

/// The answer of `DiffTable`.
fn diff_table_response(
    left: &StackTree,
    right: &StackTree,
    max_nodes: usize,
    with_flamegraph: bool,
) -> Value {
    let table = DiffFunctionTable::from_trees(left, right);
    let rows: Vec<Value> = table
        .rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name, "leftSelf": r.left_self, "leftTotal": r.left_total,
                "rightSelf": r.right_self, "rightTotal": r.right_total,
            })
        })
        .collect();
    let mut out =
        json!({"leftTotal": table.left_total, "rightTotal": table.right_total, "rows": rows});
    if with_flamegraph {
        out["flamegraph"] =
            diff_flamegraph_json(&FlameGraphDiff::from_trees(left, right, max_nodes));
    }
    out
}

/// The answer of `Sandwich`.
fn sandwich_response(tree: &StackTree, function: &str, max_nodes: usize) -> Value {
    let s = Sandwich::of(tree, function);
    json!({
        "function": function,
        "self": s.self_value,
        "total": s.total,
        "callers": flamegraph_json(&FlameGraph::from_tree(&s.callers, max_nodes)),
        "callees": flamegraph_json(&FlameGraph::from_tree(&s.callees, max_nodes)),
    })
}

async fn merge(
    querier: &Querier,
    tenants: &[TenantId],
    query: &ProfileQuery,
) -> Result<StackTree, ApiError> {
    querier
        .merge_tree(tenants, &query.tree_query()?)
        .await
        .map_err(|e| ApiError::from_err(&e))
}

/// Runs `f` on the blocking pool: tree walks over large profiles take a
/// while and must not hold an async worker.
async fn off_thread(f: impl FnOnce() -> Value + Send + 'static) -> Result<Value, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// Runs one method.
async fn answer(
    querier: Arc<Querier>,
    tenants: Vec<TenantId>,
    method: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    match method {
        "Table" => {
            let req: TableRequest = parse(body)?;
            let max_nodes = req.query.max_nodes(&querier)?;
            let tree = merge(&querier, &tenants, &req.query).await?;
            off_thread(move || table_response(&tree, max_nodes, req.flamegraph)).await
        }
        "DiffTable" => {
            let req: DiffTableRequest = parse(body)?;
            let max_nodes = req
                .left
                .max_nodes(&querier)?
                .max(req.right.max_nodes(&querier)?);
            let (left, right) = futures::try_join!(
                merge(&querier, &tenants, &req.left),
                merge(&querier, &tenants, &req.right)
            )?;
            off_thread(move || diff_table_response(&left, &right, max_nodes, req.flamegraph)).await
        }
        "Sandwich" => {
            let req: SandwichRequest = parse(body)?;
            if req.function.is_empty() {
                return Err(ApiError::invalid("missing function"));
            }
            let max_nodes = req.query.max_nodes(&querier)?;
            let tree = merge(&querier, &tenants, &req.query).await?;
            off_thread(move || sandwich_response(&tree, &req.function, max_nodes)).await
        }
        other => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("unknown method kiln.ui.v1/{other}: use Table, DiffTable or Sandwich"),
        )),
    }
}

/// `POST /kiln.ui.v1/<Method>`.
async fn ui_method(
    State(state): State<AppState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(querier) = state.querier.clone() else {
        return not_running("querier").into_response();
    };
    let tenants = match tenants_for_read(&headers, state.multitenancy) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let body = match read_body(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match answer(querier, tenants, &method, &body).await {
        Ok(value) => json_response(&value, accepts_gzip(&headers)),
        Err(e) => e.into_response(),
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|e| e.trim().starts_with("gzip")))
}

fn json_response(value: &Value, gzip: bool) -> Response {
    let bytes = value.to_string().into_bytes();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if gzip && bytes.len() > GZIP_OVER {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if enc.write_all(&bytes).is_ok()
            && let Ok(zipped) = enc.finish()
        {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return (headers, zipped).into_response();
        }
    }
    (headers, bytes).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn tree(stacks: &[(&str, i64)]) -> StackTree {
        let mut t = StackTree::new();
        for (s, v) in stacks {
            let frames: Vec<&str> = s.split(';').collect();
            t.insert_stack(&frames, *v);
        }
        t
    }

    /// Rows of a JSON table as name → (self, total).
    fn rows(v: &Value) -> BTreeMap<String, (i64, i64)> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    (r["self"].as_i64().unwrap(), r["total"].as_i64().unwrap()),
                )
            })
            .collect()
    }

    #[test]
    fn requests_accept_connect_style_and_plain_numbers() {
        let a: TableRequest = parse(
            br#"{"profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","labelSelector":"{service_name=\"a\"}","start":"1000","end":2000,"maxNodes":"16","flamegraph":true}"#,
        )
        .unwrap();
        let q = a.query.tree_query().unwrap();
        assert_eq!((q.start_ms, q.end_ms), (1000, 2000));
        assert_eq!(q.profile_type.sample_unit, "nanoseconds");
        assert!(a.flamegraph);
        let bad: TableRequest = parse(
            br#"{"profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","start":"x","end":1}"#,
        )
        .unwrap();
        let err = bad.query.tree_query().unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("start"), "{}", err.message);
        assert!(parse::<TableRequest>(b"{}").is_err());
        let bad_selector: TableRequest = parse(
            br#"{"profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","labelSelector":"{a=","start":1,"end":2}"#,
        )
        .unwrap();
        assert_eq!(
            bad_selector.query.tree_query().unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn table_counts_recursion_once_and_reports_truncation() {
        // Worked by hand: total 60; a is on stacks worth 10 + 20 + 5 = 35.
        let t = tree(&[
            ("main;a;a;b", 10),
            ("main;a;c", 20),
            ("main;a", 5),
            ("main;d", 25),
        ]);
        let v = table_response(&t, 3, true);
        assert_eq!(v["total"], 60);
        let r = rows(&v);
        assert_eq!(r["main"], (0, 60));
        assert_eq!(r["a"], (5, 35));
        assert_eq!(r["b"], (10, 10));
        assert_eq!(r["c"], (20, 20));
        assert_eq!(r["d"], (25, 25));
        // Node totals: main 60, a 35, d 25, c 20, inner a 10, b 10 → budget
        // 3 keeps main, a, d (threshold 25); c and the inner a (with b
        // under it) fold into one `other` under the outer a.
        let tr = &v["truncation"];
        assert_eq!(tr["nodes"], 6);
        assert_eq!(tr["threshold"], 25);
        assert_eq!(tr["kept"], 3);
        assert_eq!(tr["folded"], 3);
        assert_eq!(tr["otherNodes"], 1);
        assert_eq!(tr["otherTotal"], 30);
        // The flame graph has the `other` node; the table does not.
        let names: Vec<&str> = v["flamegraph"]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert!(names.contains(&"other"));
        assert!(!r.contains_key("other"));
        assert!(table_response(&t, 3, false).get("flamegraph").is_none());
    }

    #[test]
    fn diff_table_has_both_sides() {
        let l = tree(&[("main;foo", 30), ("main;bar", 10)]);
        let r = tree(&[("main;foo", 10), ("main;baz", 20)]);
        let v = diff_table_response(&l, &r, 0, true);
        assert_eq!(
            (v["leftTotal"].as_i64(), v["rightTotal"].as_i64()),
            (Some(40), Some(30))
        );
        let baz = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "baz")
            .unwrap();
        assert_eq!(baz["leftTotal"], 0);
        assert_eq!(baz["rightTotal"], 20);
        assert_eq!(v["flamegraph"]["leftTicks"], 40);
        assert_eq!(v["flamegraph"]["rightTicks"], 30);
    }

    #[test]
    fn sandwich_halves_total_the_function() {
        let t = tree(&[("main;x;f;g", 7), ("main;y;f", 3), ("main;z", 90)]);
        let v = sandwich_response(&t, "f", 0);
        assert_eq!(v["total"], 10);
        assert_eq!(v["self"], 3);
        assert_eq!(v["callers"]["total"], 10);
        assert_eq!(v["callees"]["total"], 10);
        // callers: f at depth 1, then its callers x and y, then main.
        let callers = &v["callers"];
        let names = callers["names"].as_array().unwrap();
        let level = |d: usize| -> Vec<&str> {
            callers["levels"][d]
                .as_array()
                .unwrap()
                .chunks(4)
                .map(|c| names[c[3].as_u64().unwrap() as usize].as_str().unwrap())
                .collect()
        };
        assert_eq!(level(1), vec!["f"]);
        assert_eq!(level(2), vec!["x", "y"]);
        assert_eq!(level(3), vec!["main", "main"]);
    }

    #[test]
    fn large_answers_are_gzipped_when_accepted() {
        let big = json!({"rows": vec!["a name"; 20_000]});
        let plain = json_response(&big, false);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let zipped = json_response(&big, true);
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
