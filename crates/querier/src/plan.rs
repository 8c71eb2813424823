//! Which blocks and series a query reads.

use kiln_model::labels::{
    LABEL_PERIOD_TYPE, LABEL_PERIOD_UNIT, LABEL_PROFILE_TYPE, LABEL_TYPE, LABEL_UNIT,
};
use kiln_model::tiers::{DAY, HOUR, MINUTE};
use kiln_model::{Labels, Selector};
use kiln_proto::kiln::metastore::v1::BlockMeta;
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

/// Tier resolutions, coarsest first (ns).
const TIERS: [i64; 3] = [DAY, HOUR, MINUTE];

/// A part of a query answered from one resolution: `[start, end)` in ns,
/// resolution 0 = raw profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub resolution: i64,
    pub start: i64,
    pub end: i64,
}

/// Whether the roll-ups of `resolution` hold day `day` completely: a tier
/// block covers the day, and every raw block still overlapping the day is
/// the one the roll-up was computed from (late data would show up as
/// another raw block, and then the day is answered from raw data).
fn tier_covers_day(blocks: &[BlockMeta], resolution: i64, day: i64) -> bool {
    let end = day + DAY;
    let Some(cov) = blocks
        .iter()
        .filter(|b| b.resolution == resolution)
        .flat_map(|b| b.coverage.iter())
        .find(|c| c.start <= day && end <= c.end)
    else {
        return false;
    };
    blocks
        .iter()
        .filter(|b| b.resolution == 0 && b.min_time < end && b.max_time >= day)
        .all(|b| b.id == cov.raw_block)
}

fn has_raw(blocks: &[BlockMeta], day: i64) -> bool {
    blocks
        .iter()
        .any(|b| b.resolution == 0 && b.min_time < day + DAY && b.max_time >= day)
}

/// Splits `[start, end)` into ranges answered from the coarsest tier that
/// holds them exactly (at most `max_resolution`), raw data only for what no
/// tier covers (the edges, recent data, and days with late data). Adjacent
/// ranges of the same resolution are merged.
pub(crate) fn plan_ranges(
    blocks: &[BlockMeta],
    start: i64,
    end: i64,
    max_resolution: i64,
) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    let mut push = |resolution: i64, s: i64, e: i64| {
        if s >= e {
            return;
        }
        if let Some(last) = out.last_mut()
            && last.resolution == resolution
            && last.end == s
        {
            last.end = e;
            return;
        }
        out.push(Range {
            resolution,
            start: s,
            end: e,
        });
    };
    let mut day = start.div_euclid(DAY) * DAY;
    while day < end {
        let (a, b) = (start.max(day), end.min(day + DAY));
        let mut usable: Vec<i64> = TIERS
            .iter()
            .copied()
            .filter(|r| *r <= max_resolution && tier_covers_day(blocks, *r, day))
            .collect();
        if usable.is_empty() && !has_raw(blocks, day) {
            // Raw data and the finer tiers are gone (retention): a coarser
            // tier is the only answer there is.
            if let Some(r) = TIERS
                .iter()
                .rev()
                .copied()
                .find(|r| tier_covers_day(blocks, *r, day))
            {
                usable.push(r);
            }
        }
        // Recursively carve [a, b) with the usable tiers, coarsest first.
        carve(&usable, a, b, &mut push);
        day += DAY;
    }
    out
}

fn carve(tiers: &[i64], a: i64, b: i64, push: &mut impl FnMut(i64, i64, i64)) {
    let Some((&r, finer)) = tiers.split_first() else {
        push(0, a, b);
        return;
    };
    let first = a.div_euclid(r) * r + if a.rem_euclid(r) == 0 { 0 } else { r };
    let last = b.div_euclid(r) * r;
    if first >= last {
        carve(finer, a, b, push);
        return;
    }
    carve(finer, a, first, push);
    push(r, first, last);
    carve(finer, last, b, push);
}

#[cfg(test)]
mod tests {
    use kiln_proto::kiln::metastore::v1::Coverage;

    use super::*;

    const H: i64 = 3_600_000_000_000;
    const M: i64 = 60_000_000_000;

    fn raw(id: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            min_time: min,
            max_time: max,
            ..Default::default()
        }
    }

    fn tier(id: &str, resolution: i64, days: &[(i64, &str)]) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            resolution,
            coverage: days
                .iter()
                .map(|(d, r)| Coverage {
                    start: *d,
                    end: d + DAY,
                    raw_block: (*r).into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn coarsest_tier_for_whole_days_raw_only_at_the_edges() {
        let d0 = 100 * DAY;
        let mut blocks = vec![
            raw("r0", d0, d0 + DAY - 1),
            raw("r1", d0 + DAY, d0 + 2 * DAY - 1),
        ];
        for r in TIERS {
            blocks.push(tier(&format!("t{r}"), r, &[(d0, "r0"), (d0 + DAY, "r1")]));
        }
        // Today: only segments.
        blocks.push(raw("seg", d0 + 2 * DAY + H, d0 + 2 * DAY + H + 1000));
        let start = d0 + 3 * H + 5 * M + 7; // mid-minute on day 0
        let end = d0 + 2 * DAY + 2 * H; // into day 2
        let ranges = plan_ranges(&blocks, start, end, i64::MAX);
        assert_eq!(
            ranges,
            vec![
                Range {
                    resolution: 0,
                    start,
                    end: d0 + 3 * H + 6 * M
                },
                Range {
                    resolution: M,
                    start: d0 + 3 * H + 6 * M,
                    end: d0 + 4 * H
                },
                Range {
                    resolution: H,
                    start: d0 + 4 * H,
                    end: d0 + DAY
                },
                Range {
                    resolution: DAY,
                    start: d0 + DAY,
                    end: d0 + 2 * DAY
                },
                Range {
                    resolution: 0,
                    start: d0 + 2 * DAY,
                    end
                },
            ]
        );
        // Series with a 1 h step never use the day tier.
        let ranges = plan_ranges(&blocks, d0, d0 + 2 * DAY, H);
        assert_eq!(
            ranges,
            vec![Range {
                resolution: H,
                start: d0,
                end: d0 + 2 * DAY
            }]
        );
    }

    #[test]
    fn late_raw_data_or_missing_roll_ups_fall_back_to_raw() {
        let d0 = 100 * DAY;
        let blocks = vec![
            raw("r0", d0, d0 + DAY - 1),
            raw("late", d0 + 5 * H, d0 + 5 * H + 10),
            tier("td", DAY, &[(d0, "r0")]),
        ];
        assert_eq!(
            plan_ranges(&blocks, d0, d0 + DAY, i64::MAX),
            vec![Range {
                resolution: 0,
                start: d0,
                end: d0 + DAY
            }]
        );
        // Raw deleted by retention: the roll-up alone answers.
        let blocks = vec![tier("td", DAY, &[(d0, "r0")])];
        assert_eq!(
            plan_ranges(&blocks, d0, d0 + DAY, i64::MAX),
            vec![Range {
                resolution: DAY,
                start: d0,
                end: d0 + DAY
            }]
        );
    }
}
