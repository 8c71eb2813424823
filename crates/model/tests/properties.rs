//! Property tests of the stack-tree algebra and the flame-graph encoding.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::BTreeMap;

use kiln_model::{FlameGraph, FlameGraphDiff, StackTree};
use proptest::prelude::*;

/// Stacks over a small alphabet so that paths share prefixes often.
fn stacks() -> impl Strategy<Value = Vec<(Vec<String>, i64)>> {
    let frame =
        prop::sample::select(vec!["a", "b", "c", "d", "other", "main"]).prop_map(str::to_owned);
    prop::collection::vec((prop::collection::vec(frame, 1..6), 1i64..1000), 0..40)
}

fn tree(stacks: &[(Vec<String>, i64)]) -> StackTree {
    let mut t = StackTree::new();
    for (s, v) in stacks {
        t.insert_stack(s, *v);
    }
    t
}

/// The tree as a map from stack to self value (the model of a tree).
fn folded(t: &StackTree) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    t.for_each_stack(|s, v| {
        *out.entry(s.join(";")).or_insert(0) += v;
    });
    out
}

fn expected(stacks: &[(Vec<String>, i64)]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (s, v) in stacks {
        *out.entry(s.join(";")).or_insert(0) += v;
    }
    out
}

proptest! {
    #[test]
    fn inserting_sums_per_stack(s in stacks()) {
        prop_assert_eq!(folded(&tree(&s)), expected(&s));
    }

    #[test]
    fn merge_is_commutative(a in stacks(), b in stacks()) {
        let mut ab = tree(&a);
        ab.merge(&tree(&b));
        let mut ba = tree(&b);
        ba.merge(&tree(&a));
        prop_assert_eq!(folded(&ab), folded(&ba));
    }

    #[test]
    fn merge_is_associative(a in stacks(), b in stacks(), c in stacks()) {
        let mut left = tree(&a);
        left.merge(&tree(&b));
        left.merge(&tree(&c));
        let mut bc = tree(&b);
        bc.merge(&tree(&c));
        let mut right = tree(&a);
        right.merge(&bc);
        prop_assert_eq!(folded(&left), folded(&right));
        let all: Vec<_> = a.iter().chain(&b).chain(&c).cloned().collect();
        prop_assert_eq!(folded(&left), expected(&all));
    }

    #[test]
    fn flame_graph_levels_round_trip(s in stacks()) {
        let t = tree(&s);
        let fg = FlameGraph::from_tree(&t, 0);
        prop_assert_eq!(fg.total, t.total());
        prop_assert_eq!(folded(&fg.to_tree()), folded(&t));
    }

    #[test]
    fn truncation_keeps_the_total(s in stacks(), max in 1usize..20) {
        let t = tree(&s);
        let fg = FlameGraph::from_tree(&t, max);
        prop_assert_eq!(fg.total, t.total());
        let back = fg.to_tree();
        prop_assert_eq!(back.total(), t.total());
        let cut = t.truncated(max);
        prop_assert_eq!(cut.total(), t.total());
        // Every stack of the truncated tree is a real stack or ends in "other".
        let real = folded(&t);
        for (stack, v) in folded(&cut) {
            if !stack.ends_with("other") {
                prop_assert!(real.contains_key(&stack), "{} not in the input", stack);
                prop_assert_eq!(real[&stack], v);
            }
        }
    }

    #[test]
    fn tree_bytes_round_trip(s in stacks()) {
        let t = tree(&s);
        let back = StackTree::decode_tree_bytes(&t.encode_tree_bytes(0), 1_000_000).unwrap();
        prop_assert_eq!(folded(&back), folded(&t));
    }

    #[test]
    fn diff_totals_are_both_sides(a in stacks(), b in stacks(), max in 0usize..20) {
        let (l, r) = (tree(&a), tree(&b));
        let d = FlameGraphDiff::from_trees(&l, &r, max);
        prop_assert_eq!(d.left_ticks, l.total());
        prop_assert_eq!(d.right_ticks, r.total());
        prop_assert_eq!(d.total, l.total() + r.total());
        // Level 1's totals on each side add up to the side's total.
        if let Some(level) = d.levels.get(1) {
            let lsum: i64 = level.chunks(7).map(|t| t[1]).sum();
            let rsum: i64 = level.chunks(7).map(|t| t[4]).sum();
            prop_assert_eq!(lsum, l.total());
            prop_assert_eq!(rsum, r.total());
        }
    }
}
