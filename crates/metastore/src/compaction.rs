//! The compaction planner: which blocks to merge next. A pure function of
//! the block index, the jobs already planned, the time of the command and
//! the policy sent with it — so every replica plans the same jobs.
//!
//! Per tenant and shard, in this order (a block is in at most one job):
//! 1. **day**: a UTC day that ended `day_grace` ago and still has raw blocks
//!    below level 3 → merge all its raw blocks into one level-3 block and
//!    write its roll-up tiers (1 min, 1 h, 1 day);
//! 2. **hour**: an hour that ended `hour_grace` ago with blocks below
//!    level 2 → merge its raw blocks into one level-2 block;
//! 3. **segments**: an hour with at least `l0_min_blocks` segments, or whose
//!    oldest segment is `l0_max_age` old → merge them into a level-1 block;
//! 4. **tiers**: day-level roll-up blocks of the 1 h and 1 d tiers are merged
//!    into 16-day blocks (level 4), and 1 d tier level-4 blocks into 256-day
//!    blocks (level 5), once `tier_merge_min_blocks` exist or the window is
//!    over; the window's existing merged block joins the merge.

use std::collections::{BTreeMap, HashSet};

use kiln_proto::kiln::metastore::v1::{BlockMeta, CompactionPolicy, Job, JobKind};

use crate::index::BlockIndex;

pub use kiln_model::tiers::{
    DAY, DAY_LEVEL, HOUR, HOUR_LEVEL, MINUTE, SEGMENT_LEVEL, SEGMENT_MERGE_LEVEL, TIER_RESOLUTIONS,
};

fn window(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

/// Default thresholds.
pub fn default_policy() -> CompactionPolicy {
    CompactionPolicy {
        l0_min_blocks: 20,
        l0_max_age_ms: 30_000,
        hour_grace_ms: 5 * 60_000,
        day_grace_ms: 2 * 3_600_000,
        max_sources: 1000,
        tier_merge_min_blocks: 4,
        lease_ms: 60_000,
        max_failures: 5,
    }
}

/// A job to create (without id, owner and token yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Tenant.
    pub tenant: String,
    /// Shard.
    pub shard: u32,
    /// Kind.
    pub kind: JobKind,
    /// Window start (ns).
    pub window_start: i64,
    /// Window end (ns).
    pub window_end: i64,
    /// Source block ids.
    pub sources: Vec<String>,
    /// Level of the output.
    pub target_level: u32,
    /// Resolution of tier merges.
    pub resolution: i64,
}

/// Plans new jobs. `now_ms` is the command's timestamp.
pub fn plan(
    index: &BlockIndex,
    jobs: &BTreeMap<String, Job>,
    now_ms: i64,
    policy: &CompactionPolicy,
) -> Vec<Planned> {
    let now = now_ms.saturating_mul(1_000_000);
    let busy: HashSet<&str> = jobs
        .values()
        .flat_map(|j| j.sources.iter().map(String::as_str))
        .collect();
    let max_sources = policy.max_sources.max(2) as usize;
    let mut out = Vec::new();
    let tenants: Vec<String> = index.tenants().map(str::to_owned).collect();
    for tenant in tenants {
        // Group the free blocks by shard.
        let mut by_shard: BTreeMap<u32, Vec<&BlockMeta>> = BTreeMap::new();
        for b in index
            .tenant_blocks(&tenant)
            .filter(|b| !busy.contains(b.id.as_str()))
        {
            by_shard.entry(b.shard).or_default().push(b);
        }
        for (shard, blocks) in by_shard {
            let mut taken: HashSet<String> = HashSet::new();
            let raw: Vec<&BlockMeta> = blocks
                .iter()
                .copied()
                .filter(|b| b.resolution == 0)
                .collect();

            // 1. Days.
            let mut days: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
            for b in &raw {
                days.entry(window(b.min_time, DAY)).or_default().push(b);
            }
            for (day, members) in &days {
                let ended = day + DAY + policy.day_grace_ms.saturating_mul(1_000_000) <= now;
                let unfinished = members.iter().any(|b| b.level < DAY_LEVEL);
                // A raw job still running inside the day must finish first.
                if !ended
                    || !unfinished
                    || job_touches_window(jobs, &tenant, shard, *day, day + DAY)
                {
                    continue;
                }
                if members.len() > max_sources {
                    // Too many pieces: let the hour merges shrink the day first.
                    continue;
                }
                // The day's previous roll-ups (late data) are replaced too.
                let old_tiers = blocks.iter().filter(|b| {
                    b.resolution > 0
                        && b.level == DAY_LEVEL
                        && b.coverage
                            .iter()
                            .any(|c| c.start == *day && c.end == day + DAY)
                });
                let mut sources: Vec<String> = members.iter().map(|b| b.id.clone()).collect();
                sources.extend(old_tiers.map(|b| b.id.clone()));
                for id in &sources {
                    taken.insert(id.clone());
                }
                out.push(Planned {
                    tenant: tenant.clone(),
                    shard,
                    kind: JobKind::Day,
                    window_start: *day,
                    window_end: day + DAY,
                    sources,
                    target_level: DAY_LEVEL,
                    resolution: 0,
                });
            }

            // 2. Hours. 3. Segments.
            let mut hours: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
            for b in raw
                .iter()
                .filter(|b| b.level < DAY_LEVEL && !taken.contains(b.id.as_str()))
            {
                hours.entry(window(b.min_time, HOUR)).or_default().push(b);
            }
            for (hour, members) in &hours {
                let ended = hour + HOUR + policy.hour_grace_ms.saturating_mul(1_000_000) <= now;
                if ended && members.iter().any(|b| b.level < HOUR_LEVEL) {
                    let mut sorted = members.clone();
                    sorted.sort_by_key(|b| (b.min_time, b.id.clone()));
                    sorted.truncate(max_sources);
                    out.push(Planned {
                        tenant: tenant.clone(),
                        shard,
                        kind: JobKind::Merge,
                        window_start: *hour,
                        window_end: hour + HOUR,
                        sources: sorted.iter().map(|b| b.id.clone()).collect(),
                        target_level: HOUR_LEVEL,
                        resolution: 0,
                    });
                    continue;
                }
                let mut segments: Vec<&BlockMeta> = members
                    .iter()
                    .copied()
                    .filter(|b| b.level == SEGMENT_LEVEL)
                    .collect();
                let oldest = segments
                    .iter()
                    .map(|b| b.created_at)
                    .min()
                    .unwrap_or(i64::MAX);
                let due = segments.len() >= policy.l0_min_blocks.max(2) as usize
                    || (segments.len() >= 2 && oldest <= now_ms - policy.l0_max_age_ms);
                if due {
                    segments.sort_by_key(|b| (b.min_time, b.id.clone()));
                    segments.truncate(max_sources);
                    out.push(Planned {
                        tenant: tenant.clone(),
                        shard,
                        kind: JobKind::Merge,
                        window_start: *hour,
                        window_end: hour + HOUR,
                        sources: segments.iter().map(|b| b.id.clone()).collect(),
                        target_level: SEGMENT_MERGE_LEVEL,
                        resolution: 0,
                    });
                }
            }

            // 4. Tiers.
            for (resolution, from_level, width) in [
                (HOUR, 3u32, 16 * DAY),
                (DAY, 3, 16 * DAY),
                (DAY, 4, 256 * DAY),
            ] {
                let mut windows: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
                for b in blocks.iter().filter(|b| {
                    b.resolution == resolution
                        && (b.level == from_level || b.level == from_level + 1)
                        && !taken.contains(&b.id)
                }) {
                    windows
                        .entry(window(b.min_time, width))
                        .or_default()
                        .push(b);
                }
                for (w, members) in windows {
                    let fresh: Vec<&&BlockMeta> =
                        members.iter().filter(|b| b.level == from_level).collect();
                    if fresh.is_empty() {
                        continue;
                    }
                    let ended = w + width + policy.day_grace_ms.saturating_mul(1_000_000) <= now;
                    if fresh.len() < policy.tier_merge_min_blocks.max(1) as usize && !ended {
                        continue;
                    }
                    if members.len() < 2 && members[0].level == from_level + 1 {
                        continue;
                    }
                    let mut sorted = members.clone();
                    sorted.sort_by_key(|b| (b.min_time, b.id.clone()));
                    sorted.truncate(max_sources);
                    if sorted.len() < 2 && !ended {
                        continue;
                    }
                    for b in &sorted {
                        taken.insert(b.id.clone());
                    }
                    out.push(Planned {
                        tenant: tenant.clone(),
                        shard,
                        kind: JobKind::TierMerge,
                        window_start: w,
                        window_end: w + width,
                        sources: sorted.iter().map(|b| b.id.clone()).collect(),
                        target_level: from_level + 1,
                        resolution,
                    });
                }
            }
        }
    }
    out
}

/// Whether a raw job of the same tenant and shard overlaps the window.
fn job_touches_window(
    jobs: &BTreeMap<String, Job>,
    tenant: &str,
    shard: u32,
    start: i64,
    end: i64,
) -> bool {
    jobs.values().any(|j| {
        j.tenant == tenant
            && j.shard == shard
            && j.resolution == 0
            && j.window_start < end
            && start < j.window_end
    })
}
