//! Recordings written by a tiny test-only JFR writer, to reach what the
//! captured fixtures do not: uncompressed integers, several chunks, and
//! hostile metadata or constant pool chains.

use super::super::*;

const LONG: u64 = 20;
const INT: u64 = 21;
const BOOLEAN: u64 = 22;
const STRING: u64 = 23;
const SYMBOL: u64 = 30;
const CLASS: u64 = 31;
const METHOD: u64 = 32;
const FRAME: u64 = 33;
const STACK_TRACE: u64 = 34;
const THREAD_STATE: u64 = 35;
const EXECUTION_SAMPLE: u64 = 100;
const ACTIVE_SETTING: u64 = 101;
const EXTRA: u64 = 102;

/// Field: (name, type id, constant pool, array).
type Field = (&'static str, u64, bool, bool);

struct Writer {
    bytes: Vec<u8>,
    compressed: bool,
}

impl Writer {
    fn new(compressed: bool) -> Self {
        Self {
            bytes: Vec::new(),
            compressed,
        }
    }

    fn varint(&mut self, mut value: u64) {
        for _ in 0..8 {
            if value < 0x80 {
                self.bytes.push(value as u8);
                return;
            }
            self.bytes.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    fn long(&mut self, value: u64) {
        if self.compressed {
            self.varint(value);
        } else {
            self.bytes.extend_from_slice(&value.to_be_bytes());
        }
    }

    fn int(&mut self, value: u32) {
        if self.compressed {
            self.varint(u64::from(value));
        } else {
            self.bytes.extend_from_slice(&value.to_be_bytes());
        }
    }

    fn byte(&mut self, value: u8) {
        self.bytes.push(value);
    }

    fn string(&mut self, text: &str) {
        self.byte(3);
        self.int(text.len() as u32);
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// Wraps `body` (type id first) as an event with a 4-byte size field.
    fn event(&mut self, body: &[u8]) {
        let size = (body.len() + 4) as u32;
        if self.compressed {
            self.bytes.extend_from_slice(&[
                (size & 0x7f) as u8 | 0x80,
                ((size >> 7) & 0x7f) as u8 | 0x80,
                ((size >> 14) & 0x7f) as u8 | 0x80,
                ((size >> 21) & 0x7f) as u8,
            ]);
        } else {
            self.bytes.extend_from_slice(&size.to_be_bytes());
        }
        self.bytes.extend_from_slice(body);
    }

    fn body(&self) -> Writer {
        Writer::new(self.compressed)
    }
}

fn standard_classes() -> Vec<(u64, &'static str, Vec<Field>)> {
    vec![
        (LONG, "long", vec![]),
        (INT, "int", vec![]),
        (BOOLEAN, "boolean", vec![]),
        (STRING, "java.lang.String", vec![]),
        (
            SYMBOL,
            "jdk.types.Symbol",
            vec![("string", STRING, false, false)],
        ),
        (
            CLASS,
            "java.lang.Class",
            vec![("name", SYMBOL, true, false)],
        ),
        (
            METHOD,
            "jdk.types.Method",
            vec![("type", CLASS, true, false), ("name", SYMBOL, true, false)],
        ),
        (
            FRAME,
            "jdk.types.StackFrame",
            vec![
                ("method", METHOD, true, false),
                ("lineNumber", INT, false, false),
            ],
        ),
        (
            STACK_TRACE,
            "jdk.types.StackTrace",
            vec![
                ("truncated", BOOLEAN, false, false),
                ("frames", FRAME, false, true),
            ],
        ),
        (
            THREAD_STATE,
            "jdk.types.ThreadState",
            vec![("name", STRING, false, false)],
        ),
        (
            EXECUTION_SAMPLE,
            "jdk.ExecutionSample",
            vec![
                ("startTime", LONG, false, false),
                ("stackTrace", STACK_TRACE, true, false),
                ("state", THREAD_STATE, true, false),
            ],
        ),
        (
            ACTIVE_SETTING,
            "jdk.ActiveSetting",
            vec![
                ("name", STRING, false, false),
                ("value", STRING, false, false),
            ],
        ),
    ]
}

fn metadata_event(w: &Writer, classes: &[(u64, &'static str, Vec<Field>)]) -> Vec<u8> {
    let mut strings: Vec<String> = Vec::new();
    let mut index = |text: &str| -> u32 {
        if let Some(position) = strings.iter().position(|s| s == text) {
            return position as u32;
        }
        strings.push(text.to_owned());
        (strings.len() - 1) as u32
    };
    // Element tree as (name, attributes, children) with string indexes.
    struct Element {
        name: u32,
        attributes: Vec<(u32, u32)>,
        children: Vec<Element>,
    }
    let mut class_elements = Vec::new();
    for (id, name, fields) in classes {
        let mut children = Vec::new();
        for (field_name, type_id, constant_pool, array) in fields {
            let mut attributes = vec![
                (index("name"), index(field_name)),
                (index("class"), index(&type_id.to_string())),
            ];
            if *constant_pool {
                attributes.push((index("constantPool"), index("true")));
            }
            if *array {
                attributes.push((index("dimension"), index("1")));
            }
            children.push(Element {
                name: index("field"),
                attributes,
                children: vec![],
            });
        }
        class_elements.push(Element {
            name: index("class"),
            attributes: vec![
                (index("id"), index(&id.to_string())),
                (index("name"), index(name)),
            ],
            children,
        });
    }
    let root = Element {
        name: index("root"),
        attributes: vec![],
        children: vec![Element {
            name: index("metadata"),
            attributes: vec![],
            children: class_elements,
        }],
    };
    fn write_element(w: &mut Writer, element: &Element) {
        w.int(element.name);
        w.int(element.attributes.len() as u32);
        for (key, value) in &element.attributes {
            w.int(*key);
            w.int(*value);
        }
        w.int(element.children.len() as u32);
        for child in &element.children {
            write_element(w, child);
        }
    }
    let mut body = w.body();
    body.long(0); // type: metadata
    body.long(0);
    body.long(0);
    body.long(0);
    body.int(strings.len() as u32);
    for text in &strings {
        body.string(text);
    }
    write_element(&mut body, &root);
    body.bytes
}

/// One pool of a constant pool event: type id and (index, value bytes).
type Pool = (u64, Vec<(u64, Vec<u8>)>);

fn constant_pool_event(w: &Writer, delta: i64, pools: &[Pool]) -> Vec<u8> {
    let mut body = w.body();
    body.long(1); // type: constant pool
    body.long(0);
    body.long(0);
    body.long(delta as u64);
    body.byte(1);
    body.int(pools.len() as u32);
    for (type_id, entries) in pools {
        body.long(*type_id);
        body.int(entries.len() as u32);
        for (index, value) in entries {
            body.long(*index);
            body.bytes.extend_from_slice(value);
        }
    }
    body.bytes
}

/// The pools naming two frames (`a/B.leaf` line 7 and `a/B.run` line -1)
/// with ids shifted by `base`, one stack trace and two thread states.
fn standard_pools(w: &Writer, base: u64) -> Vec<Pool> {
    let value = |write: &dyn Fn(&mut Writer)| {
        let mut v = w.body();
        write(&mut v);
        v.bytes
    };
    vec![
        (
            SYMBOL,
            vec![
                (base + 1, value(&|v| v.string("a/B"))),
                (base + 2, value(&|v| v.string("leaf"))),
                (base + 3, value(&|v| v.string("run"))),
            ],
        ),
        (CLASS, vec![(base + 1, value(&|v| v.long(base + 1)))]),
        (
            METHOD,
            vec![
                (
                    base + 1,
                    value(&|v| {
                        v.long(base + 1);
                        v.long(base + 2);
                    }),
                ),
                (
                    base + 2,
                    value(&|v| {
                        v.long(base + 1);
                        v.long(base + 3);
                    }),
                ),
            ],
        ),
        (
            STACK_TRACE,
            vec![(
                base + 1,
                value(&|v| {
                    v.byte(0);
                    v.int(2);
                    v.long(base + 1);
                    v.int(7);
                    v.long(base + 2);
                    v.int(u32::MAX);
                }),
            )],
        ),
        (
            THREAD_STATE,
            vec![
                (base + 1, value(&|v| v.string("STATE_RUNNABLE"))),
                (base + 2, value(&|v| v.string("STATE_SLEEPING"))),
            ],
        ),
    ]
}

/// A chunk with the given metadata classes, one constant pool event and
/// events; `events` get the writer to encode their bodies.
fn chunk(
    compressed: bool,
    classes: &[(u64, &'static str, Vec<Field>)],
    pools: &[Pool],
    events: &[Vec<u8>],
) -> Vec<u8> {
    let mut w = Writer::new(compressed);
    let metadata = metadata_event(&w, classes);
    let metadata_offset = 68u64;
    w.event(&metadata);
    let constant_pool_offset = 68 + w.bytes.len() as u64;
    let pool_event = constant_pool_event(&w, 0, pools);
    w.event(&pool_event);
    for event in events {
        w.event(event);
    }
    let size = 68 + w.bytes.len() as u64;
    let mut chunk = b"FLR\0".to_vec();
    chunk.extend_from_slice(&2u16.to_be_bytes());
    chunk.extend_from_slice(&0u16.to_be_bytes());
    for value in [
        size,
        constant_pool_offset,
        metadata_offset,
        0,
        0,
        0,
        1_000_000_000,
    ] {
        chunk.extend_from_slice(&value.to_be_bytes());
    }
    chunk.extend_from_slice(&u32::from(compressed).to_be_bytes());
    chunk.extend_from_slice(&w.bytes);
    chunk
}

fn execution_sample(w: &Writer, stack: u64, state: u64) -> Vec<u8> {
    let mut body = w.body();
    body.long(EXECUTION_SAMPLE);
    body.long(12345);
    body.long(stack);
    body.long(state);
    body.bytes
}

fn setting(w: &Writer, name: &str, value: &str) -> Vec<u8> {
    let mut body = w.body();
    body.long(ACTIVE_SETTING);
    body.string(name);
    body.string(value);
    body.bytes
}

fn standard_chunk(compressed: bool, base: u64) -> Vec<u8> {
    let w = Writer::new(compressed);
    chunk(
        compressed,
        &standard_classes(),
        &standard_pools(&w, base),
        &[
            setting(&w, "event", "wall"),
            execution_sample(&w, base + 1, base + 1),
            execution_sample(&w, base + 1, base + 2),
            execution_sample(&w, base + 1, base + 1),
            // Missing stack trace: dropped.
            execution_sample(&w, base + 9, base + 1),
        ],
    )
}

fn collapsed(profile: &JfrProfile) -> Vec<(String, Vec<i64>)> {
    let mut stacks: Vec<(String, Vec<i64>)> =
        super::collapse(&profile.profile).into_iter().collect();
    stacks.sort();
    stacks
}

#[test]
fn jfr_reads_compressed_and_uncompressed_integers_alike() {
    for compressed in [true, false] {
        let profiles = parse_jfr(&standard_chunk(compressed, 0), None, &super::options()).unwrap();
        let kinds: Vec<&str> = profiles.iter().map(|p| p.metric.as_str()).collect();
        assert_eq!(kinds, ["process_cpu", "wall"], "compressed: {compressed}");
        assert!(profiles.iter().all(|p| p.jfr_event == "wall"));
        let stack = "a/B.run:4294967295;a/B.leaf:7".to_owned();
        assert_eq!(
            collapsed(&profiles[0]),
            [(stack.clone(), vec![2 * super::PERIOD])]
        );
        assert_eq!(collapsed(&profiles[1]), [(stack, vec![3 * super::PERIOD])]);
    }
}

#[test]
fn jfr_merges_samples_across_chunks_with_their_own_pool_ids() {
    let mut recording = standard_chunk(true, 0);
    recording.extend(standard_chunk(false, 1000));
    let profiles = parse_jfr(&recording, None, &super::options()).unwrap();
    let cpu = &profiles[0];
    assert_eq!(cpu.profile.sample.len(), 1);
    assert_eq!(cpu.profile.sample[0].value, [4 * super::PERIOD]);
    assert_eq!(cpu.profile.function.len(), 2);
    // A broken second chunk names its index.
    let mut broken = standard_chunk(true, 0);
    let second = standard_chunk(true, 0);
    broken.extend_from_slice(&second[..second.len() - 1]);
    let error = parse_jfr(&broken, None, &super::options()).unwrap_err();
    assert!(
        matches!(error, JfrError::ReadChunk { chunk_index: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn jfr_rejects_a_looping_constant_pool_chain() {
    let w = Writer::new(true);
    let encode = |delta: i64| {
        let mut event = Writer::new(true);
        event.event(&constant_pool_event(&w, delta, &[]));
        event.bytes
    };
    // Two pool events pointing at each other; the header points at the
    // first.
    let mut recording = chunk(true, &standard_classes(), &[], &[]);
    let first_len = encode(0).len() as i64;
    let first = encode(first_len);
    assert_eq!(first.len() as i64, first_len);
    let first_offset = recording.len() as u64;
    recording.extend(first);
    recording.extend(encode(-first_len));
    let size = recording.len() as u64;
    recording[8..16].copy_from_slice(&size.to_be_bytes());
    recording[16..24].copy_from_slice(&first_offset.to_be_bytes());
    let error = parse_jfr(&recording, None, &super::options()).unwrap_err();
    assert!(
        matches!(
            error,
            JfrError::ReadChunk {
                source: JfrDecodeError::ConstantPoolCycle { .. },
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn jfr_bounds_recursive_and_exploding_types() {
    let w = Writer::new(true);
    // A struct containing itself inline.
    let mut classes = standard_classes();
    classes.push((EXTRA, "test.Loop", vec![("next", EXTRA, false, false)]));
    classes.push((103, "test.Event", vec![("loop", EXTRA, false, false)]));
    let pools: Vec<Pool> = vec![(EXTRA, vec![(1, vec![])])];
    let error =
        parse_jfr(&chunk(true, &classes, &pools, &[]), None, &super::options()).unwrap_err();
    assert!(
        matches!(
            error,
            JfrError::ReadChunk {
                source: JfrDecodeError::LimitExceeded {
                    what: "nesting depth of values",
                    ..
                },
                ..
            }
        ),
        "{error:?}"
    );

    // Fieldless structs doubling at every level: 2^13 values per element,
    // read from an array whose elements take no bytes.
    let mut classes = standard_classes();
    for level in 0..13u64 {
        let child = EXTRA + level + 1;
        classes.push((
            EXTRA + level,
            "test.Fan",
            vec![("a", child, false, false), ("b", child, false, false)],
        ));
    }
    classes.push((EXTRA + 13, "test.Empty", vec![]));
    classes.push((
        200,
        "jdk.ExecutionSample",
        vec![
            ("fans", EXTRA, false, true),
            ("stackTrace", STACK_TRACE, true, false),
        ],
    ));
    let mut event = w.body();
    event.long(200);
    event.int(1000);
    event.bytes.extend(std::iter::repeat_n(0u8, 1000));
    let classes_without_standard_sample: Vec<_> = classes
        .into_iter()
        .filter(|(id, _, _)| *id != EXECUTION_SAMPLE)
        .collect();
    let started = std::time::Instant::now();
    let error = parse_jfr(
        &chunk(true, &classes_without_standard_sample, &[], &[event.bytes]),
        None,
        &super::options(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            JfrError::ReadEvents {
                source: JfrDecodeError::LimitExceeded {
                    what: "number of decoded values",
                    ..
                },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn jfr_rejects_huge_counts_without_allocating() {
    let w = Writer::new(true);
    // A stack trace claiming 2^31 frames in a few bytes.
    let mut value = w.body();
    value.byte(0);
    value.int(1 << 31);
    let pools: Vec<Pool> = vec![(STACK_TRACE, vec![(1, value.bytes)])];
    let error = parse_jfr(
        &chunk(true, &standard_classes(), &pools, &[]),
        None,
        &super::options(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            JfrError::ReadChunk {
                source: JfrDecodeError::CountTooLarge { .. },
                ..
            }
        ),
        "{error:?}"
    );
}
