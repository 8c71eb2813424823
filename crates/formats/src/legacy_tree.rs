//! The binary bodies of OG Pyroscope agents on `/ingest`: the *trie*
//! (`format=trie`, `Content-Type: binary/octet-stream+trie`) and the *tree*
//! (`format=tree`, `binary/octet-stream+tree`).
//!
//! Both are pre-order streams of nodes, children right after their parent,
//! integers as unsigned LEB128 varints:
//!
//! - trie node: `name length | name bytes | value | child count`. The name
//!   is a *fragment* of a folded key (`root;child;leaf`): a node's key is the
//!   concatenation of the fragments on the path from the first node, and
//!   fragments need not end at a `;`. Every node with a value above 0 adds
//!   its key with that value, exactly like a folded line.
//! - tree node: `name length | frame name | self value | child count`; the
//!   first node is a virtual root with an empty name, every other node is
//!   one frame. Decoding is [`StackTree::decode_tree_bytes`]; the root's own
//!   value is ignored.
//!
//! Both parsers return a [`StackTree`], which
//! [`profiles_from_legacy_tree`](crate::ingest::profiles_from_legacy_tree)
//! turns into a pprof the way folded stacks are (kind suffix, rate
//! scaling).
//!
//! # Bounds
//!
//! The body is at most `limits.max_profile_bytes` (after gzip, which is
//! sniffed). Every node takes at least three bytes, so child counts larger
//! than a third of the remaining bytes are refused before anything is
//! allocated, and the number of nodes is bounded by the body size. Trie
//! keys are resolved into frames incrementally (each `;` once), but the
//! unfinished last frame of a key built from a long chain of tiny
//! fragments is looked up again at every valued node, which could make the
//! work and the interned names quadratic: the summed length of looked-up
//! frame names is capped at [`TRIE_EXPANSION`] times the body size (plus
//! 1 MiB). Values are
//! summed with overflow checks (the total must fit an `i64`). Nothing
//! recurses, so nesting depth costs no stack.

use kiln_model::StackTree;
use kiln_model::tree::{NodeId, ROOT};

use crate::compress::decompress_bounded;
use crate::{FormatError, Limits};

/// The frame names looked up while rebuilding trie keys may add up to at
/// most this many times the body size (plus 1 MiB).
pub const TRIE_EXPANSION: usize = 16;
const EXPANSION_ALLOWANCE: usize = 1 << 20;
/// The fewest bytes a node can take (three one-byte varints).
const MIN_NODE_BYTES: usize = 3;

/// A cursor over the body that reports errors with their offset.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, offset: usize, reason: impl Into<String>) -> FormatError {
        FormatError::Trie {
            offset,
            reason: reason.into(),
        }
    }

    fn uvarint(&mut self, what: &str) -> Result<u64, FormatError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.data.get(self.pos) else {
                return Err(self.error(start, format!("{what}: data ends inside a varint")));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(self.error(start, format!("{what}: varint overflows 64 bits")));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error(start, format!("{what}: varint longer than 10 bytes")))
    }

    fn bytes(&mut self, len: u64, what: &str) -> Result<&'a [u8], FormatError> {
        let remaining = self.data.len() - self.pos;
        match usize::try_from(len) {
            Ok(len) if len <= remaining => {
                let out = &self.data[self.pos..self.pos + len];
                self.pos += len;
                Ok(out)
            }
            _ => Err(self.error(
                self.pos,
                format!("{what} of {len} bytes runs past the end ({remaining} bytes left)"),
            )),
        }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}

/// Parses a trie body into a tree of frames (see the module docs).
pub fn parse_trie(body: &[u8], limits: &Limits) -> Result<StackTree, FormatError> {
    let data = decompress_bounded(body, limits.max_profile_bytes, "trie body")?;
    let mut reader = Reader {
        data: &data,
        pos: 0,
    };
    let mut builder = TrieTreeBuilder::new(data.len());
    // (key length before the node's children, children still to read)
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut first = true;
    while reader.remaining() > 0 {
        let node_offset = reader.pos;
        if first {
            first = false;
        } else {
            let Some(parent) = open.last_mut() else {
                return Err(reader.error(node_offset, "data after the last node"));
            };
            builder.truncate(parent.0);
            parent.1 -= 1;
            if parent.1 == 0 {
                open.pop();
            }
        }
        let len = reader.uvarint("name length")?;
        let fragment = reader.bytes(len, "name")?;
        let value = reader.uvarint("value")?;
        let children = reader.uvarint("child count")?;
        builder
            .append(fragment)
            .map_err(|reason| reader.error(node_offset, reason))?;
        if value > 0 {
            builder
                .add_value(value)
                .map_err(|reason| reader.error(node_offset, reason))?;
        }
        if children > 0 {
            if children > (reader.remaining() / MIN_NODE_BYTES) as u64 {
                return Err(reader.error(
                    node_offset,
                    format!(
                        "child count {children} exceeds what the {} remaining bytes can hold",
                        reader.remaining()
                    ),
                ));
            }
            open.push((builder.key.len(), children));
        }
    }
    if let Some((_, missing)) = open.last() {
        return Err(reader.error(
            reader.pos,
            format!("data ends with {missing} children still missing"),
        ));
    }
    Ok(builder.tree)
}

/// Turns the keys of a trie walk into tree nodes incrementally: the
/// complete frames (ended by `;`) of the current key are resolved once,
/// when their `;` is read, and only the unfinished last frame is looked up
/// at each valued node.
struct TrieTreeBuilder {
    tree: StackTree,
    /// The current key: the fragments from the first node to this one.
    key: Vec<u8>,
    /// For each complete frame of `key`: the key length just after its
    /// `;`, and its tree node (empty frames keep their parent's node).
    frames: Vec<(usize, NodeId)>,
    /// Bytes of frame text looked up so far, and the cap on them.
    spent: usize,
    budget: usize,
    /// Sum of all values, kept within `i64`.
    total: i64,
}

impl TrieTreeBuilder {
    fn new(body_len: usize) -> Self {
        TrieTreeBuilder {
            tree: StackTree::new(),
            key: Vec::new(),
            frames: Vec::new(),
            spent: 0,
            budget: body_len
                .saturating_mul(TRIE_EXPANSION)
                .saturating_add(EXPANSION_ALLOWANCE),
            total: 0,
        }
    }

    /// Goes back to the key of an ancestor, `len` bytes long.
    fn truncate(&mut self, len: usize) {
        self.key.truncate(len);
        while self.frames.last().is_some_and(|&(end, _)| end > len) {
            self.frames.pop();
        }
    }

    fn current_frame_start(&self) -> (usize, NodeId) {
        self.frames.last().copied().unwrap_or((0, ROOT))
    }

    /// The tree node of frame `text` under `parent`, charged to the budget.
    fn frame_node(&mut self, parent: NodeId, start: usize, end: usize) -> Result<NodeId, String> {
        self.spent = self.spent.saturating_add(end - start);
        if self.spent > self.budget {
            return Err(format!(
                "keys expand to more than {} bytes of frame names ({TRIE_EXPANSION} times the body)",
                self.budget
            ));
        }
        let text = std::str::from_utf8(&self.key[start..end])
            .map_err(|e| format!("frame name is not valid UTF-8: {e}"))?;
        let name = self.tree.intern(text);
        Ok(self.tree.child(parent, name))
    }

    /// Appends a fragment to the key, resolving the frames it completes.
    fn append(&mut self, fragment: &[u8]) -> Result<(), String> {
        let old_len = self.key.len();
        self.key.extend_from_slice(fragment);
        for end in old_len..self.key.len() {
            if self.key[end] != b';' {
                continue;
            }
            let (start, parent) = self.current_frame_start();
            let node = if end > start {
                self.frame_node(parent, start, end)?
            } else {
                parent
            };
            self.frames.push((end + 1, node));
        }
        Ok(())
    }

    /// Adds `value` to the stack named by the current key.
    fn add_value(&mut self, value: u64) -> Result<(), String> {
        let value = i64::try_from(value)
            .ok()
            .and_then(|v| self.total.checked_add(v).map(|total| (v, total)));
        let Some((value, total)) = value else {
            return Err("values add up beyond 2^63 - 1".to_owned());
        };
        self.total = total;
        let (start, parent) = self.current_frame_start();
        let node = if self.key.len() > start {
            self.frame_node(parent, start, self.key.len())?
        } else {
            parent
        };
        self.tree.add_self(node, value);
        Ok(())
    }
}

/// Parses a tree body (see the module docs).
pub fn parse_tree(body: &[u8], limits: &Limits) -> Result<StackTree, FormatError> {
    let data = decompress_bounded(body, limits.max_profile_bytes, "tree body")?;
    check_tree_values(&data)?;
    let max_nodes = data.len() / MIN_NODE_BYTES + 1;
    StackTree::decode_tree_bytes(&data, max_nodes).map_err(FormatError::Tree)
}

/// Fails if the self values of a tree body add up beyond `i64::MAX`, so
/// that merging nodes while decoding cannot overflow. Structural errors
/// are left to the decoder, which names them.
fn check_tree_values(data: &[u8]) -> Result<(), FormatError> {
    let mut reader = Reader { data, pos: 0 };
    let mut total: u64 = 0;
    while reader.remaining() > 0 {
        let node_offset = reader.pos;
        let Ok(len) = reader.uvarint("name length") else {
            return Ok(());
        };
        if reader.bytes(len, "name").is_err() {
            return Ok(());
        }
        let Ok(value) = reader.uvarint("self value") else {
            return Ok(());
        };
        if reader.uvarint("child count").is_err() {
            return Ok(());
        }
        total = match total.checked_add(value) {
            Some(t) if i64::try_from(t).is_ok() => t,
            _ => {
                return Err(FormatError::Tree(kiln_model::ModelError::InvalidTree(
                    format!("self values add up beyond 2^63 - 1 at byte {node_offset}"),
                )));
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// One node of either format.
    fn node(out: &mut Vec<u8>, name: &str, value: u64, children: u64) {
        put_uvarint(out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        put_uvarint(out, value);
        put_uvarint(out, children);
    }

    fn folded(tree: &StackTree) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        tree.for_each_stack(|frames, v| out.push((frames.join(";"), v)));
        out
    }

    /// A trie whose fragments split frame names in the middle:
    /// "" → "ma" → "in;fo" (2) → "o" (3) / "o;bar" (5), and "in;baz" (7).
    fn misaligned_trie() -> Vec<u8> {
        let mut t = Vec::new();
        node(&mut t, "", 0, 1);
        node(&mut t, "ma", 0, 2);
        node(&mut t, "in;fo", 2, 2);
        node(&mut t, "o", 3, 0);
        node(&mut t, "o;bar", 5, 0);
        node(&mut t, "in;baz", 7, 0);
        t
    }

    #[test]
    fn trie_keys_concatenate_fragments_that_do_not_align_with_frames() {
        let tree = parse_trie(&misaligned_trie(), &Limits::default()).unwrap();
        assert_eq!(
            folded(&tree),
            vec![
                ("main;baz".to_owned(), 7),
                ("main;fo".to_owned(), 2),
                ("main;foo".to_owned(), 3),
                ("main;foo;bar".to_owned(), 5),
            ]
        );
        // gzip is sniffed
        let gz = crate::compress::gzip(&misaligned_trie()).unwrap();
        assert_eq!(
            folded(&parse_trie(&gz, &Limits::default()).unwrap()),
            folded(&tree)
        );
        assert!(parse_trie(&[], &Limits::default()).unwrap().is_empty());
    }

    #[test]
    fn trie_errors_name_the_offset_and_problem() {
        let t = misaligned_trie();
        for cut in 1..t.len() {
            let err = parse_trie(&t[..cut], &Limits::default()).unwrap_err();
            assert!(matches!(err, FormatError::Trie { .. }), "{cut}: {err}");
        }
        let mut extra = t.clone();
        node(&mut extra, "x", 1, 0);
        let err = parse_trie(&extra, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("after the last node"), "{err}");

        let mut huge_children = Vec::new();
        node(&mut huge_children, "a", 1, u64::MAX);
        let err = parse_trie(&huge_children, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("child count"), "{err}");

        let mut bad_utf8 = Vec::new();
        node(&mut bad_utf8, "", 0, 1);
        put_uvarint(&mut bad_utf8, 2);
        bad_utf8.extend_from_slice(&[0xff, 0xfe]);
        put_uvarint(&mut bad_utf8, 1);
        put_uvarint(&mut bad_utf8, 0);
        let err = parse_trie(&bad_utf8, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");

        let mut overflow = Vec::new();
        node(&mut overflow, "", 0, 2);
        node(&mut overflow, "a", i64::MAX as u64, 0);
        node(&mut overflow, "a", 1, 0);
        let err = parse_trie(&overflow, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("2^63"), "{err}");

        let limits = Limits {
            max_profile_bytes: 4,
            ..Limits::default()
        };
        assert!(matches!(
            parse_trie(&t, &limits),
            Err(FormatError::TooLarge { limit: 4, .. })
        ));
    }

    #[test]
    fn trie_expansion_is_bounded() {
        // A chain of 200k one-byte fragments, each valued: keys would add
        // up to 2·10^10 bytes.
        let n = 200_000u64;
        let mut t = Vec::new();
        for i in 0..n {
            node(&mut t, "x", 1, u64::from(i + 1 < n));
        }
        let start = std::time::Instant::now();
        let err = parse_trie(&t, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("times the body"), "{err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn tree_decodes_and_rejects_overflowing_values() {
        let mut t = Vec::new();
        node(&mut t, "", 0, 2);
        node(&mut t, "main", 1, 1);
        node(&mut t, "work", 10, 0);
        node(&mut t, "idle", 4, 0);
        let tree = parse_tree(&t, &Limits::default()).unwrap();
        assert_eq!(
            folded(&tree),
            vec![
                ("idle".to_owned(), 4),
                ("main".to_owned(), 1),
                ("main;work".to_owned(), 10),
            ]
        );
        for cut in 1..t.len() {
            let err = parse_tree(&t[..cut], &Limits::default()).unwrap_err();
            assert!(matches!(err, FormatError::Tree(_)), "{cut}: {err}");
            assert!(err.to_string().starts_with("parse tree body"), "{err}");
        }
        let mut overflow = Vec::new();
        node(&mut overflow, "", 0, 2);
        node(&mut overflow, "a", i64::MAX as u64, 0);
        node(&mut overflow, "a", 1, 0);
        let err = parse_tree(&overflow, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("2^63"), "{err}");
    }

    /// Deterministic pseudo-random bytes (xorshift).
    fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_and_corrupted_bodies_never_panic() {
        let limits = Limits::default();
        for seed in 0..500 {
            let bytes = pseudo_random(seed, (seed as usize * 7) % 300 + 1);
            let _ = parse_trie(&bytes, &limits);
            let _ = parse_tree(&bytes, &limits);
        }
        let good = misaligned_trie();
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                let _ = parse_trie(&bad, &limits);
                let _ = parse_tree(&bad, &limits);
            }
        }
    }
}
