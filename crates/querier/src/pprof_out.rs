//! Building a pprof profile from a merged tree whose frames are
//! function/file/line keys (see [`crate::resolve::FrameMode::FunctionLine`]).

use kiln_model::tree::{NodeId, ROOT};
use kiln_model::{ProfileType, StackTree};
use kiln_proto::google::v1::{Function, Line, Location, Mapping, Profile, Sample, ValueType};
use rustc_hash::FxHashMap;

use kiln_storage::resolve::KEY_SEP;

struct Strings {
    table: Vec<String>,
    index: FxHashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Strings {
            table: vec![String::new()],
            index: FxHashMap::from_iter([(String::new(), 0)]),
        }
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// The period Pyroscope reports for merged profiles of a type.
fn period_of(profile_type: &ProfileType) -> i64 {
    match profile_type.name.as_str() {
        "process_cpu" => 1_000_000_000,
        "memory" => 524_288,
        _ => 1,
    }
}

/// Converts a FunctionLine-mode tree into a pprof profile with one sample
/// type (the requested one).
pub(crate) fn tree_to_pprof(
    tree: &StackTree,
    profile_type: &ProfileType,
    time_nanos: i64,
    duration_nanos: i64,
) -> Profile {
    let mut strings = Strings::new();
    let sample_type = vec![ValueType {
        r#type: strings.get(&profile_type.sample_type),
        unit: strings.get(&profile_type.sample_unit),
    }];
    let period_type = Some(ValueType {
        r#type: strings.get(&profile_type.period_type),
        unit: strings.get(&profile_type.period_unit),
    });
    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: FxHashMap<(String, String, String), u64> = FxHashMap::default();
    let mut locations: Vec<Location> = Vec::new();
    // tree name id -> location id
    let mut location_of_name: FxHashMap<u32, u64> = FxHashMap::default();

    let mut location_for = |node: NodeId, strings: &mut Strings| -> u64 {
        let name_id = tree.name_of(node);
        if let Some(&l) = location_of_name.get(&name_id) {
            return l;
        }
        let key = tree.name(name_id);
        let mut parts = key.split(KEY_SEP);
        let name = parts.next().unwrap_or_default().to_owned();
        let system_name = parts.next().unwrap_or_default().to_owned();
        let filename = parts.next().unwrap_or_default().to_owned();
        let line: i64 = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let fkey = (name.clone(), system_name.clone(), filename.clone());
        let fid = match function_ids.get(&fkey) {
            Some(&id) => id,
            None => {
                let id = functions.len() as u64 + 1;
                functions.push(Function {
                    id,
                    name: strings.get(&name),
                    system_name: strings.get(if system_name.is_empty() {
                        &name
                    } else {
                        &system_name
                    }),
                    filename: strings.get(&filename),
                    start_line: 0,
                });
                function_ids.insert(fkey, id);
                id
            }
        };
        let id = locations.len() as u64 + 1;
        locations.push(Location {
            id,
            mapping_id: 1,
            address: 0,
            line: vec![Line {
                function_id: fid,
                line,
            }],
            is_folded: false,
        });
        location_of_name.insert(name_id, id);
        id
    };

    let mut samples = Vec::new();
    let n = tree.node_count() as NodeId;
    for node in 1..=n {
        let value = tree.self_value(node);
        if value == 0 {
            continue;
        }
        let mut ids = Vec::new();
        let mut cur = node;
        while cur != ROOT {
            ids.push(location_for(cur, &mut strings));
            cur = tree.parent(cur);
        }
        samples.push(Sample {
            location_id: ids,
            value: vec![value],
            label: vec![],
        });
    }
    let mapping = Mapping {
        id: 1,
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        ..Default::default()
    };
    let default_sample_type = sample_type[0].r#type;
    Profile {
        sample_type,
        sample: samples,
        mapping: vec![mapping],
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos,
        duration_nanos,
        period_type,
        period: period_of(profile_type),
        default_sample_type,
        ..Default::default()
    }
}
