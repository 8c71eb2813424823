//! Per-function totals of a merged tree: the "top table" of a profile.
//!
//! The table is computed from the full merged [`StackTree`], before any
//! truncation to a node budget, so its numbers stay exact when the flame
//! graph shown next to it folds small nodes into `other`.
//!
//! * *self* of a function is the sum of the self values of every node with
//!   that name;
//! * *total* of a function is the value of every stack that passes through
//!   it, counted **once per stack**: a node whose name already appears among
//!   its ancestors (recursion, `a → b → a`) adds nothing to the total,
//!   because its value is already inside the outer occurrence's total.

use rustc_hash::FxHashMap;

use crate::tree::{NameId, NodeId, ROOT, StackTree};

/// One function of a [`FunctionTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRow {
    /// The frame (function) name.
    pub name: String,
    /// Value spent in the function itself.
    pub self_value: i64,
    /// Value of every stack through the function, each stack counted once.
    pub total: i64,
}

/// Self and total per function name, sorted by self value (descending),
/// then total (descending), then name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionTable {
    /// One row per distinct function name with a non-zero total.
    pub rows: Vec<FunctionRow>,
    /// The tree's total.
    pub total: i64,
}

/// One function of a [`DiffFunctionTable`]: both sides' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffFunctionRow {
    /// The frame (function) name.
    pub name: String,
    /// Self value in the baseline.
    pub left_self: i64,
    /// Total in the baseline.
    pub left_total: i64,
    /// Self value in the comparison.
    pub right_self: i64,
    /// Total in the comparison.
    pub right_total: i64,
}

/// The function tables of a baseline (left) and a comparison (right),
/// joined by name; sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffFunctionTable {
    /// One row per name present on either side.
    pub rows: Vec<DiffFunctionRow>,
    /// Total of the baseline tree.
    pub left_total: i64,
    /// Total of the comparison tree.
    pub right_total: i64,
}

/// Children of every node, unsorted (index order).
pub(crate) fn children_of(tree: &StackTree) -> Vec<Vec<NodeId>> {
    let mut children: Vec<Vec<NodeId>> = vec![Vec::new(); tree.node_count() + 1];
    for i in 1..=tree.node_count() as NodeId {
        children[tree.parent(i) as usize].push(i);
    }
    children
}

/// Calls `visit(node, first_of_name)` for every node in depth-first order,
/// where `first_of_name` is true when no ancestor of `node` has its name.
pub(crate) fn walk_outermost(
    tree: &StackTree,
    children: &[Vec<NodeId>],
    mut visit: impl FnMut(NodeId, bool),
) {
    // How many times each name occurs on the path from the root.
    let mut on_path: FxHashMap<NameId, u32> = FxHashMap::default();
    // (node, entering): a node is pushed again with `false` to pop its name.
    let mut stack: Vec<(NodeId, bool)> = children[ROOT as usize]
        .iter()
        .rev()
        .map(|&c| (c, true))
        .collect();
    while let Some((node, entering)) = stack.pop() {
        let name = tree.name_of(node);
        if !entering {
            if let Some(n) = on_path.get_mut(&name) {
                *n -= 1;
            }
            continue;
        }
        let count = on_path.entry(name).or_insert(0);
        visit(node, *count == 0);
        *count += 1;
        stack.push((node, false));
        stack.extend(children[node as usize].iter().rev().map(|&c| (c, true)));
    }
}

impl FunctionTable {
    /// The table of `tree`.
    pub fn from_tree(tree: &StackTree) -> FunctionTable {
        let totals = tree.totals();
        let children = children_of(tree);
        // name id -> (self, total)
        let mut sums: FxHashMap<NameId, (i64, i64)> = FxHashMap::default();
        walk_outermost(tree, &children, |node, outermost| {
            let e = sums.entry(tree.name_of(node)).or_insert((0, 0));
            e.0 += tree.self_value(node);
            if outermost {
                e.1 += totals[node as usize];
            }
        });
        let mut rows: Vec<FunctionRow> = sums
            .into_iter()
            .filter(|(_, (_, total))| *total != 0)
            .map(|(name, (self_value, total))| FunctionRow {
                name: tree.name(name).to_owned(),
                self_value,
                total,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.self_value
                .cmp(&a.self_value)
                .then(b.total.cmp(&a.total))
                .then_with(|| a.name.cmp(&b.name))
        });
        FunctionTable {
            rows,
            total: totals[ROOT as usize],
        }
    }
}

impl DiffFunctionTable {
    /// Joins the tables of `left` (baseline) and `right` (comparison).
    pub fn from_trees(left: &StackTree, right: &StackTree) -> DiffFunctionTable {
        let l = FunctionTable::from_tree(left);
        let r = FunctionTable::from_tree(right);
        let mut by_name: std::collections::BTreeMap<String, DiffFunctionRow> =
            std::collections::BTreeMap::new();
        for row in l.rows {
            by_name.insert(
                row.name.clone(),
                DiffFunctionRow {
                    name: row.name,
                    left_self: row.self_value,
                    left_total: row.total,
                    right_self: 0,
                    right_total: 0,
                },
            );
        }
        for row in r.rows {
            let e = by_name
                .entry(row.name.clone())
                .or_insert_with(|| DiffFunctionRow {
                    name: row.name.clone(),
                    left_self: 0,
                    left_total: 0,
                    right_self: 0,
                    right_total: 0,
                });
            e.right_self = row.self_value;
            e.right_total = row.total;
        }
        DiffFunctionTable {
            rows: by_name.into_values().collect(),
            left_total: l.total,
            right_total: r.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn tree(stacks: &[(&str, i64)]) -> StackTree {
        let mut t = StackTree::new();
        for (s, v) in stacks {
            let frames: Vec<&str> = s.split(';').collect();
            t.insert_stack(&frames, *v);
        }
        t
    }

    /// The table computed straight from the stacks, without the tree: self
    /// goes to the leaf frame, total to every distinct frame of the stack.
    fn brute_force(stacks: &[(String, i64)]) -> BTreeMap<String, (i64, i64)> {
        let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (stack, v) in stacks {
            let frames: Vec<&str> = stack.split(';').collect();
            let leaf = frames[frames.len() - 1];
            out.entry(leaf.to_owned()).or_default().0 += v;
            let distinct: BTreeSet<&str> = frames.iter().copied().collect();
            for f in distinct {
                out.entry(f.to_owned()).or_default().1 += v;
            }
        }
        out.retain(|_, (_, t)| *t != 0);
        out
    }

    fn as_map(t: &FunctionTable) -> BTreeMap<String, (i64, i64)> {
        t.rows
            .iter()
            .map(|r| (r.name.clone(), (r.self_value, r.total)))
            .collect()
    }

    #[test]
    fn worked_example_with_recursion() {
        // main 5 self; main;a;b 10; main;a;a;c 7 (a recursive); main;c 3
        let t = tree(&[
            ("main", 5),
            ("main;a;b", 10),
            ("main;a;a;c", 7),
            ("main;c", 3),
        ]);
        let table = FunctionTable::from_tree(&t);
        assert_eq!(table.total, 25);
        let m = as_map(&table);
        assert_eq!(m["main"], (5, 25));
        // a: 10 + 7, the inner a not counted again
        assert_eq!(m["a"], (0, 17));
        assert_eq!(m["b"], (10, 10));
        assert_eq!(m["c"], (10, 10));
        // sorted by self, then total, then name
        let names: Vec<&str> = table.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["b", "c", "main", "a"]);
    }

    #[test]
    fn diff_table_joins_by_name() {
        let l = tree(&[("main;foo", 30), ("main;bar", 10)]);
        let r = tree(&[("main;foo", 10), ("main;baz", 20)]);
        let d = DiffFunctionTable::from_trees(&l, &r);
        assert_eq!((d.left_total, d.right_total), (40, 30));
        let got: Vec<(&str, i64, i64, i64, i64)> = d
            .rows
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.left_self,
                    r.left_total,
                    r.right_self,
                    r.right_total,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("bar", 10, 10, 0, 0),
                ("baz", 0, 0, 20, 20),
                ("foo", 30, 30, 10, 10),
                ("main", 0, 40, 0, 30),
            ]
        );
    }

    #[test]
    fn table_of_a_truncated_tree_differs_but_ours_uses_the_full_one() {
        // The point of a server-side table: truncation folds `c` and `d`
        // into `other`, so a table built from the flame graph loses them.
        let t = tree(&[("a;b", 100), ("a;c", 1), ("a;d", 2), ("e", 50)]);
        let full = as_map(&FunctionTable::from_tree(&t));
        let cut = as_map(&FunctionTable::from_tree(&t.truncated(3)));
        assert_eq!(full["c"], (1, 1));
        assert_eq!(full["d"], (2, 2));
        assert!(!cut.contains_key("c"));
        assert_eq!(cut["other"], (3, 3));
    }

    fn stacks_strategy() -> impl Strategy<Value = Vec<(String, i64)>> {
        let frame = prop::sample::select(vec!["a", "b", "c", "d", "e"]);
        let stack = prop::collection::vec(frame, 1..7).prop_map(|f| f.join(";"));
        prop::collection::vec((stack, 1i64..1000), 0..40)
    }

    proptest! {
        #[test]
        fn equals_the_brute_force_table(stacks in stacks_strategy()) {
            let mut t = StackTree::new();
            for (s, v) in &stacks {
                let frames: Vec<&str> = s.split(';').collect();
                t.insert_stack(&frames, *v);
            }
            let table = FunctionTable::from_tree(&t);
            prop_assert_eq!(as_map(&table), brute_force(&stacks));
            prop_assert_eq!(table.total, stacks.iter().map(|s| s.1).sum::<i64>());
        }
    }
}
