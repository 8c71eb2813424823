//! What truncation to a node budget hides: the facts a UI needs to explain
//! the `other` nodes of a flame graph.
//!
//! [`FlameGraph::from_tree`](crate::FlameGraph::from_tree) keeps a node when
//! its parent is kept and its total reaches the threshold of the budget;
//! the children of a kept node that miss it are folded into one `other`
//! child. [`TruncationSummary::of`] applies the same rule and counts.

use crate::tree::{OTHER, ROOT, StackTree};

/// How a tree fares under a node budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncationSummary {
    /// Nodes of the full tree with a non-zero total (the root excluded).
    pub nodes: usize,
    /// The budget applied (0 = none).
    pub max_nodes: usize,
    /// Smallest total a node needs to be kept (0 when nothing is cut).
    pub threshold: i64,
    /// Nodes kept as they are.
    pub kept: usize,
    /// Nodes folded away (each with all of its descendants).
    pub folded: usize,
    /// `other` nodes created (one per parent that lost children).
    pub other_nodes: usize,
    /// Sum of the values folded into `other` nodes.
    pub other_total: i64,
}

impl TruncationSummary {
    /// The summary of truncating `tree` to `max_nodes`.
    pub fn of(tree: &StackTree, max_nodes: usize) -> TruncationSummary {
        let totals = tree.totals();
        let threshold = StackTree::truncation_threshold(&totals, max_nodes);
        let n = tree.node_count() + 1;
        let mut kept = vec![false; n];
        kept[ROOT as usize] = true;
        let mut lost_children = vec![false; n];
        let mut s = TruncationSummary {
            max_nodes,
            threshold,
            ..Default::default()
        };
        // Parents come before children, so one forward pass suffices.
        for i in 1..n {
            if totals[i] == 0 {
                continue;
            }
            s.nodes += 1;
            let parent = tree.parent(i as u32) as usize;
            if !kept[parent] {
                s.folded += 1;
                continue;
            }
            let is_other = tree.name(tree.name_of(i as u32)) == OTHER;
            if totals[i] >= threshold || is_other {
                kept[i] = true;
                s.kept += 1;
            } else {
                s.folded += 1;
                s.other_total += totals[i];
                lost_children[parent] = true;
            }
        }
        s.other_nodes = lost_children.iter().filter(|l| **l).count();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlameGraph;

    fn tree(stacks: &[(&str, i64)]) -> StackTree {
        let mut t = StackTree::new();
        for (s, v) in stacks {
            let frames: Vec<&str> = s.split(';').collect();
            t.insert_stack(&frames, *v);
        }
        t
    }

    #[test]
    fn counts_what_the_flame_graph_folds() {
        // a(103) b(100) c(1) d(2) e(50) x(2, under d): budget 3 keeps a, b, e
        let t = tree(&[("a;b", 100), ("a;c", 1), ("a;d;x", 2), ("e", 50)]);
        let s = TruncationSummary::of(&t, 3);
        assert_eq!(s.nodes, 6);
        assert_eq!(s.threshold, 50);
        assert_eq!(s.kept, 3);
        assert_eq!(s.folded, 3, "c, d and x under d");
        assert_eq!(s.other_nodes, 1);
        assert_eq!(s.other_total, 3);
        // The flame graph agrees: 3 kept nodes plus one `other`.
        let fg = FlameGraph::from_tree(&t, 3);
        let bars: usize = fg.levels.iter().map(|l| l.len() / 4).sum::<usize>() - 1;
        assert_eq!(bars, s.kept + s.other_nodes);
    }

    #[test]
    fn no_budget_keeps_everything() {
        let t = tree(&[("a;b", 1), ("a;c", 1)]);
        let s = TruncationSummary::of(&t, 0);
        assert_eq!((s.nodes, s.kept, s.folded, s.other_nodes), (3, 3, 0, 0));
    }
}
