//! The OG binary trie and tree bodies through `/ingest`. Tries are encoded
//! here from folded text, with fragments that cut frame names anywhere; the
//! tree fixture's values are summed by a decoder written here.

use super::*;

const TREE: &str = "tree/diff_left_tree.bin";

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_uvarint(data: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = data[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// A byte-level prefix trie of folded keys.
#[derive(Default)]
struct TrieNode {
    value: u64,
    children: BTreeMap<u8, TrieNode>,
}

impl TrieNode {
    fn insert(&mut self, key: &[u8], value: u64) {
        let mut node = self;
        for &b in key {
            node = node.children.entry(b).or_default();
        }
        node.value += value;
    }

    /// Pre-order encoding; chains of value-less single children are
    /// joined into fragments of at most `max_fragment` bytes.
    fn encode(&self, fragment: &[u8], max_fragment: usize, out: &mut Vec<u8>) {
        let mut fragment = fragment.to_vec();
        let mut node = self;
        while node.value == 0 && node.children.len() == 1 && fragment.len() < max_fragment {
            let (&b, child) = node.children.iter().next().unwrap();
            fragment.push(b);
            node = child;
        }
        put_uvarint(out, fragment.len() as u64);
        out.extend_from_slice(&fragment);
        put_uvarint(out, node.value);
        put_uvarint(out, node.children.len() as u64);
        for (&b, child) in &node.children {
            child.encode(&[b], max_fragment, out);
        }
    }
}

fn trie_of_folded(text: &str, max_fragment: usize) -> Vec<u8> {
    let mut root = TrieNode::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, count) = line.rsplit_once(' ').unwrap();
        root.insert(key.as_bytes(), count.parse().unwrap());
    }
    let mut out = Vec::new();
    root.encode(&[], max_fragment, &mut out);
    out
}

#[test]
fn trie_bodies_equal_the_same_stacks_sent_folded() {
    for file in [
        "collapsed/pprof-string.txt",
        "captured/py-spy-0.4.3.raw.folded",
    ] {
        let text = String::from_utf8(read(file)).unwrap();
        let folded = ingest_raw(&[("name", "app.cpu{env=prod}")], None, text.as_bytes()).unwrap();
        let folded_stacks = resolved_stacks_of(folded.iter().map(|sp| &sp.profile), 0);
        assert!(folded_stacks.len() >= 6, "{file}: {}", folded_stacks.len());
        for max_fragment in [1, 3, 7, 1000] {
            let trie = trie_of_folded(&text, max_fragment);
            for (format, content_type) in [("trie", None), ("", Some("binary/octet-stream+trie"))] {
                let out = ingest_raw(
                    &[("name", "app.cpu{env=prod}"), ("format", format)],
                    content_type,
                    &trie,
                )
                .unwrap();
                assert_invariants(&out);
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].labels, folded[0].labels);
                assert_eq!(
                    resolved_stacks(&out[0].profile, 0),
                    folded_stacks,
                    "{file}: fragments of {max_fragment}"
                );
            }
        }
    }
}

/// The sum of the self values of every node but the root, and how many
/// are non-zero, decoded here.
fn tree_fixture_sums(data: &[u8]) -> (i128, usize) {
    let mut pos = 0;
    let mut first = true;
    let (mut total, mut valued) = (0i128, 0usize);
    while pos < data.len() {
        let len = get_uvarint(data, &mut pos) as usize;
        pos += len;
        let value = get_uvarint(data, &mut pos);
        get_uvarint(data, &mut pos);
        if !first {
            total += i128::from(value);
            valued += usize::from(value > 0);
        }
        first = false;
    }
    (total, valued)
}

#[test]
fn tree_fixture_keeps_its_total() {
    let data = read(TREE);
    let (total, valued) = tree_fixture_sums(&data);
    assert!(valued > 100_000, "{valued}");
    let limits = Limits {
        max_samples: 200_000,
        ..Limits::default()
    };
    // sampleRate=0: values stay counts (×1e7 would overflow an i64).
    let query = params(&[("name", "bigapp"), ("format", "tree"), ("sampleRate", "0")]);
    let out = profiles_from_ingest(
        &query,
        Some("application/octet-stream"),
        IngestBody::Raw(Bytes::from(data.clone())),
        &limits,
        NOW,
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(output_sums(&out)["samples"], total);
    assert_eq!(out[0].profile.sample.len(), valued);
    assert_eq!(out[0].labels.get("__name__"), Some("process_cpu"));

    // The default limits refuse that many stacks, naming the limit.
    let err = profiles_from_ingest(
        &query,
        None,
        IngestBody::Raw(Bytes::from(data)),
        &Limits::default(),
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(err, FormatError::LimitExceeded { limit: 16_000, .. }),
        "{err}"
    );
}

#[test]
fn tree_and_trie_bodies_are_bounded() {
    let limits = Limits {
        max_profile_bytes: 1 << 20,
        ..Limits::default()
    };
    let data = read(TREE);
    for format in ["tree", "trie"] {
        let err = profiles_from_ingest(
            &params(&[("name", "app"), ("format", format)]),
            None,
            IngestBody::Raw(Bytes::from(data.clone())),
            &limits,
            NOW,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::TooLarge {
                    limit: 1_048_576,
                    ..
                }
            ),
            "{format}: {err}"
        );
    }
    // A truncated tree fixture is an error, not a partial profile.
    let err = ingest_raw(&[("name", "app"), ("format", "tree")], None, &data[..1000]).unwrap_err();
    assert!(matches!(err, FormatError::Tree(_)), "{err}");
}
