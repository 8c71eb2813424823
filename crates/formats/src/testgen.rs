//! A deterministic generator of realistic pprof profiles, for benchmarks
//! and load generation (`kiln bench ingest`, the `kiln-benches` criterion
//! benches). Not a supported API: it lives here, next to the pprof types,
//! so that both the `kiln` binary and the benches can use it without the
//! binary depending on benchmark tooling.
//!
//! A [`ServiceModel`] is one imaginary service: a few hundred to a few
//! thousand functions with language-flavoured names (Go, Java or Python by
//! service index), source files and lines, and a pool of call stacks that
//! share prefixes the way real call trees do (each new stack forks an
//! earlier one at a random depth and grows to about the configured depth).
//! A profile picks `stacks` stacks from the pool and gives them Zipf-like
//! weights (rank `r` gets about `1 / (r + 1)^1.1` of the samples), so a few
//! stacks dominate and a long tail has one or two samples, as in real CPU
//! profiles. [`ServiceModel::sampled`] instead gives the pool a stable
//! Zipf-like popularity and makes each profile from independent hits on it,
//! as a sampling profiler does, so the same stacks are hot in every profile
//! and the tail shows up now and then (long-range benchmarks want that: a
//! merged year looks like one profile, not like noise). Everything is driven
//! by [`Rng`] seeded by the caller, so the same seed gives the same bytes.

use kiln_proto::google::v1::{Function, Line, Location, Mapping, Profile, Sample, ValueType};
use rustc_hash::FxHashMap;

/// SplitMix64: tiny, fast and good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.next_u64() >> 11) % n as u64) as usize
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The shape of generated profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileShape {
    /// Distinct stacks (samples) per profile.
    pub stacks: usize,
    /// Typical stack depth; actual depths spread from half to one and a
    /// half times this.
    pub depth: usize,
}

impl Default for ProfileShape {
    fn default() -> Self {
        ProfileShape {
            stacks: 500,
            depth: 24,
        }
    }
}

/// CPU sampling period of generated profiles: 10 ms (100 Hz).
pub const PERIOD_NS: i64 = 10_000_000;

#[derive(Debug, Clone, Copy)]
enum Language {
    Go,
    Java,
    Python,
}

const PACKAGES: &[&str] = &[
    "http", "grpc", "storage", "cache", "auth", "codec", "query", "index", "sched", "metrics",
    "db", "json", "proto", "net", "io", "pool", "router", "billing", "search", "ledger",
];
const TYPES: &[&str] = &[
    "Server", "Handler", "Client", "Encoder", "Decoder", "Reader", "Writer", "Cache", "Index",
    "Pool", "Planner", "Executor", "Batch", "Session", "Conn", "Tx", "Iterator", "Registry",
];
const METHODS: &[&str] = &[
    "serve",
    "handle",
    "get",
    "put",
    "read",
    "write",
    "flush",
    "encode",
    "decode",
    "lookup",
    "merge",
    "scan",
    "next",
    "close",
    "run",
    "process",
    "apply",
    "compute",
    "sort",
    "hash",
    "validate",
    "marshal",
    "unmarshal",
    "dispatch",
    "resolve",
    "fetch",
    "commit",
    "append",
];
const GO_ROOTS: &[&str] = &[
    "runtime.goexit",
    "net/http.(*conn).serve",
    "net/http.serverHandler.ServeHTTP",
    "net/http.(*ServeMux).ServeHTTP",
];
const JAVA_ROOTS: &[&str] = &[
    "java.lang.Thread.run",
    "java.util.concurrent.ThreadPoolExecutor$Worker.run",
    "java.util.concurrent.ThreadPoolExecutor.runWorker",
];
const PYTHON_ROOTS: &[&str] = &[
    "<module> (app/main.py)",
    "run (threading.py)",
    "_bootstrap_inner (threading.py)",
];

/// One function of a model.
#[derive(Debug, Clone)]
struct FunctionDef {
    name: String,
    filename: String,
    start_line: i64,
}

/// One location of a model: a call site (function and line) at an address.
#[derive(Debug, Clone, Copy)]
struct LocationDef {
    function: u32,
    line: i64,
    address: u64,
}

/// An imaginary service whose profiles [`ServiceModel::profile`] makes.
#[derive(Debug, Clone)]
pub struct ServiceModel {
    name: String,
    language: Language,
    functions: Vec<FunctionDef>,
    locations: Vec<LocationDef>,
    /// Call stacks, root first, as indexes into `locations`.
    stacks: Vec<Vec<u32>>,
    shape: ProfileShape,
    /// Set for [`ServiceModel::sampled`] models.
    popularity: Option<Popularity>,
}

/// A stable popularity over a model's stacks, drawn from in O(1) with
/// Vose's alias method.
#[derive(Debug, Clone)]
struct Popularity {
    /// Per stack: the probability of keeping it when its column is drawn.
    keep: Vec<f64>,
    /// Per stack: the stack drawn instead when it is not kept.
    alias: Vec<u32>,
    /// Hits per profile.
    hits: usize,
}

impl Popularity {
    /// Stack `i` of `weights.len()` gets probability `weights[i] / sum`.
    fn new(weights: &[f64], hits: usize) -> Self {
        let n = weights.len();
        let sum: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / sum).collect();
        let mut keep = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Popularity { keep, alias, hits }
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let i = rng.below(self.keep.len());
        if rng.unit() < self.keep[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

impl ServiceModel {
    /// The model of service number `index`, derived from `seed`.
    pub fn new(seed: u64, index: usize, shape: ProfileShape) -> Self {
        Self::build(seed, index, shape, shape.stacks.max(1) * 2)
    }

    /// A model of service number `index` whose profiles are sampled from
    /// `pool` call stacks of stable Zipf-like popularity: the stack of rank
    /// `r` (ranks are a random permutation of the pool) is hit with
    /// probability proportional to `1 / (r + 1)^1.1`, and each profile is
    /// `hits` independent hits (e.g. 2000 for two busy cores over 10 s at
    /// 100 Hz), counted per stack. With 4000 stacks and 2000 hits a profile
    /// holds about 600 distinct stacks, the top one about 16% of the hits.
    pub fn sampled(seed: u64, index: usize, depth: usize, pool: usize, hits: usize) -> Self {
        let pool = pool.max(1);
        let shape = ProfileShape {
            stacks: pool.div_ceil(2),
            depth,
        };
        let mut model = Self::build(seed, index, shape, pool);
        let mut rng = Rng::new(seed ^ 0x00C0_FFEE ^ index as u64);
        let mut rank: Vec<usize> = (0..pool).collect();
        for i in (1..pool).rev() {
            rank.swap(i, rng.below(i + 1));
        }
        let weights: Vec<f64> = rank
            .iter()
            .map(|&r| 1.0 / ((r + 1) as f64).powf(1.1))
            .collect();
        model.popularity = Some(Popularity::new(&weights, hits.max(1)));
        model
    }

    fn build(seed: u64, index: usize, shape: ProfileShape, pool: usize) -> Self {
        let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(index as u64));
        let language = match index % 3 {
            0 => Language::Go,
            1 => Language::Java,
            _ => Language::Python,
        };
        let name = format!(
            "{}-{index}",
            ["api", "checkout", "search", "ledger"][index % 4]
        );
        let shape = ProfileShape {
            stacks: shape.stacks.max(1),
            depth: shape.depth.max(2),
        };
        let n_functions = (pool + 64).min(8_192);
        let mut functions = Vec::with_capacity(n_functions + 4);
        let roots = match language {
            Language::Go => GO_ROOTS,
            Language::Java => JAVA_ROOTS,
            Language::Python => PYTHON_ROOTS,
        };
        for r in roots {
            functions.push(FunctionDef {
                name: (*r).to_owned(),
                filename: root_file(language).to_owned(),
                start_line: 1 + rng.below(900) as i64,
            });
        }
        let mut seen = FxHashMap::default();
        while functions.len() < n_functions + roots.len() {
            let pkg = PACKAGES[rng.below(PACKAGES.len())];
            let ty = TYPES[rng.below(TYPES.len())];
            let method = METHODS[rng.below(METHODS.len())];
            let variant = rng.below(6);
            let f = function_names(language, &name, pkg, ty, method, variant);
            if seen.insert(f.0.clone(), ()).is_some() {
                continue;
            }
            functions.push(FunctionDef {
                name: f.0,
                filename: f.1,
                start_line: 10 + rng.below(2_000) as i64,
            });
        }
        // One to three call sites per function.
        let mut locations = Vec::new();
        let mut by_function: Vec<Vec<u32>> = vec![Vec::new(); functions.len()];
        let mut address = 0x40_0000u64;
        for (i, f) in functions.iter().enumerate() {
            for _ in 0..1 + rng.below(3) {
                address += 16 + rng.below(4096) as u64;
                by_function[i].push(locations.len() as u32);
                locations.push(LocationDef {
                    function: i as u32,
                    line: f.start_line + rng.below(120) as i64,
                    address,
                });
            }
        }
        let pick = |rng: &mut Rng, f: usize| -> u32 {
            let sites = &by_function[f];
            sites[rng.below(sites.len())]
        };
        // The pool: each stack forks an earlier one and grows from there.
        let mut stacks: Vec<Vec<u32>> = Vec::with_capacity(pool);
        while stacks.len() < pool {
            let target = shape.depth / 2 + rng.below(shape.depth + 1);
            let mut stack: Vec<u32> = if stacks.is_empty() {
                (0..roots.len().min(2)).map(|r| pick(&mut rng, r)).collect()
            } else {
                // Earlier stacks are forked more often: a skewed pick.
                let j = (rng.unit() * rng.unit() * stacks.len() as f64) as usize;
                let parent = &stacks[j.min(stacks.len() - 1)];
                let keep = 1 + rng.below(parent.len().min(target.max(2)));
                parent[..keep.min(parent.len())].to_vec()
            };
            while stack.len() < target.max(2) {
                let f = roots.len() + rng.below(functions.len() - roots.len());
                stack.push(pick(&mut rng, f));
            }
            stacks.push(stack);
        }
        ServiceModel {
            name,
            language,
            functions,
            locations,
            stacks,
            shape,
            popularity: None,
        }
    }

    /// Number of distinct call stacks profiles are made of.
    pub fn pool_size(&self) -> usize {
        self.stacks.len()
    }

    /// The service name (`service_name` label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A CPU profile (sample types `samples/count` and `cpu/nanoseconds`,
    /// period 10 ms) with `shape.stacks` samples of Zipf-like weights (or,
    /// for a [`ServiceModel::sampled`] model, the stacks its hits landed
    /// on), and only the functions, locations and strings those samples use.
    pub fn profile(&self, rng: &mut Rng, time_nanos: i64, duration_nanos: i64) -> Profile {
        let counts = match &self.popularity {
            Some(popularity) => self.sampled_counts(popularity, popularity.hits, rng),
            None => self.ranked_counts(rng),
        };
        self.profile_of_counts(&counts, time_nanos, duration_nanos)
    }

    /// (stack, count) of a profile of `hits` hits: draws from the
    /// popularity of a [`ServiceModel::sampled`] model (uniform over the
    /// pool for other models), in the order stacks were first hit. Stacks
    /// are indexes into the pool (`0..pool_size()`).
    pub fn sampled_stack_counts(&self, rng: &mut Rng, hits: usize) -> Vec<(usize, i64)> {
        match &self.popularity {
            Some(popularity) => self.sampled_counts(popularity, hits, rng),
            None => {
                let uniform = Popularity::new(&vec![1.0; self.stacks.len()], hits);
                self.sampled_counts(&uniform, hits, rng)
            }
        }
    }

    /// The CPU profile whose samples are `counts` (stack of the pool, hit
    /// count): sample types `samples/count` and `cpu/nanoseconds` (count ×
    /// 10 ms), with only the functions, locations and strings they use.
    pub fn profile_of_counts(
        &self,
        counts: &[(usize, i64)],
        time_nanos: i64,
        duration_nanos: i64,
    ) -> Profile {
        let mut strings = StringTable::default();
        let samples_type = ValueType {
            r#type: strings.index("samples"),
            unit: strings.index("count"),
        };
        let cpu_type = ValueType {
            r#type: strings.index("cpu"),
            unit: strings.index("nanoseconds"),
        };
        let binary = strings.index(match self.language {
            Language::Go => "/usr/local/bin/server",
            Language::Java => "libjvm.so",
            Language::Python => "/usr/bin/python3.12",
        });
        let build_id = strings.index("3f1c2b7a9e0d4c55");
        let mut profile = Profile {
            sample_type: vec![samples_type, cpu_type],
            period_type: Some(cpu_type),
            period: PERIOD_NS,
            time_nanos,
            duration_nanos,
            mapping: vec![Mapping {
                id: 1,
                memory_start: 0x40_0000,
                memory_limit: 0x4000_0000,
                filename: binary,
                build_id,
                has_functions: true,
                has_filenames: true,
                has_line_numbers: true,
                ..Mapping::default()
            }],
            ..Profile::default()
        };
        let mut location_ids: FxHashMap<u32, u64> = FxHashMap::default();
        let mut function_ids: FxHashMap<u32, u64> = FxHashMap::default();
        for &(s, count) in counts {
            let mut location_id = Vec::with_capacity(self.stacks[s].len());
            // pprof stores the leaf first.
            for &loc in self.stacks[s].iter().rev() {
                let next_id = location_ids.len() as u64 + 1;
                let id = *location_ids.entry(loc).or_insert_with(|| {
                    let l = self.locations[loc as usize];
                    let next_fn = function_ids.len() as u64 + 1;
                    let fid = *function_ids.entry(l.function).or_insert_with(|| {
                        let f = &self.functions[l.function as usize];
                        let name = strings.index(&f.name);
                        profile.function.push(Function {
                            id: next_fn,
                            name,
                            system_name: name,
                            filename: strings.index(&f.filename),
                            start_line: f.start_line,
                        });
                        next_fn
                    });
                    profile.location.push(Location {
                        id: next_id,
                        mapping_id: 1,
                        address: l.address,
                        line: vec![Line {
                            function_id: fid,
                            line: l.line,
                        }],
                        is_folded: false,
                    });
                    next_id
                });
                location_id.push(id);
            }
            profile.sample.push(Sample {
                location_id,
                value: vec![count, count * PERIOD_NS],
                label: Vec::new(),
            });
        }
        profile.string_table = strings.strings;
        profile
    }

    /// (stack, count) of a profile: a random subset of `shape.stacks` stacks
    /// with Zipf-like weights by their rank in the subset.
    fn ranked_counts(&self, rng: &mut Rng) -> Vec<(usize, i64)> {
        let mut picked: Vec<usize> = (0..self.stacks.len()).collect();
        // Partial Fisher-Yates: the first `stacks` entries are a random subset.
        let n = self.shape.stacks.min(picked.len());
        for i in 0..n {
            let j = i + rng.below(picked.len() - i);
            picked.swap(i, j);
        }
        let scale = 2_000.0;
        picked[..n]
            .iter()
            .enumerate()
            .map(|(rank, &s)| {
                let weight = scale / ((rank + 1) as f64).powf(1.1) * (0.5 + rng.unit());
                (s, (weight as i64).max(1))
            })
            .collect()
    }

    /// (stack, count) of a sampled profile: `hits` draws from the
    /// popularity, in the order stacks were first hit.
    fn sampled_counts(
        &self,
        popularity: &Popularity,
        hits: usize,
        rng: &mut Rng,
    ) -> Vec<(usize, i64)> {
        // slot[s] = 1 + index of stack s in `counts` (0 = not hit yet).
        let mut slot: Vec<u32> = vec![0; popularity.keep.len()];
        let mut counts: Vec<(usize, i64)> = Vec::new();
        for _ in 0..hits {
            let s = popularity.draw(rng);
            if slot[s] == 0 {
                counts.push((s, 0));
                slot[s] = counts.len() as u32;
            }
            counts[slot[s] as usize - 1].1 += 1;
        }
        counts
    }

    /// A profile in folded text (`root;...;leaf count` lines), with the same
    /// stack choice and weights as [`ServiceModel::profile`].
    pub fn folded(&self, rng: &mut Rng) -> String {
        let p = self.profile(rng, 0, 0);
        let mut out = String::new();
        for s in &p.sample {
            for (i, id) in s.location_id.iter().rev().enumerate() {
                if i > 0 {
                    out.push(';');
                }
                let loc = &p.location[*id as usize - 1];
                let f = &p.function[loc.line[0].function_id as usize - 1];
                out.push_str(&p.string_table[f.name as usize]);
            }
            out.push(' ');
            out.push_str(&s.value[0].to_string());
            out.push('\n');
        }
        out
    }
}

fn root_file(language: Language) -> &'static str {
    match language {
        Language::Go => "/usr/local/go/src/runtime/asm_amd64.s",
        Language::Java => "Thread.java",
        Language::Python => "threading.py",
    }
}

/// (function name, file name) in the style of `language`.
fn function_names(
    language: Language,
    service: &str,
    pkg: &str,
    ty: &str,
    method: &str,
    variant: usize,
) -> (String, String) {
    let svc = service.replace('-', "");
    match language {
        Language::Go => {
            let mut m = method.to_owned();
            if let Some(c) = m.get_mut(0..1) {
                c.make_ascii_uppercase();
            }
            let name = match variant {
                0 => format!("github.com/acme/{svc}/internal/{pkg}.(*{ty}).{m}"),
                1 => format!("github.com/acme/{svc}/internal/{pkg}.{ty}.{m}"),
                2 => format!("github.com/acme/{svc}/internal/{pkg}.(*{ty}).{m}.func1"),
                3 => format!("github.com/acme/{svc}/pkg/{pkg}.{m}{ty}"),
                4 => format!("google.golang.org/grpc/internal/{pkg}.(*{ty}).{m}"),
                _ => format!("github.com/acme/{svc}/internal/{pkg}.(*{ty}).{m}Locked"),
            };
            let file = format!(
                "/src/github.com/acme/{svc}/internal/{pkg}/{}.go",
                ty.to_ascii_lowercase()
            );
            (name, file)
        }
        Language::Java => {
            let name = match variant {
                0 => format!("com.acme.{svc}.{pkg}.{ty}.{method}"),
                1 => format!("com.acme.{svc}.{pkg}.{ty}.{method}Internal"),
                2 => format!("com.acme.{svc}.{pkg}.Default{ty}.{method}"),
                3 => format!("com.acme.{svc}.{pkg}.{ty}$Inner.{method}"),
                4 => format!("io.netty.{pkg}.{ty}.{method}"),
                _ => format!("com.acme.{svc}.{pkg}.{ty}.lambda${method}$0"),
            };
            (name, format!("{ty}.java"))
        }
        Language::Python => {
            let file = format!("{svc}/{pkg}/{}.py", ty.to_ascii_lowercase());
            let name = match variant {
                0 | 1 => format!("{method} ({file})"),
                2 => format!("{ty}.{method} ({file})"),
                3 => format!("_{method}_impl ({file})"),
                4 => format!("{method}_{pkg} ({file})"),
                _ => format!("{ty}.__{method}__ ({file})"),
            };
            (name, file)
        }
    }
}

#[derive(Debug)]
struct StringTable {
    strings: Vec<String>,
    index: FxHashMap<String, i64>,
}

impl Default for StringTable {
    fn default() -> Self {
        let mut index = FxHashMap::default();
        index.insert(String::new(), 0);
        StringTable {
            strings: vec![String::new()],
            index,
        }
    }
}

impl StringTable {
    fn index(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::pprof::{ValidationMode, validate};

    #[test]
    fn profiles_are_valid_deterministic_and_skewed() {
        let model = ServiceModel::new(7, 1, ProfileShape::default());
        let a = model.profile(&mut Rng::new(1), 1, 10);
        let b = model.profile(&mut Rng::new(1), 1, 10);
        assert_eq!(a, b);
        validate(&a, ValidationMode::Push, &Limits::default()).unwrap();
        assert_eq!(a.sample.len(), 500);
        let mut counts: Vec<i64> = a.sample.iter().map(|s| s.value[0]).collect();
        counts.sort_unstable_by(|x, y| y.cmp(x));
        let total: i64 = counts.iter().sum();
        let top: i64 = counts[..25].iter().sum();
        assert!(top * 2 > total, "top 5% of stacks hold most samples");
        let depth: usize = a.sample.iter().map(|s| s.location_id.len()).sum();
        let mean = depth / a.sample.len();
        assert!((12..=36).contains(&mean), "mean depth {mean}");
        let folded = model.folded(&mut Rng::new(2));
        assert_eq!(folded.lines().count(), 500);
    }

    #[test]
    fn sampled_profiles_share_their_hot_stacks() {
        let model = ServiceModel::sampled(7, 0, 24, 4000, 2000);
        assert_eq!(model.pool_size(), 4000);
        let a = model.profile(&mut Rng::new(1), 1, 10);
        assert_eq!(a, model.profile(&mut Rng::new(1), 1, 10));
        validate(&a, ValidationMode::Push, &Limits::default()).unwrap();
        let hits: i64 = a.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(hits, 2000);
        assert!(
            (400..900).contains(&a.sample.len()),
            "{} distinct stacks",
            a.sample.len()
        );
        // The hottest stack of one profile is among the hot stacks of another.
        let top = |p: &Profile| {
            let s = p.sample.iter().max_by_key(|s| s.value[0]).unwrap();
            folded_stack(p, s)
        };
        let b = model.profile(&mut Rng::new(2), 1, 10);
        let hot_b: Vec<String> = b
            .sample
            .iter()
            .filter(|s| s.value[0] >= 20)
            .map(|s| folded_stack(&b, s))
            .collect();
        assert!(hot_b.contains(&top(&a)));
    }

    fn folded_stack(p: &Profile, s: &Sample) -> String {
        s.location_id
            .iter()
            .rev()
            .map(|id| {
                let loc = &p.location[*id as usize - 1];
                let f = &p.function[loc.line[0].function_id as usize - 1];
                p.string_table[f.name as usize].clone()
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}
