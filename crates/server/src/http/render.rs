//! The legacy render API: `/pyroscope/render`, `/pyroscope/render-diff`,
//! `/pyroscope/label-values`, `/pyroscope/labels` (flamebearer JSON).
//!
//! `query` is either `<profile type ID>{matchers}` (current Pyroscope) or
//! the OG form `<app>.<kind>{matchers}`, which is translated to the
//! service's matching profile type and a `service_name` matcher.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use kiln_model::labels::LABEL_SERVICE_NAME;
use kiln_model::{FlameGraph, FlameGraphDiff, Matcher, ProfileType, Selector, TenantId};
use kiln_proto::querier::v1 as q;
use kiln_proto::types::v1 as t;
use kiln_querier::{Querier, TreeQuery};
use serde_json::{Value, json};

use crate::http::{ApiError, AppState, now_ns};
use crate::tenant::tenants_for_read;

const NS_PER_MS: i64 = 1_000_000;

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn time_param(q: &[(String, String)], name: &str, default_ms: i64) -> Result<i64, ApiError> {
    match param(q, name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default_ms),
        Some(v) => kiln_model::attime::parse_attime(v, now_ns())
            .map(|ns| ns.div_euclid(NS_PER_MS))
            .map_err(|e| ApiError::invalid(format!("{name}: {e}"))),
    }
}

fn max_nodes_param(q: &[(String, String)]) -> Result<Option<i64>, ApiError> {
    match param(q, "maxNodes").or_else(|| param(q, "max-nodes")) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("maxNodes: not a number: {v:?}"))),
    }
}

fn querier(state: &AppState) -> Result<&Querier, ApiError> {
    state.querier.as_deref().ok_or_else(|| {
        ApiError::new(
            kiln_model::ErrorCode::NotFound,
            "this node does not run the querier",
        )
    })
}

/// The `(__name__, sample type)` an OG profile kind stands for, and the
/// profile type ID it gets when uploaded as folded text at the default rate.
fn og_kind(kind: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match kind {
        "cpu" | "itimer" | "" => (
            "process_cpu",
            "cpu",
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        ),
        "wall" => ("wall", "wall", "wall:wall:nanoseconds:cpu:nanoseconds"),
        "alloc_objects" => ("memory", "alloc_objects", "memory:alloc_objects:count::"),
        "alloc_space" => ("memory", "alloc_space", "memory:alloc_space:bytes::"),
        "inuse_objects" => ("memory", "inuse_objects", "memory:inuse_objects:count::"),
        "inuse_space" => ("memory", "inuse_space", "memory:inuse_space:bytes::"),
        "goroutines" => ("goroutine", "goroutines", "goroutine:goroutines:count::"),
        "mutex_count" => ("mutex", "contentions", "mutex:contentions:count::"),
        "mutex_duration" => ("mutex", "delay", "mutex:delay:nanoseconds::"),
        "block_count" | "lock_count" => ("block", "contentions", "block:contentions:count::"),
        "block_duration" | "lock_duration" => ("block", "delay", "block:delay:nanoseconds::"),
        "alloc_in_new_tlab_objects" => (
            "memory",
            "alloc_in_new_tlab_objects",
            "memory:alloc_in_new_tlab_objects:count::",
        ),
        "alloc_in_new_tlab_bytes" => (
            "memory",
            "alloc_in_new_tlab_bytes",
            "memory:alloc_in_new_tlab_bytes:bytes::",
        ),
        "alloc_outside_tlab_objects" => (
            "memory",
            "alloc_outside_tlab_objects",
            "memory:alloc_outside_tlab_objects:count::",
        ),
        "alloc_outside_tlab_bytes" => (
            "memory",
            "alloc_outside_tlab_bytes",
            "memory:alloc_outside_tlab_bytes:bytes::",
        ),
        "live" => ("memory", "live", "memory:live:count::"),
        "exceptions" => ("exceptions", "samples", "exceptions:samples:count::"),
        _ => return None,
    })
}

/// Parses a render `query` into a profile type and selector.
async fn parse_query(
    querier: &Querier,
    tenants: &[TenantId],
    query: &str,
    from_ms: i64,
    until_ms: i64,
) -> Result<(ProfileType, Selector), ApiError> {
    let mut selector = Selector::parse(query).map_err(|e| ApiError::from_err(&e))?;
    let name = selector
        .metric_name
        .take()
        .ok_or_else(|| ApiError::invalid("query must start with a profile type, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds{}"))?;
    if name.matches(':').count() >= 4 {
        let pt = ProfileType::parse(&name).map_err(|e| ApiError::from_err(&e))?;
        return Ok((pt, selector));
    }
    // OG form: <app>.<kind>
    let (app, kind) = match name.rsplit_once('.') {
        Some((app, kind)) if og_kind(kind).is_some() => (app.to_owned(), kind.to_owned()),
        _ => (name.clone(), "cpu".to_owned()),
    };
    let (metric, sample_type, fallback) = og_kind(&kind)
        .ok_or_else(|| ApiError::invalid(format!("unknown profile kind {kind:?}")))?;
    selector
        .matchers
        .push(Matcher::equal(LABEL_SERVICE_NAME, app));
    let types = querier
        .profile_types(
            tenants,
            q::ProfileTypesRequest {
                start: from_ms.max(1),
                end: until_ms.max(1),
            },
        )
        .await
        .map_err(|e| ApiError::from_err(&e))?;
    let chosen = types
        .profile_types
        .iter()
        .find(|p| {
            p.name == metric && p.sample_type == sample_type && p.sample_unit == "nanoseconds"
        })
        .or_else(|| {
            types
                .profile_types
                .iter()
                .find(|p| p.name == metric && p.sample_type == sample_type)
        })
        .map(|p| p.id.clone())
        .unwrap_or_else(|| fallback.to_owned());
    let pt = ProfileType::parse(&chosen).map_err(|e| ApiError::from_err(&e))?;
    Ok((pt, selector))
}

/// A Grafana-style "nice" step for `(until - from) / 1500`, at least 15 s.
fn point_interval_secs(from_ms: i64, until_ms: i64) -> i64 {
    const NICE: [i64; 19] = [
        15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
        604800, 2592000, 31536000,
    ];
    let raw = ((until_ms - from_ms) / 1500 / 1000).max(1);
    NICE.into_iter().find(|n| *n >= raw).unwrap_or(31_536_000)
}

fn units_of(pt: &ProfileType) -> &str {
    match pt.sample_type.as_str() {
        "inuse_objects" | "alloc_objects" | "goroutine" | "samples" => "objects",
        "cpu" => "samples",
        _ => pt.sample_unit.as_str(),
    }
}

fn flamebearer(fg: &FlameGraph) -> Value {
    json!({
        "names": fg.names,
        "levels": fg.levels,
        "numTicks": fg.total,
        "maxSelf": fg.max_self,
    })
}

fn timeline(series: Option<&t::Series>, from_ms: i64, until_ms: i64, step: i64) -> Value {
    let start = (from_ms / 1000).div_euclid(step) * step;
    let end = (until_ms / 1000).div_euclid(step) * step;
    let n = ((end - start) / step).max(0) as usize;
    let mut samples = vec![0i64; n];
    if let Some(s) = series {
        for p in &s.points {
            // A point at T covers (T - step, T].
            let bucket_start = p.timestamp / 1000 - step;
            let i = (bucket_start - start).div_euclid(step);
            if (0..n as i64).contains(&i) {
                samples[i as usize] += p.value as i64;
            }
        }
    }
    json!({ "startTime": start, "samples": samples, "durationDelta": step, "watermarks": Value::Null })
}

fn json_response(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// `GET /pyroscope/render`.
pub(super) async fn render(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let querier = querier(&state)?;
    let tenants = tenants_for_read(&headers, state.multitenancy)?;
    let now_ms = now_ns() / NS_PER_MS;
    let from = time_param(&params, "from", now_ms - 3_600_000)?;
    let until = time_param(&params, "until", now_ms)?;
    if from > until {
        return Err(ApiError::invalid(format!(
            "from ({from} ms) is after until ({until} ms)"
        )));
    }
    if let Some(f) = param(&params, "format").filter(|f| *f == "dot") {
        return Err(ApiError::invalid(format!(
            "format {f:?} is not supported; use json"
        )));
    }
    let query = param(&params, "query")
        .or_else(|| param(&params, "name"))
        .unwrap_or_default();
    if query.trim().is_empty() {
        return Err(ApiError::invalid("the query parameter is required"));
    }
    let (pt, selector) = parse_query(querier, &tenants, query, from, until).await?;
    let max_nodes = querier
        .max_nodes_for(&tenants, max_nodes_param(&params)?)
        .map_err(|e| ApiError::from_err(&e))?;
    let tq = TreeQuery {
        profile_type: pt.clone(),
        selector: selector.clone(),
        start_ms: from,
        end_ms: until,
        call_site: vec![],
        span_ids: None,
        profile_ids: None,
    };
    let tree = querier
        .merge_tree(&tenants, &tq)
        .await
        .map_err(|e| ApiError::from_err(&e))?;
    let fg = FlameGraph::from_tree(&tree, max_nodes);
    let step = point_interval_secs(from, until);
    let group_by: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "groupBy")
        .map(|(_, v)| v.clone())
        .collect();
    let aggregation = match param(&params, "aggregation") {
        Some("avg") | Some("average") => Some(t::TimeSeriesAggregationType::Average as i32),
        _ => None,
    };
    let series = querier
        .select_series(
            &tenants,
            q::SelectSeriesRequest {
                profile_type_id: pt.id(),
                label_selector: selector.to_string(),
                start: from,
                end: until,
                group_by: group_by.first().cloned().into_iter().collect(),
                step: step as f64,
                aggregation,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ApiError::from_err(&e))?;
    let (timeline_v, groups) = if let Some(g) = group_by.first() {
        // The overall timeline sums every group.
        let mut total = t::Series::default();
        let mut groups = BTreeMap::new();
        for s in &series.series {
            total.points.extend(s.points.iter().cloned());
            let key = s
                .labels
                .iter()
                .find(|l| &l.name == g)
                .map(|l| l.value.clone())
                .unwrap_or_else(|| "*".into());
            groups.insert(key, timeline(Some(s), from, until, step));
        }
        (timeline(Some(&total), from, until, step), json!(groups))
    } else {
        (
            timeline(series.series.first(), from, until, step),
            Value::Null,
        )
    };
    Ok(json_response(json!({
        "version": 1,
        "flamebearer": flamebearer(&fg),
        "metadata": {
            "format": "single",
            "spyName": "",
            "sampleRate": if pt.sample_type == "cpu" { 1_000_000_000 } else { 100 },
            "units": units_of(&pt),
            "name": pt.sample_type,
        },
        "timeline": timeline_v,
        "groups": groups,
        "heatmap": Value::Null,
    })))
}

/// `GET /pyroscope/render-diff`.
pub(super) async fn render_diff(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let querier = querier(&state)?;
    let tenants = tenants_for_read(&headers, state.multitenancy)?;
    let now_ms = now_ns() / NS_PER_MS;
    let max_nodes = querier
        .max_nodes_for(&tenants, max_nodes_param(&params)?)
        .map_err(|e| ApiError::from_err(&e))?;
    let mut sides = Vec::new();
    for side in ["left", "right"] {
        let from = time_param(&params, &format!("{side}From"), now_ms - 3_600_000)?;
        let until = time_param(&params, &format!("{side}Until"), now_ms)?;
        let query = param(&params, &format!("{side}Query")).unwrap_or_default();
        if query.trim().is_empty() {
            return Err(ApiError::invalid(format!(
                "the {side}Query parameter is required"
            )));
        }
        let (pt, selector) = parse_query(querier, &tenants, query, from, until).await?;
        sides.push(TreeQuery {
            profile_type: pt,
            selector,
            start_ms: from,
            end_ms: until,
            call_site: vec![],
            span_ids: None,
            profile_ids: None,
        });
    }
    if sides[0].profile_type != sides[1].profile_type {
        return Err(ApiError::invalid(
            "leftQuery and rightQuery must have the same profile type",
        ));
    }
    let (left, right) = futures::try_join!(
        querier.merge_tree(&tenants, &sides[0]),
        querier.merge_tree(&tenants, &sides[1])
    )
    .map_err(|e| ApiError::from_err(&e))?;
    let d = FlameGraphDiff::from_trees(&left, &right, max_nodes);
    let pt = &sides[0].profile_type;
    Ok(json_response(json!({
        "version": 1,
        "flamebearer": { "names": d.names, "levels": d.levels, "numTicks": d.total, "maxSelf": d.max_self },
        "metadata": {
            "format": "double",
            "spyName": "",
            "sampleRate": if pt.sample_type == "cpu" { 1_000_000_000 } else { 100 },
            "units": units_of(pt),
            "name": pt.sample_type,
        },
        "leftTicks": d.left_ticks,
        "rightTicks": d.right_ticks,
        "timeline": Value::Null,
        "groups": Value::Null,
        "heatmap": Value::Null,
    })))
}

/// `GET /pyroscope/label-values?label=...` — `__name__` lists profile type
/// IDs; any other label lists its values (filtered by `query` if given).
pub(super) async fn label_values(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let querier = querier(&state)?;
    let tenants = tenants_for_read(&headers, state.multitenancy)?;
    let label = param(&params, "label")
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ApiError::invalid("the label parameter is required"))?;
    let now_ms = now_ns() / NS_PER_MS;
    let from = time_param(&params, "from", now_ms - 3_600_000)?;
    let until = time_param(&params, "until", now_ms)?;
    let values: Vec<String> = if label == "__name__" {
        let types = querier
            .profile_types(
                &tenants,
                q::ProfileTypesRequest {
                    start: from,
                    end: until,
                },
            )
            .await
            .map_err(|e| ApiError::from_err(&e))?;
        types.profile_types.into_iter().map(|p| p.id).collect()
    } else {
        let matchers = param(&params, "query")
            .filter(|q| !q.is_empty())
            .map(|q| vec![q.to_owned()])
            .unwrap_or_default();
        querier
            .label_values(
                &tenants,
                t::LabelValuesRequest {
                    name: label.to_owned(),
                    matchers,
                    start: from,
                    end: until,
                },
            )
            .await
            .map_err(|e| ApiError::from_err(&e))?
            .names
    };
    Ok(json_response(json!(values)))
}

/// `GET /pyroscope/labels`: label names (filtered by `query` if given).
pub(super) async fn labels(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let querier = querier(&state)?;
    let tenants = tenants_for_read(&headers, state.multitenancy)?;
    let now_ms = now_ns() / NS_PER_MS;
    let from = time_param(&params, "from", now_ms - 3_600_000)?;
    let until = time_param(&params, "until", now_ms)?;
    let matchers = param(&params, "query")
        .filter(|q| !q.is_empty())
        .map(|q| vec![q.to_owned()])
        .unwrap_or_default();
    let names = querier
        .label_names(
            &tenants,
            t::LabelNamesRequest {
                matchers,
                start: from,
                end: until,
            },
            true,
        )
        .await
        .map_err(|e| ApiError::from_err(&e))?;
    Ok(json_response(json!(names.names)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_interval_is_nice_and_at_least_15s() {
        assert_eq!(point_interval_secs(0, 3_600_000), 15);
        assert_eq!(point_interval_secs(0, 86_400_000), 60);
        assert_eq!(point_interval_secs(0, 7 * 86_400_000), 600);
    }

    #[test]
    fn timeline_is_zero_filled_and_bucketed() {
        let s = t::Series {
            labels: vec![],
            points: vec![t::Point {
                value: 5.0,
                timestamp: 1_700_000_030_000,
                ..Default::default()
            }],
        };
        let v = timeline(Some(&s), 1_700_000_000_000, 1_700_000_060_000, 15);
        let start = v["startTime"].as_i64().unwrap();
        assert_eq!(start % 15, 0);
        let samples: Vec<i64> = v["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(samples.iter().sum::<i64>(), 5);
        assert_eq!(samples.len() as i64, (1_700_000_060 / 15 * 15 - start) / 15);
    }
}
