//! Stack trees: the merged form of profiles that every query produces.
//!
//! A [`StackTree`] is an arena of nodes. Each node has a parent, an interned
//! frame name and a *self* value; totals are derived. Nodes are created after
//! their parents, so a node's index is always larger than its parent's, which
//! lets totals be computed in one backward pass and lets trees be merged in
//! one forward pass. Frames are function names, root first.
//!
//! Merging is exact, associative and commutative (it sums self values per
//! name path). Truncation to a node budget never changes the total: children
//! that do not make the cut are folded into one `other` child per parent.

use rustc_hash::FxHashMap;

use crate::ModelError;

/// Index of a node in a [`StackTree`].
pub type NodeId = u32;
/// Index of an interned frame name in a [`StackTree`].
pub type NameId = u32;

/// The virtual root of every tree.
pub const ROOT: NodeId = 0;
/// Name of the node that stands for children cut by truncation.
pub const OTHER: &str = "other";
const NO_NAME: NameId = NameId::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    parent: NodeId,
    name: NameId,
    self_value: i64,
}

/// A tree of frames with a value per node.
#[derive(Debug, Clone)]
pub struct StackTree {
    names: Vec<String>,
    name_ids: FxHashMap<String, NameId>,
    nodes: Vec<Node>,
    children: FxHashMap<(NodeId, NameId), NodeId>,
}

impl Default for StackTree {
    fn default() -> Self {
        Self::new()
    }
}

impl StackTree {
    /// An empty tree (only the virtual root).
    pub fn new() -> Self {
        StackTree {
            names: Vec::new(),
            name_ids: FxHashMap::default(),
            nodes: vec![Node {
                parent: ROOT,
                name: NO_NAME,
                self_value: 0,
            }],
            children: FxHashMap::default(),
        }
    }

    /// Interns a frame name.
    pub fn intern(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as NameId;
        self.names.push(name.to_owned());
        self.name_ids.insert(name.to_owned(), id);
        id
    }

    /// The frame name of an interned id.
    pub fn name(&self, id: NameId) -> &str {
        &self.names[id as usize]
    }

    /// The child of `parent` named `name`, created if missing.
    pub fn child(&mut self, parent: NodeId, name: NameId) -> NodeId {
        debug_assert!((parent as usize) < self.nodes.len());
        let next = self.nodes.len() as NodeId;
        *self.children.entry((parent, name)).or_insert_with(|| {
            self.nodes.push(Node {
                parent,
                name,
                self_value: 0,
            });
            next
        })
    }

    /// Adds `value` to the self value of `node`.
    pub fn add_self(&mut self, node: NodeId, value: i64) {
        self.nodes[node as usize].self_value += value;
    }

    /// Inserts one stack (root frame first) with `value`.
    pub fn insert_stack<S: AsRef<str>>(&mut self, frames: &[S], value: i64) {
        let mut node = ROOT;
        for f in frames {
            let name = self.intern(f.as_ref());
            node = self.child(node, name);
        }
        self.add_self(node, value);
    }

    /// Adds every node of `other` into `self`.
    pub fn merge(&mut self, other: &StackTree) {
        let name_map: Vec<NameId> = other.names.iter().map(|n| self.intern(n)).collect();
        let mut node_map: Vec<NodeId> = Vec::with_capacity(other.nodes.len());
        node_map.push(ROOT);
        for n in &other.nodes[1..] {
            let parent = node_map[n.parent as usize];
            let mapped = self.child(parent, name_map[n.name as usize]);
            node_map.push(mapped);
            if n.self_value != 0 {
                self.add_self(mapped, n.self_value);
            }
        }
        self.nodes[ROOT as usize].self_value += other.nodes[ROOT as usize].self_value;
    }

    /// Number of nodes, excluding the virtual root.
    pub fn node_count(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Sum of every self value: the tree's total.
    pub fn total(&self) -> i64 {
        self.nodes.iter().map(|n| n.self_value).sum()
    }

    /// Whether the tree holds no value.
    pub fn is_empty(&self) -> bool {
        self.nodes.iter().all(|n| n.self_value == 0)
    }

    /// The total of every node (self plus descendants), indexed by node id.
    pub fn totals(&self) -> Vec<i64> {
        let mut totals: Vec<i64> = self.nodes.iter().map(|n| n.self_value).collect();
        for i in (1..self.nodes.len()).rev() {
            let p = self.nodes[i].parent as usize;
            totals[p] += totals[i];
        }
        totals
    }

    /// The parent of a node.
    pub fn parent(&self, node: NodeId) -> NodeId {
        self.nodes[node as usize].parent
    }

    /// The name id of a node (not valid for the root).
    pub fn name_of(&self, node: NodeId) -> NameId {
        self.nodes[node as usize].name
    }

    /// The self value of a node.
    pub fn self_value(&self, node: NodeId) -> i64 {
        self.nodes[node as usize].self_value
    }

    /// Children of every node, each list sorted by name (byte order).
    pub fn sorted_children(&self) -> Vec<Vec<NodeId>> {
        let mut children: Vec<Vec<NodeId>> = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            children[n.parent as usize].push(i as NodeId);
        }
        for list in &mut children {
            list.sort_unstable_by(|a, b| {
                self.names[self.nodes[*a as usize].name as usize]
                    .as_bytes()
                    .cmp(self.names[self.nodes[*b as usize].name as usize].as_bytes())
            });
        }
        children
    }

    /// The frames from the root to `node`.
    pub fn path(&self, mut node: NodeId) -> Vec<&str> {
        let mut path = Vec::new();
        while node != ROOT {
            let n = &self.nodes[node as usize];
            path.push(self.names[n.name as usize].as_str());
            node = n.parent;
        }
        path.reverse();
        path
    }

    /// Calls `f(stack, self_value)` for every node with a non-zero self value,
    /// in depth-first name order; `stack` is root first.
    pub fn for_each_stack(&self, mut f: impl FnMut(&[&str], i64)) {
        let children = self.sorted_children();
        let mut path: Vec<&str> = Vec::new();
        // (node, depth) pairs; children pushed in reverse to visit in order.
        let mut stack: Vec<(NodeId, usize)> = children[ROOT as usize]
            .iter()
            .rev()
            .map(|&c| (c, 0))
            .collect();
        while let Some((node, depth)) = stack.pop() {
            path.truncate(depth);
            let n = &self.nodes[node as usize];
            path.push(&self.names[n.name as usize]);
            if n.self_value != 0 {
                f(&path, n.self_value);
            }
            for &c in children[node as usize].iter().rev() {
                stack.push((c, depth + 1));
            }
        }
    }

    /// The smallest total a node needs to survive truncation to `max_nodes`:
    /// the `max_nodes`-th largest node total, or 0 if the tree is small enough.
    pub fn truncation_threshold(totals: &[i64], max_nodes: usize) -> i64 {
        let n = totals.len().saturating_sub(1);
        if max_nodes == 0 || n <= max_nodes {
            return 0;
        }
        let mut values: Vec<i64> = totals[1..].to_vec();
        let k = max_nodes - 1;
        let (_, nth, _) = values.select_nth_unstable_by(k, |a, b| b.cmp(a));
        *nth
    }

    /// A copy reduced to about `max_nodes` nodes: children whose total is
    /// below the threshold are folded into one `other` child of their parent.
    /// The total is unchanged. `max_nodes == 0` means no limit.
    pub fn truncated(&self, max_nodes: usize) -> StackTree {
        let totals = self.totals();
        let min = Self::truncation_threshold(&totals, max_nodes);
        let mut out = StackTree::new();
        out.nodes[ROOT as usize].self_value = self.nodes[ROOT as usize].self_value;
        let other_name = out.intern(OTHER);
        let mut map: Vec<Option<NodeId>> = vec![None; self.nodes.len()];
        map[ROOT as usize] = Some(ROOT);
        let mut other_by_parent: FxHashMap<NodeId, i64> = FxHashMap::default();
        for i in 1..self.nodes.len() {
            let n = self.nodes[i];
            let Some(parent) = map[n.parent as usize] else {
                continue;
            };
            if totals[i] == 0 {
                continue;
            }
            let is_other = self.names[n.name as usize] == OTHER;
            if totals[i] >= min || is_other {
                let name = out.intern(&self.names[n.name as usize]);
                let id = out.child(parent, name);
                out.add_self(id, n.self_value);
                map[i] = Some(id);
            } else {
                *other_by_parent.entry(parent).or_default() += totals[i];
            }
        }
        let mut parents: Vec<_> = other_by_parent.into_iter().collect();
        parents.sort_unstable();
        for (parent, value) in parents {
            let id = out.child(parent, other_name);
            out.add_self(id, value);
        }
        out
    }

    /// Encodes the tree in Pyroscope's tree format (pre-order; each node is
    /// `uvarint len | name | uvarint self | uvarint child count`, starting
    /// with a virtual root with an empty name), truncated to `max_nodes`.
    /// An empty tree encodes to zero bytes.
    pub fn encode_tree_bytes(&self, max_nodes: usize) -> Vec<u8> {
        if self.is_empty() {
            return Vec::new();
        }
        let t = if max_nodes > 0 && self.node_count() > max_nodes {
            self.truncated(max_nodes)
        } else {
            self.clone()
        };
        let totals = t.totals();
        let children: Vec<Vec<NodeId>> = t
            .sorted_children()
            .into_iter()
            .map(|l| l.into_iter().filter(|c| totals[*c as usize] != 0).collect())
            .collect();
        let mut out = Vec::new();
        let mut stack = vec![ROOT];
        while let Some(node) = stack.pop() {
            let name = if node == ROOT {
                ""
            } else {
                t.names[t.nodes[node as usize].name as usize].as_str()
            };
            put_uvarint(&mut out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
            put_uvarint(&mut out, t.nodes[node as usize].self_value.max(0) as u64);
            put_uvarint(&mut out, children[node as usize].len() as u64);
            stack.extend(children[node as usize].iter().rev());
        }
        out
    }

    /// Decodes Pyroscope's tree format. `max_nodes` bounds the work done on
    /// untrusted input.
    pub fn decode_tree_bytes(mut data: &[u8], max_nodes: usize) -> Result<StackTree, ModelError> {
        let mut tree = StackTree::new();
        if data.is_empty() {
            return Ok(tree);
        }
        // (node id in `tree`, remaining children to read)
        let mut stack: Vec<(NodeId, u64)> = Vec::new();
        let mut first = true;
        let mut count = 0usize;
        while !data.is_empty() {
            count += 1;
            if count > max_nodes.saturating_add(1) {
                return Err(ModelError::InvalidTree(format!(
                    "more than {max_nodes} nodes"
                )));
            }
            let len = get_uvarint(&mut data)? as usize;
            if len > data.len() {
                return Err(ModelError::InvalidTree("name runs past the end".into()));
            }
            let name = std::str::from_utf8(&data[..len])
                .map_err(|_| ModelError::InvalidTree("name is not valid UTF-8".into()))?;
            data = &data[len..];
            let self_value = get_uvarint(&mut data)?;
            let children = get_uvarint(&mut data)?;
            let self_value = i64::try_from(self_value)
                .map_err(|_| ModelError::InvalidTree("value overflows".into()))?;
            let node = if first {
                first = false;
                if !name.is_empty() {
                    return Err(ModelError::InvalidTree(
                        "the root must have an empty name".into(),
                    ));
                }
                ROOT
            } else {
                let Some(parent) = stack.last_mut() else {
                    return Err(ModelError::InvalidTree(
                        "trailing data after the tree".into(),
                    ));
                };
                parent.1 -= 1;
                let parent_id = parent.0;
                if parent.1 == 0 {
                    stack.pop();
                }
                let n = tree.intern(name);
                tree.child(parent_id, n)
            };
            tree.add_self(node, self_value);
            if children > 0 {
                if children > max_nodes as u64 {
                    return Err(ModelError::InvalidTree(format!(
                        "child count {children} is too large"
                    )));
                }
                stack.push((node, children));
            }
        }
        if !stack.is_empty() {
            return Err(ModelError::InvalidTree(
                "truncated: children missing".into(),
            ));
        }
        Ok(tree)
    }
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_uvarint(data: &mut &[u8]) -> Result<u64, ModelError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some((&b, rest)) = data.split_first() else {
            return Err(ModelError::InvalidTree("truncated varint".into()));
        };
        *data = rest;
        if i == 9 && b > 1 {
            return Err(ModelError::InvalidTree("varint overflows 64 bits".into()));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(ModelError::InvalidTree("varint too long".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tree(stacks: &[(&str, i64)]) -> StackTree {
        let mut t = StackTree::new();
        for (s, v) in stacks {
            let frames: Vec<&str> = s.split(';').collect();
            t.insert_stack(&frames, *v);
        }
        t
    }

    fn folded(t: &StackTree) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        t.for_each_stack(|s, v| out.push((s.join(";"), v)));
        out
    }

    #[test]
    fn inserts_and_sums() {
        let t = tree(&[
            ("main;foo", 30),
            ("main;bar", 10),
            ("main", 5),
            ("main;foo", 1),
        ]);
        assert_eq!(t.total(), 46);
        assert_eq!(t.node_count(), 3);
        assert_eq!(
            folded(&t),
            vec![
                ("main".into(), 5),
                ("main;bar".into(), 10),
                ("main;foo".into(), 31)
            ]
        );
        let totals = t.totals();
        assert_eq!(totals[ROOT as usize], 46);
    }

    #[test]
    fn merge_equals_inserting_everything() {
        let a = tree(&[("a;b", 1), ("a;c", 2)]);
        let b = tree(&[("a;b", 3), ("x", 4)]);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(
            folded(&m),
            folded(&tree(&[("a;b", 4), ("a;c", 2), ("x", 4)]))
        );
    }

    #[test]
    fn truncation_keeps_the_total_and_adds_other() {
        let t = tree(&[("a;b", 100), ("a;c", 1), ("a;d", 2), ("e", 50)]);
        let cut = t.truncated(3);
        assert_eq!(cut.total(), t.total());
        assert_eq!(
            folded(&cut),
            vec![("a;b".into(), 100), ("a;other".into(), 3), ("e".into(), 50)]
        );
        assert_eq!(folded(&t.truncated(0)), folded(&t));
    }

    #[test]
    fn tree_bytes_round_trip() {
        let t = tree(&[("main;foo", 30), ("main;bar", 10), ("main", 5)]);
        let bytes = t.encode_tree_bytes(0);
        let back = StackTree::decode_tree_bytes(&bytes, 1000).unwrap();
        assert_eq!(folded(&back), folded(&t));
        assert!(StackTree::new().encode_tree_bytes(0).is_empty());
        assert!(StackTree::decode_tree_bytes(&[], 10).unwrap().is_empty());
    }

    #[test]
    fn tree_bytes_reject_garbage() {
        let t = tree(&[("main;foo", 30), ("main;bar", 10)]);
        let bytes = t.encode_tree_bytes(0);
        assert!(StackTree::decode_tree_bytes(&bytes[..bytes.len() - 1], 1000).is_err());
        assert!(StackTree::decode_tree_bytes(&bytes, 1).is_err());
        assert!(StackTree::decode_tree_bytes(&[0xff; 12], 1000).is_err());
        // root with a name
        assert!(StackTree::decode_tree_bytes(&[1, b'x', 0, 0], 10).is_err());
    }
}
