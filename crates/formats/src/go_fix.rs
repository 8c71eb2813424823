//! Repairs of known defects in profiles written by Go's `runtime/pprof`,
//! applied by [`normalize`](crate::normalize::normalize) to Go profiles
//! before anything else looks at their stacks.
//!
//! # Which profiles are Go profiles
//!
//! [`is_go_profile`] decides, in this order:
//! 1. series label `pyroscope_spy` (the `/ingest` `spyName`): `gospy` → Go,
//!    any other value except `unknown` → not Go;
//! 2. series label `process.runtime.name` (set by the Pyroscope SDKs): `go`
//!    → Go, any other value → not Go;
//! 3. otherwise the profile itself: it is Go if one of its functions is
//!    named `runtime.*` and lives in a `.go` file (every Go program has
//!    runtime frames such as `runtime.mcall` or `runtime.main`).
//!
//! # Type parameters ([`drop_go_type_parameters`])
//!
//! Since Go 1.21 function names carry the type arguments of generic
//! functions as `[go.shape.int,...]`, but which instance a frame names is
//! arbitrary (golang/go#64528). Every string of the string table is
//! rewritten so that the text from `[go.shape.` up to the last `]` on the
//! same line becomes `[...]`, as Pyroscope does, so that the instances
//! collapse into one function name.
//!
//! # Truncated stacks ([`repair_truncated_stacks`])
//!
//! The Go runtime records at most 64 frames per CPU sample (32 per heap
//! sample before Go 1.23) and drops the frames closest to the root beyond
//! that, so deep stacks lose their root: the flame graph shows them as
//! separate trees at the top level. The repair guesses the missing frames
//! from other samples: if the 16 root-most locations of a sample appear,
//! slightly further from the root, in the root part of other samples, the
//! sample was cut inside a stack those samples show more of, and the
//! locations they have beyond that run are appended to it. The result is
//! identical to Pyroscope's repair (the repaired test profile equals
//! Pyroscope's `.fixed` output); the exact rules are:
//!
//! - It runs only when stacks reach the runtime's limit: a CPU profile
//!   (sample type `cpu`) with a sample of at least 60 locations, or a heap
//!   profile (`alloc_*`/`inuse_*` sample types) with a sample of at least
//!   28 locations and none of 33 or more (Go 1.23+ heap profiles keep 128
//!   frames and are left alone).
//! - Only samples with at least 24 locations take part. Their *window* is
//!   their 24 root-most locations; samples with the same window form a
//!   *group*. Groups are ordered by their window compared as the
//!   little-endian bytes of the location ids (the order Pyroscope uses;
//!   ties in the next step depend on it).
//! - Every group with at least two samples is a *reference* for the eight
//!   runs of 16 locations of its window that end 1 to 8 locations before
//!   the root (the run ending `k` locations before the root has offset
//!   `k`). A run shared by several groups refers to the group where it has
//!   the largest offset, the earlier group on ties.
//! - A group whose 16 root-most locations are a run referring to another
//!   group links to that group with the run's offset: it lacks that many
//!   root-side locations. Links are followed transitively and the offsets
//!   summed, up to a chain of 56 links; a longer chain (recursion) stops the
//!   whole repair.
//! - The summed number of locations is taken from the root end of the
//!   first sample (in profile order) of the group at the end of the chain
//!   and appended to every sample of the linked group, unless that sample is
//!   not longer than the number of locations needed.
//! - Compatibility quirk kept on purpose: Pyroscope takes the extent of the
//!   last group (in the order above) to be the number of groups rather than
//!   the number of samples, so that group is usually neither a reference
//!   nor repaired. Doing otherwise changes repaired stacks.
//!
//! Repaired samples may end up with equal stacks; `normalize` merges them
//! afterwards. Totals never change.

use rustc_hash::FxHashMap;

use kiln_model::Labels;
use kiln_model::labels::LABEL_PYROSCOPE_SPY;
use kiln_proto::google::v1::Profile;

use crate::pprof;

/// The series label the Pyroscope SDKs use for the language runtime.
pub const LABEL_PROCESS_RUNTIME_NAME: &str = "process.runtime.name";

/// Locations per CPU sample kept by the Go runtime.
const CPU_DEPTH_LIMIT: usize = 64;
/// Locations per heap sample kept by the Go runtime before Go 1.23.
const HEAP_DEPTH_LIMIT: usize = 32;
/// Some truncated stacks are a few locations shorter than the limit.
const DEPTH_SLACK: usize = 4;
/// Heap profiles with a sample this deep come from Go 1.23+ (limit 128).
const HEAP_TOO_DEEP: usize = HEAP_DEPTH_LIMIT + 1;

/// Length of a run of locations matched between samples.
const RUN: usize = 16;
/// Number of runs per window (offsets 1..=RUNS).
const RUNS: usize = 8;
/// Root-side locations that define a sample's group.
const WINDOW: usize = RUN + RUNS;
/// Fewest samples a group needs to serve as a reference.
const MIN_REFERENCE_GROUP: usize = 2;
/// Longest chain of links followed before giving up on the profile.
const MAX_CHAIN: usize = 56;

const GO_SHAPE: &str = "[go.shape.";
const ELIDED_TYPE_PARAMETERS: &str = "[...]";

/// Whether `profile`, pushed with `labels`, comes from a Go program; see
/// the module docs. Expects a validated profile.
pub fn is_go_profile(labels: &Labels, profile: &Profile) -> bool {
    match labels.get(LABEL_PYROSCOPE_SPY) {
        Some("gospy") => return true,
        Some(spy) if !spy.is_empty() && spy != "unknown" => return false,
        _ => {}
    }
    match labels.get(LABEL_PROCESS_RUNTIME_NAME) {
        Some("go") => return true,
        Some(runtime) if !runtime.is_empty() => return false,
        _ => {}
    }
    profile.function.iter().any(|f| {
        pprof::string_or_empty(profile, f.name).starts_with("runtime.")
            && pprof::string_or_empty(profile, f.filename).ends_with(".go")
    })
}

/// What [`fix_go_profile`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GoFixOutcome {
    /// Strings whose type parameters were elided.
    pub renamed_strings: usize,
    /// Samples whose stacks got root-side locations appended.
    pub repaired_samples: usize,
}

/// Applies both repairs of the module docs to a validated Go profile.
pub fn fix_go_profile(profile: &mut Profile) -> GoFixOutcome {
    let renamed_strings = drop_go_type_parameters(profile);
    let repaired_samples = if may_have_truncated_stacks(profile) {
        repair_truncated_stacks(profile)
    } else {
        0
    };
    GoFixOutcome {
        renamed_strings,
        repaired_samples,
    }
}

/// Replaces `[go.shape.…]` type parameters by `[...]` in every string of
/// the string table; returns how many strings changed.
pub fn drop_go_type_parameters(profile: &mut Profile) -> usize {
    let mut changed = 0;
    for s in &mut profile.string_table {
        if let Some(elided) = elide_type_parameters(s) {
            *s = elided;
            changed += 1;
        }
    }
    changed
}

/// `s` with each `[go.shape.` … last `]` of its line replaced by `[...]`,
/// or `None` if there is nothing to replace.
fn elide_type_parameters(s: &str) -> Option<String> {
    if !s.contains(GO_SHAPE) {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = s[search..].find(GO_SHAPE) {
        let start = search + found;
        let after_prefix = start + GO_SHAPE.len();
        let line_end = s[after_prefix..]
            .find('\n')
            .map_or(s.len(), |i| after_prefix + i);
        match s[after_prefix..line_end].rfind(']') {
            Some(close) => {
                let end = after_prefix + close + 1;
                out.push_str(&s[copied..start]);
                out.push_str(ELIDED_TYPE_PARAMETERS);
                copied = end;
                search = end;
            }
            None => search = start + 1,
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&s[copied..]);
    Some(out)
}

/// Whether the stacks of `profile` reach the Go runtime's depth limit, so
/// that some of them may be truncated (see the module docs).
pub fn may_have_truncated_stacks(profile: &Profile) -> bool {
    let types = pprof::sample_type_names(profile);
    let is_heap = types.iter().any(|(t, _)| {
        matches!(
            *t,
            "alloc_objects" | "alloc_space" | "inuse_objects" | "inuse_space"
        )
    });
    let (min_depth, too_deep) = if is_heap {
        (HEAP_DEPTH_LIMIT - DEPTH_SLACK, Some(HEAP_TOO_DEEP))
    } else if types.iter().any(|(t, _)| *t == "cpu") {
        (CPU_DEPTH_LIMIT - DEPTH_SLACK, None)
    } else {
        return false;
    };
    let mut deep_enough = false;
    for sample in &profile.sample {
        let depth = sample.location_id.len();
        if too_deep.is_some_and(|limit| depth >= limit) {
            return false;
        }
        deep_enough |= depth >= min_depth;
    }
    deep_enough
}

/// A link from a group to the group that shows more of its stack.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// Index of the referenced group.
    group: usize,
    /// Root-side locations the linking group lacks.
    missing: usize,
}

/// The `WINDOW` root-most locations of a stack of at least that length.
fn window(stack: &[u64]) -> &[u64] {
    &stack[stack.len() - WINDOW..]
}

/// Repairs truncated stacks as described in the module docs; returns the
/// number of samples that got locations appended.
pub fn repair_truncated_stacks(profile: &mut Profile) -> usize {
    // Candidate samples in group order (stable: profile order within a group).
    let mut order: Vec<usize> = (0..profile.sample.len())
        .filter(|&i| profile.sample[i].location_id.len() >= WINDOW)
        .collect();
    if order.is_empty() {
        return 0;
    }
    let samples = &profile.sample;
    order.sort_by(|&a, &b| {
        let (a, b) = (
            window(&samples[a].location_id),
            window(&samples[b].location_id),
        );
        a.iter()
            .map(|id| id.swap_bytes())
            .cmp(b.iter().map(|id| id.swap_bytes()))
    });
    // Start (in `order`) of every group.
    let mut starts: Vec<usize> = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        let is_new = match pos.checked_sub(1) {
            None => true,
            Some(prev) => {
                window(&samples[order[prev]].location_id) != window(&samples[i].location_id)
            }
        };
        if is_new {
            starts.push(pos);
        }
    }
    let groups = starts.len();
    // The quirk of the module docs: the last group "ends" at `groups`.
    let group_end = |g: usize| -> usize {
        starts
            .get(g + 1)
            .copied()
            .unwrap_or_else(|| groups.max(starts[g]))
    };
    let first_stack = |g: usize| -> &[u64] { &samples[order[starts[g]]].location_id };

    // Run → the group showing the most locations beyond it.
    let mut references: FxHashMap<&[u64], Link> = FxHashMap::default();
    for (g, &start) in starts.iter().enumerate() {
        if group_end(g) - start < MIN_REFERENCE_GROUP {
            continue;
        }
        let w = window(first_stack(g));
        for missing in 1..=RUNS {
            let run = &w[WINDOW - missing - RUN..WINDOW - missing];
            let better = references
                .get(run)
                .is_none_or(|current| missing > current.missing);
            if better {
                references.insert(run, Link { group: g, missing });
            }
        }
    }

    let links: Vec<Option<Link>> = (0..groups)
        .map(|g| {
            let stack = first_stack(g);
            let top = &stack[stack.len() - RUN..];
            references.get(top).copied().filter(|link| link.group != g)
        })
        .collect();

    // What to append to each group, computed before any stack changes.
    let mut appendices: Vec<(usize, Vec<u64>)> = Vec::new();
    'groups: for (g, link) in links.iter().enumerate() {
        let Some(mut link) = *link else { continue };
        let mut missing = 0usize;
        let mut steps = 0usize;
        loop {
            missing += link.missing;
            let Some(next) = links[link.group] else { break };
            link = next;
            steps += 1;
            if steps == MAX_CHAIN {
                break 'groups;
            }
        }
        let reference = first_stack(link.group);
        if missing >= reference.len() {
            continue;
        }
        appendices.push((g, reference[reference.len() - missing..].to_vec()));
    }

    let mut repaired = 0;
    for (g, appendix) in appendices {
        for &i in &order[starts[g]..group_end(g).min(order.len())] {
            profile.sample[i].location_id.extend_from_slice(&appendix);
            repaired += 1;
        }
    }
    repaired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof::ProfileBuilder;

    #[test]
    fn elides_type_parameters_like_pyroscope() {
        let cases = [
            ("main.f[go.shape.int]", Some("main.f[...]")),
            (
                "pkg.(*T[go.shape.string,go.shape.int]).M",
                Some("pkg.(*T[...]).M"),
            ),
            // greedy: up to the last ']' of the line
            ("a[go.shape.x].b[c]", Some("a[...]")),
            ("a[go.shape.x\n]b", None),
            (
                "a[go.shape.x\nb[go.shape.y]z",
                Some("a[go.shape.x\nb[...]z"),
            ),
            ("main.f[int]", None),
            ("[go.shape.]", Some("[...]")),
        ];
        for (input, expected) in cases {
            assert_eq!(
                elide_type_parameters(input).as_deref(),
                expected,
                "{input:?}"
            );
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn detects_go_by_labels_then_by_runtime_frames() {
        let mut b = ProfileBuilder::new();
        b.add_sample_type("cpu", "nanoseconds")
            .add_sample(&["runtime.main", "main.work"], vec![1]);
        let mut go = b.finish();
        let file = go.string_table.len() as i64;
        go.string_table.push("/go/src/runtime/proc.go".to_owned());
        go.function[0].filename = file;
        let mut b = ProfileBuilder::new();
        b.add_sample_type("cpu", "nanoseconds")
            .add_sample(&["java/lang/Thread.run"], vec![1]);
        let java = b.finish();

        assert!(is_go_profile(&labels(&[]), &go));
        assert!(!is_go_profile(&labels(&[]), &java));
        assert!(is_go_profile(&labels(&[("pyroscope_spy", "gospy")]), &java));
        assert!(!is_go_profile(
            &labels(&[("pyroscope_spy", "javaspy")]),
            &go
        ));
        assert!(is_go_profile(&labels(&[("pyroscope_spy", "unknown")]), &go));
        assert!(is_go_profile(
            &labels(&[("process.runtime.name", "go")]),
            &java
        ));
        assert!(!is_go_profile(
            &labels(&[("process.runtime.name", "java")]),
            &go
        ));
    }

    /// A CPU profile from stacks given root first as frame names.
    fn cpu_profile(stacks: &[(Vec<String>, i64)]) -> Profile {
        let mut b = ProfileBuilder::new();
        b.add_sample_type("cpu", "nanoseconds");
        for (stack, value) in stacks {
            b.add_sample(stack, vec![*value]);
        }
        b.finish()
    }

    fn frames(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("f{i}")).collect()
    }

    fn root_first_names(p: &Profile) -> Vec<Vec<String>> {
        p.sample
            .iter()
            .map(|s| {
                s.location_id
                    .iter()
                    .rev()
                    .map(|id| {
                        let f = &p.function[(*id - 1) as usize];
                        p.string_table[f.name as usize].clone()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn appends_the_missing_root_frames_of_truncated_stacks() {
        // The full stack is f0 (root) .. f99; the runtime keeps 64 frames.
        // Two complete samples (a reference group needs two) show f0..f63;
        // truncated ones lost their root and start deeper.
        let full = frames(0..64);
        let cut_2 = frames(2..66); // lacks f0, f1
        let cut_5 = frames(5..69); // lacks f0..f4
        let filler = frames(200..230); // unrelated, 30 frames
        let p_stacks = vec![
            (full.clone(), 1),
            (full.clone(), 2),
            (cut_2.clone(), 4),
            (cut_5.clone(), 8),
            (filler.clone(), 16),
            (filler.clone(), 32),
        ];
        let mut p = cpu_profile(&p_stacks);
        assert!(may_have_truncated_stacks(&p));
        let outcome = fix_go_profile(&mut p);
        let names = root_first_names(&p);
        // the last group (in window order) is not repaired (quirk), so check
        // which of the two truncated samples was repaired and that it got
        // exactly the frames it lacked.
        let mut repaired = 0;
        for (i, (original, _)) in p_stacks.iter().enumerate() {
            let now = &names[i];
            if now.len() > original.len() {
                repaired += 1;
                let lacked = now.len() - original.len();
                assert_eq!(&now[lacked..], &original[..]);
                assert_eq!(&now[..lacked], &full[..lacked]);
            } else {
                assert_eq!(now, original);
            }
        }
        assert_eq!(repaired, outcome.repaired_samples);
        // f0..f63 get ids 1..64, so the complete group sorts first and the
        // unrelated one (ids 69..) last: both truncated samples are repaired.
        assert_eq!(repaired, 2, "{names:?}");
    }

    #[test]
    fn leaves_shallow_and_non_go_types_alone() {
        let mut p = cpu_profile(&[(frames(0..30), 1), (frames(0..30), 1)]);
        assert!(!may_have_truncated_stacks(&p));
        let before = p.clone();
        assert_eq!(fix_go_profile(&mut p), GoFixOutcome::default());
        assert_eq!(p, before);

        let mut b = ProfileBuilder::new();
        b.add_sample_type("inuse_space", "bytes");
        b.add_sample(&frames(0..30), vec![1]);
        let heap = b.finish();
        assert!(may_have_truncated_stacks(&heap));
        let mut b = ProfileBuilder::new();
        b.add_sample_type("inuse_space", "bytes");
        b.add_sample(&frames(0..30), vec![1]);
        b.add_sample(&frames(0..40), vec![1]);
        assert!(!may_have_truncated_stacks(&b.finish()), "Go 1.23+ heap");
        let mut b = ProfileBuilder::new();
        b.add_sample_type("samples", "count");
        b.add_sample(&frames(0..64), vec![1]);
        assert!(!may_have_truncated_stacks(&b.finish()));
    }

    #[test]
    fn recursive_stacks_do_not_loop() {
        // Every window is made of the same few frames: runs refer to each
        // other in cycles.
        let rec = |n: usize, start: usize| -> Vec<String> {
            (0..n).map(|i| format!("r{}", (i + start) % 3)).collect()
        };
        let mut stacks = Vec::new();
        for start in 0..3 {
            for n in [64, 63, 62] {
                stacks.push((rec(n, start), 1));
                stacks.push((rec(n, start), 1));
            }
        }
        let mut p = cpu_profile(&stacks);
        let total_before: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        fix_go_profile(&mut p);
        let total_after: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(total_before, total_after);
        assert!(p.sample.iter().all(|s| s.location_id.len() < 128));
    }
}
