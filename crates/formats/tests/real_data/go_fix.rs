//! The Go fixes in `normalize` on Pyroscope's truncated-stack fixture: the
//! repaired profile must equal Pyroscope's `.fixed` output stack for stack.

use super::*;

const TRUNCATED: &str = "pprof/cpu_go_truncated_1.pb.gz";
const FIXED: &str = "pprof/cpu_go_truncated_1.pb.gz.fixed";

fn push_go_cpu(labels: &[LabelPair]) -> Vec<SeriesProfile> {
    profiles_from_push_series(labels, &read(TRUNCATED), &Limits::default(), NOW).unwrap()
}

#[test]
fn truncated_go_cpu_stacks_are_repaired_like_pyroscope() {
    let expected = raw_profile(FIXED);
    let original = raw_profile(TRUNCATED);
    // detected from the runtime frames alone, and from the spy label
    for labels in [
        vec![pair("__name__", "process_cpu")],
        vec![
            pair("__name__", "process_cpu"),
            pair("pyroscope_spy", "gospy"),
        ],
    ] {
        let out = push_go_cpu(&labels);
        assert_invariants(&out);
        for column in 0..2 {
            let got = resolved_stacks_of(out.iter().map(|sp| &sp.profile), column);
            let want = resolved_stacks(&expected, column);
            assert_eq!(got.len(), want.len(), "column {column}");
            assert!(got == want, "column {column}: stacks differ from .fixed");
        }
    }
    // the fixture really needs repairing: the input differs from .fixed
    assert_ne!(resolved_stacks(&original, 1), resolved_stacks(&expected, 1));
    // and the repair keeps totals
    let out = push_go_cpu(&[pair("__name__", "process_cpu")]);
    assert_eq!(output_sums(&out), raw_sums(&original));
}

#[test]
fn non_go_profiles_are_not_repaired() {
    // Declared as Java: the same bytes keep their truncated stacks and
    // their type parameters.
    let out = push_go_cpu(&[
        pair("__name__", "process_cpu"),
        pair("pyroscope_spy", "javaspy"),
    ]);
    let got = resolved_stacks_of(out.iter().map(|sp| &sp.profile), 1);
    let original = resolved_stacks(&raw_profile(TRUNCATED), 1);
    assert_eq!(got, original);
}
