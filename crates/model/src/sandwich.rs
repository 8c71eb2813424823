//! The sandwich view of one function: who calls it and what it calls.
//!
//! Both halves are computed from the full merged [`StackTree`] (before
//! truncation), over every stack that passes through the function. In a
//! stack that contains the function more than once (recursion), the
//! *outermost* occurrence is the one that counts, so each stack adds its
//! value exactly once to each half and both halves total the function's
//! total in the [`FunctionTable`](crate::function_table::FunctionTable).
//!
//! * [`Sandwich::callers`] has the function as its only top-level frame;
//!   under it come its callers, nearest first, down to the stack roots
//!   (an inverted tree: read it bottom-up as a flame graph).
//! * [`Sandwich::callees`] has the function as its only top-level frame;
//!   under it, the merged subtrees of every outermost occurrence.

use crate::function_table::{children_of, walk_outermost};
use crate::tree::{NodeId, ROOT, StackTree};

/// Callers and callees of one function.
#[derive(Debug, Clone, Default)]
pub struct Sandwich {
    /// The function, then its callers towards the roots.
    pub callers: StackTree,
    /// The function, then what it calls.
    pub callees: StackTree,
    /// Self value of the function, summed over all its occurrences.
    pub self_value: i64,
    /// Total of the function, each stack counted once.
    pub total: i64,
}

impl Sandwich {
    /// The sandwich of `function` in `tree`; both trees are empty when the
    /// function does not occur.
    pub fn of(tree: &StackTree, function: &str) -> Sandwich {
        let mut out = Sandwich::default();
        let totals = tree.totals();
        let children = children_of(tree);
        let mut outermost: Vec<NodeId> = Vec::new();
        walk_outermost(tree, &children, |node, first| {
            if tree.name(tree.name_of(node)) == function {
                out.self_value += tree.self_value(node);
                if first {
                    outermost.push(node);
                }
            }
        });
        if outermost.is_empty() {
            return out;
        }
        let name = out.callers.intern(function);
        let callers_top = out.callers.child(ROOT, name);
        let name = out.callees.intern(function);
        let callees_top = out.callees.child(ROOT, name);
        for &occurrence in &outermost {
            let value = totals[occurrence as usize];
            out.total += value;

            // Callers: the ancestor chain, nearest caller first. The value
            // sits on the last frame (the stack root) so that every caller
            // on the chain gets the occurrence's value as its total.
            let mut at = callers_top;
            let mut up = tree.parent(occurrence);
            while up != ROOT {
                let n = out.callers.intern(tree.name(tree.name_of(up)));
                at = out.callers.child(at, n);
                up = tree.parent(up);
            }
            out.callers.add_self(at, value);

            // Callees: a copy of the occurrence's subtree.
            out.callees
                .add_self(callees_top, tree.self_value(occurrence));
            let mut stack: Vec<(NodeId, NodeId)> = children[occurrence as usize]
                .iter()
                .map(|&c| (c, callees_top))
                .collect();
            while let Some((node, parent)) = stack.pop() {
                let n = out.callees.intern(tree.name(tree.name_of(node)));
                let copy = out.callees.child(parent, n);
                out.callees.add_self(copy, tree.self_value(node));
                stack.extend(children[node as usize].iter().map(|&c| (c, copy)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn tree(stacks: &[(String, i64)]) -> StackTree {
        let mut t = StackTree::new();
        for (s, v) in stacks {
            let frames: Vec<&str> = s.split(';').collect();
            t.insert_stack(&frames, *v);
        }
        t
    }

    fn owned(stacks: &[(&str, i64)]) -> Vec<(String, i64)> {
        stacks.iter().map(|(s, v)| (s.to_string(), *v)).collect()
    }

    fn folded(t: &StackTree) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        t.for_each_stack(|s, v| *out.entry(s.join(";")).or_insert(0) += v);
        out
    }

    /// The sandwich computed straight from the stacks: split each stack at
    /// the first occurrence of the function.
    fn brute_force(
        stacks: &[(String, i64)],
        f: &str,
    ) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
        let (mut callers, mut callees) = (BTreeMap::new(), BTreeMap::new());
        for (s, v) in stacks {
            let frames: Vec<&str> = s.split(';').collect();
            let Some(i) = frames.iter().position(|x| *x == f) else {
                continue;
            };
            let mut up: Vec<&str> = frames[..=i].to_vec();
            up.reverse();
            *callers.entry(up.join(";")).or_insert(0) += v;
            *callees.entry(frames[i..].join(";")).or_insert(0) += v;
        }
        (callers, callees)
    }

    #[test]
    fn worked_example() {
        let stacks = owned(&[
            ("main;handler;parse;alloc", 4),
            ("main;handler;parse", 6),
            ("main;worker;parse;parse;scan", 5),
            ("main;idle", 9),
        ]);
        let s = Sandwich::of(&tree(&stacks), "parse");
        assert_eq!(s.total, 15);
        // 6 in handler;parse, plus 0 in the outer and 0 in the inner of the
        // recursive stack (its leaf is scan).
        assert_eq!(s.self_value, 6);
        assert_eq!(s.callers.total(), 15);
        assert_eq!(s.callees.total(), 15);
        assert_eq!(
            folded(&s.callers),
            BTreeMap::from([
                ("parse;handler;main".to_owned(), 10),
                ("parse;worker;main".to_owned(), 5),
            ])
        );
        assert_eq!(
            folded(&s.callees),
            BTreeMap::from([
                ("parse".to_owned(), 6),
                ("parse;alloc".to_owned(), 4),
                ("parse;parse;scan".to_owned(), 5),
            ])
        );
    }

    #[test]
    fn absent_function_gives_empty_halves() {
        let s = Sandwich::of(&tree(&owned(&[("a;b", 1)])), "zzz");
        assert!(s.callers.is_empty() && s.callees.is_empty());
        assert_eq!((s.total, s.self_value), (0, 0));
    }

    fn stacks_strategy() -> impl Strategy<Value = Vec<(String, i64)>> {
        let frame = prop::sample::select(vec!["a", "b", "c", "d"]);
        let stack = prop::collection::vec(frame, 1..7).prop_map(|f| f.join(";"));
        prop::collection::vec((stack, 1i64..1000), 0..30)
    }

    proptest! {
        #[test]
        fn equals_the_brute_force_split(stacks in stacks_strategy()) {
            let t = tree(&stacks);
            for f in ["a", "b", "c", "d"] {
                let s = Sandwich::of(&t, f);
                let (callers, callees) = brute_force(&stacks, f);
                prop_assert_eq!(folded(&s.callers), callers);
                prop_assert_eq!(folded(&s.callees), callees);
            }
        }
    }
}
