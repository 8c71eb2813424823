//! Which blocks and series a query reads.

use kiln_model::labels::{
    LABEL_PERIOD_TYPE, LABEL_PERIOD_UNIT, LABEL_PROFILE_TYPE, LABEL_TYPE, LABEL_UNIT,
};
use kiln_model::{Labels, Selector};
use kiln_storage::SeriesRow;

/// The value of label `name` of a series, including the labels derived
/// from its profile type (`__profile_type__`, `__type__`, `__unit__`,
/// `__period_type__`, `__period_unit__`).
pub(crate) fn series_label<'a>(row: &'a SeriesRow, name: &str) -> Option<&'a str> {
    let part = |i: usize| row.profile_type.split(':').nth(i);
    match name {
        LABEL_PROFILE_TYPE => Some(row.profile_type.as_str()),
        LABEL_TYPE => part(1),
        LABEL_UNIT => part(2),
        LABEL_PERIOD_TYPE => part(3),
        LABEL_PERIOD_UNIT => part(4),
        _ => row.labels.get(name),
    }
}

/// The labels of a series with the derived labels added.
pub(crate) fn full_labels(row: &SeriesRow) -> Labels {
    let mut l = row.labels.clone();
    for name in [
        LABEL_PROFILE_TYPE,
        LABEL_TYPE,
        LABEL_UNIT,
        LABEL_PERIOD_TYPE,
        LABEL_PERIOD_UNIT,
    ] {
        if let Some(v) = series_label(row, name) {
            l.set(name, v);
        }
    }
    l
}

/// Whether a series satisfies every selector.
pub(crate) fn matches_all(row: &SeriesRow, selectors: &[Selector]) -> bool {
    selectors
        .iter()
        .all(|s| s.matches_with(|n| series_label(row, n)))
}

/// The service names the selectors pin with `service_name="..."`: `None`
/// if none pins one, `Some(empty)` if the pins contradict each other.
pub(crate) fn pinned_services(selectors: &[Selector]) -> Option<Vec<String>> {
    let mut pinned: Option<Vec<String>> = None;
    for s in selectors {
        if let Some(v) = s.exact_values(kiln_model::labels::LABEL_SERVICE_NAME) {
            let v: Vec<String> = v.into_iter().map(str::to_owned).collect();
            pinned = Some(match pinned {
                None => v,
                Some(p) => p.into_iter().filter(|x| v.contains(x)).collect(),
            });
        }
    }
    pinned
}
