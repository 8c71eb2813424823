//! Flame graphs in Pyroscope's "levels" encoding, single and diff.
//!
//! A level is a flat list of 4-tuples `[x_offset, total, self, name_index]`
//! (7-tuples `[l_offset, l_total, l_self, r_offset, r_total, r_self, name]`
//! for diffs). Level 0 is the root, named `total`. Inside a parent the
//! parent's self value comes first, then its children in byte order of name.
//! Offsets are delta-encoded per level: the stored offset is the gap since
//! the end of the previous node of that level. Names are numbered in the
//! order nodes are visited by a depth-first walk that visits children
//! last-to-first. Nodes below the `max_nodes`-th largest total are folded
//! into one `other` node per parent, so the total never changes.

use rustc_hash::FxHashMap;

use crate::tree::{NodeId, OTHER, ROOT, StackTree};

/// A flame graph ready for the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlameGraph {
    /// Frame names; `names[0]` is `total`.
    pub names: Vec<String>,
    /// One entry per depth, 4 numbers per node.
    pub levels: Vec<Vec<i64>>,
    /// Sum of all values.
    pub total: i64,
    /// Largest self value of any emitted node.
    pub max_self: i64,
}

/// A diff flame graph ready for the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlameGraphDiff {
    /// Frame names; `names[0]` is `total`.
    pub names: Vec<String>,
    /// One entry per depth, 7 numbers per node.
    pub levels: Vec<Vec<i64>>,
    /// `left_ticks + right_ticks`.
    pub total: i64,
    /// Largest self value of either side.
    pub max_self: i64,
    /// Total of the left (baseline) tree.
    pub left_ticks: i64,
    /// Total of the right (comparison) tree.
    pub right_ticks: i64,
}

/// Assigns output name indexes in visiting order.
struct NameTable {
    names: Vec<String>,
    index: FxHashMap<String, i64>,
}

impl NameTable {
    fn new() -> Self {
        NameTable {
            names: vec!["total".to_owned()],
            index: FxHashMap::default(),
        }
    }

    fn get(&mut self, name: &str) -> i64 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as i64;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }
}

/// Sorts each level's tuples by absolute offset, then delta-encodes the
/// offsets at positions `offset_slots` of each `width`-tuple.
fn finish_levels(levels: &mut [Vec<i64>], width: usize, offset_slots: &[(usize, usize)]) {
    for level in levels.iter_mut() {
        let mut tuples: Vec<&[i64]> = level.chunks(width).collect();
        // Layout order is the same on both sides of a diff, so sorting by
        // every offset in turn restores it even where one side is empty.
        tuples.sort_by(|a, b| {
            offset_slots
                .iter()
                .map(|&(o, _)| a[o].cmp(&b[o]))
                .find(|c| c.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut sorted: Vec<i64> = tuples.concat();
        for &(offset, total) in offset_slots {
            let mut prev_end = 0;
            for t in sorted.chunks_mut(width) {
                let abs = t[offset];
                t[offset] = abs - prev_end;
                prev_end = abs + t[total];
            }
        }
        *level = sorted;
    }
}

impl FlameGraph {
    /// Builds the flame graph of `tree`, truncated to `max_nodes` (0 = no limit).
    pub fn from_tree(tree: &StackTree, max_nodes: usize) -> FlameGraph {
        let totals = tree.totals();
        let min = StackTree::truncation_threshold(&totals, max_nodes);
        let children = tree.sorted_children();
        let mut names = NameTable::new();
        let mut levels: Vec<Vec<i64>> = Vec::new();
        let mut max_self = 0;

        enum Item {
            Node(NodeId),
            Other(i64),
        }
        // (item, absolute x, level)
        let mut stack = vec![(Item::Node(ROOT), 0i64, 0usize)];
        while let Some((item, x, level)) = stack.pop() {
            if levels.len() <= level {
                levels.push(Vec::new());
            }
            let (total, self_value, name) = match item {
                Item::Node(ROOT) => (totals[ROOT as usize], tree.self_value(ROOT), 0),
                Item::Node(n) => (
                    totals[n as usize],
                    tree.self_value(n),
                    names.get(tree.name(tree.name_of(n))),
                ),
                Item::Other(v) => (v, v, names.get(OTHER)),
            };
            max_self = max_self.max(self_value);
            levels[level].extend_from_slice(&[x, total, self_value, name]);
            let Item::Node(n) = item else { continue };
            let mut child_x = x + self_value;
            let mut other = 0;
            for &c in &children[n as usize] {
                let t = totals[c as usize];
                if t == 0 {
                    continue;
                }
                if t >= min || tree.name(tree.name_of(c)) == OTHER {
                    stack.push((Item::Node(c), child_x, level + 1));
                    child_x += t;
                } else {
                    other += t;
                }
            }
            if other > 0 {
                stack.push((Item::Other(other), child_x, level + 1));
            }
        }
        finish_levels(&mut levels, 4, &[(0, 1)]);
        FlameGraph {
            names: names.names,
            levels,
            total: totals[ROOT as usize],
            max_self,
        }
    }

    /// An empty flame graph as Pyroscope returns it when nothing matched.
    pub fn empty() -> FlameGraph {
        FlameGraph {
            names: vec!["total".into()],
            levels: vec![vec![0, 0, 0, 0]],
            total: 0,
            max_self: 0,
        }
    }

    /// Decodes the levels back into a tree (for tests and tools).
    pub fn to_tree(&self) -> StackTree {
        let mut tree = StackTree::new();
        // Absolute spans of the previous level: (start, end, node).
        let mut prev: Vec<(i64, i64, NodeId)> = Vec::new();
        for (depth, level) in self.levels.iter().enumerate() {
            let mut cur = Vec::new();
            let mut prev_end = 0;
            for t in level.chunks(4) {
                let start = prev_end + t[0];
                let end = start + t[1];
                prev_end = end;
                let node = if depth == 0 {
                    ROOT
                } else {
                    let parent = prev
                        .iter()
                        .find(|(s, e, _)| *s <= start && end <= *e)
                        .map(|p| p.2)
                        .unwrap_or(ROOT);
                    let name = tree.intern(&self.names[t[3] as usize]);
                    tree.child(parent, name)
                };
                tree.add_self(node, t[2]);
                cur.push((start, end, node));
            }
            prev = cur;
        }
        tree
    }
}

impl FlameGraphDiff {
    /// Builds the diff of `left` (baseline) and `right` (comparison): both
    /// trees aligned by name path, truncated to `max_nodes` by the larger of
    /// the two totals of each node.
    pub fn from_trees(left: &StackTree, right: &StackTree, max_nodes: usize) -> FlameGraphDiff {
        // Union structure, with each side's self values mapped onto it.
        let mut union = StackTree::new();
        let map_side = |union: &mut StackTree, side: &StackTree| -> Vec<NodeId> {
            let mut map = vec![ROOT; side.node_count() + 1];
            for i in 1..=side.node_count() {
                let parent = map[side.parent(i as NodeId) as usize];
                let name = union.intern(side.name(side.name_of(i as NodeId)));
                map[i] = union.child(parent, name);
            }
            map
        };
        let lmap = map_side(&mut union, left);
        let rmap = map_side(&mut union, right);
        let n = union.node_count() + 1;
        let mut lself = vec![0i64; n];
        let mut rself = vec![0i64; n];
        for (i, &u) in lmap.iter().enumerate() {
            lself[u as usize] += left.self_value(i as NodeId);
        }
        for (i, &u) in rmap.iter().enumerate() {
            rself[u as usize] += right.self_value(i as NodeId);
        }
        let total_of = |selfs: &[i64]| {
            let mut t = selfs.to_vec();
            for i in (1..n).rev() {
                t[union.parent(i as NodeId) as usize] += t[i];
            }
            t
        };
        let ltot = total_of(&lself);
        let rtot = total_of(&rself);
        let maxes: Vec<i64> = ltot.iter().zip(&rtot).map(|(a, b)| (*a).max(*b)).collect();
        let min = StackTree::truncation_threshold(&maxes, max_nodes);
        let children = union.sorted_children();

        let mut names = NameTable::new();
        let mut levels: Vec<Vec<i64>> = Vec::new();
        let mut max_self = 0;
        enum Item {
            Node(NodeId),
            Other(i64, i64),
        }
        let mut stack = vec![(Item::Node(ROOT), 0i64, 0i64, 0usize)];
        while let Some((item, lx, rx, level)) = stack.pop() {
            if levels.len() <= level {
                levels.push(Vec::new());
            }
            let (lt, ls, rt, rs, name) = match item {
                Item::Node(ROOT) => (ltot[0], lself[0], rtot[0], rself[0], 0),
                Item::Node(u) => {
                    let u = u as usize;
                    (
                        ltot[u],
                        lself[u],
                        rtot[u],
                        rself[u],
                        names.get(union.name(union.name_of(u as NodeId))),
                    )
                }
                Item::Other(l, r) => (l, l, r, r, names.get(OTHER)),
            };
            max_self = max_self.max(ls).max(rs);
            levels[level].extend_from_slice(&[lx, lt, ls, rx, rt, rs, name]);
            let Item::Node(u) = item else { continue };
            let (mut clx, mut crx) = (lx + ls, rx + rs);
            let (mut ol, mut or) = (0, 0);
            for &c in &children[u as usize] {
                let ci = c as usize;
                if maxes[ci] == 0 {
                    continue;
                }
                if maxes[ci] >= min || union.name(union.name_of(c)) == OTHER {
                    stack.push((Item::Node(c), clx, crx, level + 1));
                    clx += ltot[ci];
                    crx += rtot[ci];
                } else {
                    ol += ltot[ci];
                    or += rtot[ci];
                }
            }
            if ol > 0 || or > 0 {
                stack.push((Item::Other(ol, or), clx, crx, level + 1));
            }
        }
        finish_levels(&mut levels, 7, &[(0, 1), (3, 4)]);
        FlameGraphDiff {
            names: names.names,
            levels,
            total: ltot[0] + rtot[0],
            max_self,
            left_ticks: ltot[0],
            right_ticks: rtot[0],
        }
    }
}

impl From<FlameGraph> for kiln_proto::querier::v1::FlameGraph {
    fn from(f: FlameGraph) -> Self {
        kiln_proto::querier::v1::FlameGraph {
            names: f.names,
            levels: f
                .levels
                .into_iter()
                .map(|values| kiln_proto::querier::v1::Level { values })
                .collect(),
            total: f.total,
            max_self: f.max_self,
        }
    }
}

impl From<FlameGraphDiff> for kiln_proto::querier::v1::FlameGraphDiff {
    fn from(f: FlameGraphDiff) -> Self {
        kiln_proto::querier::v1::FlameGraphDiff {
            names: f.names,
            levels: f
                .levels
                .into_iter()
                .map(|values| kiln_proto::querier::v1::Level { values })
                .collect(),
            total: f.total,
            max_self: f.max_self,
            left_ticks: f.left_ticks,
            right_ticks: f.right_ticks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(stacks: &[(&str, i64)]) -> StackTree {
        let mut t = StackTree::new();
        for (s, v) in stacks {
            let frames: Vec<&str> = s.split(';').collect();
            t.insert_stack(&frames, *v);
        }
        t
    }

    #[test]
    fn matches_the_documented_worked_example() {
        let t = tree(&[("main;foo", 30), ("main;bar", 10), ("main", 5)]);
        let fg = FlameGraph::from_tree(&t, 0);
        assert_eq!(fg.names, vec!["total", "main", "foo", "bar"]);
        assert_eq!(fg.total, 45);
        assert_eq!(fg.max_self, 30);
        assert_eq!(
            fg.levels,
            vec![
                vec![0, 45, 0, 0],
                vec![0, 45, 5, 1],
                vec![5, 10, 10, 3, 0, 30, 30, 2]
            ]
        );
    }

    #[test]
    fn truncation_folds_small_children_into_other() {
        let t = tree(&[("a;b", 100), ("a;c", 1), ("a;d", 2), ("e", 50)]);
        let fg = FlameGraph::from_tree(&t, 3);
        assert_eq!(fg.total, 153);
        let back = fg.to_tree();
        let mut stacks = Vec::new();
        back.for_each_stack(|s, v| stacks.push((s.join(";"), v)));
        assert_eq!(
            stacks,
            vec![("a;b".into(), 100), ("a;other".into(), 3), ("e".into(), 50)]
        );
    }

    #[test]
    fn levels_round_trip_through_the_tree() {
        let t = tree(&[("a;b;c", 7), ("a;b", 3), ("a;x;c", 2), ("z;y", 9), ("z", 1)]);
        let fg = FlameGraph::from_tree(&t, 0);
        let back = fg.to_tree();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        t.for_each_stack(|s, v| x.push((s.join(";"), v)));
        back.for_each_stack(|s, v| y.push((s.join(";"), v)));
        assert_eq!(x, y);
    }

    #[test]
    fn empty_tree_gives_the_empty_flame_graph() {
        assert_eq!(
            FlameGraph::from_tree(&StackTree::new(), 0),
            FlameGraph::empty()
        );
    }

    #[test]
    fn diff_aligns_both_sides() {
        let l = tree(&[("main;foo", 30), ("main;bar", 10)]);
        let r = tree(&[("main;foo", 10), ("main;baz", 20)]);
        let d = FlameGraphDiff::from_trees(&l, &r, 0);
        assert_eq!(d.left_ticks, 40);
        assert_eq!(d.right_ticks, 30);
        assert_eq!(d.total, 70);
        assert_eq!(d.levels[0], vec![0, 40, 0, 0, 30, 0, 0]);
        assert_eq!(d.levels[1][1], 40);
        assert_eq!(d.levels[1][4], 30);
        // level 2: bar, baz, foo in name order, offsets delta-encoded per side
        let lvl = &d.levels[2];
        assert_eq!(lvl.len(), 21);
        let name = |i: usize| d.names[lvl[i * 7 + 6] as usize].as_str();
        assert_eq!((name(0), name(1), name(2)), ("bar", "baz", "foo"));
        assert_eq!(&lvl[0..6], &[0, 10, 10, 0, 0, 0]);
        assert_eq!(&lvl[7..13], &[0, 0, 0, 0, 20, 20]);
        assert_eq!(&lvl[14..20], &[0, 30, 30, 0, 10, 10]);
    }
}
