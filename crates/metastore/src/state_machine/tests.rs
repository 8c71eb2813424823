use kiln_proto::kiln::metastore::v1::{
    AddBlockRequest, ApplyRetentionRequest, BlockMeta, CompleteJobRequest, Coverage, JobKind,
    PollJobsRequest, PurgeTombstonesRequest, RetentionRule,
};

use super::*;
use crate::compaction::{DAY, HOUR, MINUTE};

const MS: i64 = 1_000_000;
/// 2026-01-01T00:00:00Z in ms.
const T0: i64 = 1_767_225_600_000;

fn cmd(t: i64, kind: Kind) -> Command {
    Command {
        timestamp: t,
        kind: Some(kind),
    }
}

fn block(id: &str, tenant: &str, level: u32, min_ms: i64, max_ms: i64) -> BlockMeta {
    BlockMeta {
        id: id.into(),
        tenant: tenant.into(),
        object_key: format!("{tenant}/{id}.block"),
        level,
        min_time: min_ms * MS,
        max_time: max_ms * MS,
        created_at: max_ms,
        ..Default::default()
    }
}

fn add(sm: &mut StateMachine, b: BlockMeta) {
    sm.apply(&cmd(0, Kind::AddBlock(AddBlockRequest { block: Some(b) })));
}

fn poll(sm: &mut StateMachine, worker: &str, t: i64) -> Vec<Job> {
    match sm.apply(&cmd(
        t,
        Kind::PollJobs(PollJobsRequest {
            worker: worker.into(),
            capacity: 10,
            policy: Some(default_policy()),
        }),
    )) {
        Applied::Jobs(j) => j,
        other => panic!("{other:?}"),
    }
}

fn complete(sm: &mut StateMachine, job: &Job, out: Vec<BlockMeta>, t: i64) -> (bool, String) {
    match sm.apply(&cmd(
        t,
        Kind::CompleteJob(CompleteJobRequest {
            job_id: job.id.clone(),
            token: job.token,
            blocks: out,
        }),
    )) {
        Applied::Completed { accepted, reason } => (accepted, reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn apply_is_deterministic_and_snapshots_round_trip() {
    let mut cmds = Vec::new();
    for i in 0..25 {
        cmds.push(cmd(
            T0 + i,
            Kind::AddBlock(AddBlockRequest {
                block: Some(block(
                    &format!("s{i}"),
                    "t",
                    0,
                    T0 + i * 1000,
                    T0 + i * 1000 + 900,
                )),
            }),
        ));
    }
    cmds.push(cmd(
        T0 + 60_000,
        Kind::PollJobs(PollJobsRequest {
            worker: "w".into(),
            capacity: 1,
            policy: Some(default_policy()),
        }),
    ));
    let mut x = StateMachine::default();
    let mut y = StateMachine::default();
    let rx: Vec<_> = cmds.iter().map(|c| x.apply(c)).collect();
    let ry: Vec<_> = cmds.iter().map(|c| y.apply(c)).collect();
    assert_eq!(rx, ry);
    assert_eq!(x.snapshot(), y.snapshot());
    let z = StateMachine::restore(x.snapshot());
    assert_eq!(z.snapshot(), x.snapshot());
    assert_eq!(z.jobs().count(), 1);
}

#[test]
fn heartbeats_keep_the_join_time_and_stamp_the_command_time() {
    let hb = |t: i64, addr: &str| {
        cmd(
            t,
            Kind::Heartbeat(Member {
                id: "i1".into(),
                addr: addr.into(),
                ..Default::default()
            }),
        )
    };
    let mut sm = StateMachine::default();
    sm.apply(&hb(100, "a:1"));
    sm.apply(&hb(200, "a:2"));
    let m: Vec<_> = sm.members().collect();
    assert_eq!(
        (m[0].joined, m[0].last_heartbeat, m[0].addr.as_str()),
        (100, 200, "a:2")
    );
    assert_eq!(StateMachine::restore(sm.snapshot()).members().count(), 1);
}

#[test]
fn segments_merge_and_leases_are_fenced() {
    let mut sm = StateMachine::default();
    for i in 0..5 {
        add(
            &mut sm,
            block(&format!("s{i}"), "t", 0, T0 + i * 1000, T0 + i * 1000 + 900),
        );
    }
    // Five young segments: nothing to do yet.
    assert!(poll(&mut sm, "w1", T0 + 10_000).is_empty());
    // Thirty seconds later the oldest is due: one job with all five.
    let jobs = poll(&mut sm, "w1", T0 + 40_000);
    assert_eq!(jobs.len(), 1);
    let job = jobs[0].clone();
    assert_eq!(
        (job.kind, job.target_level, job.sources.len()),
        (JobKind::Merge as i32, 1, 5)
    );
    assert_eq!(job.source_blocks.len(), 5);
    // Another worker gets nothing while the lease holds...
    assert!(poll(&mut sm, "w2", T0 + 50_000).is_empty());
    // ...and the same job with a new token once it ran out.
    let stolen = poll(&mut sm, "w2", T0 + 40_000 + 61_000);
    assert_eq!(stolen.len(), 1);
    assert_eq!(stolen[0].id, job.id);
    assert!(stolen[0].token > job.token);
    // The first worker's late commit is refused; the second one's wins.
    let out = block("m1", "t", 1, T0, T0 + 4900);
    let (ok, reason) = complete(&mut sm, &job, vec![out.clone()], T0 + 102_000);
    assert!(!ok && reason.contains("stale"), "{reason}");
    assert_eq!(
        complete(&mut sm, &stolen[0], vec![out.clone()], T0 + 103_000),
        (true, String::new())
    );
    let ids: Vec<&str> = sm.index().iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, vec!["m1"]);
    assert_eq!(sm.tombstones().count(), 5);
    assert!(sm.tombstones().all(|t| t.deleted_at == T0 + 103_000));
    // A second commit of the same job finds no job.
    assert!(!complete(&mut sm, &stolen[0], vec![out], T0 + 104_000).0);
    // Purging forgets the tombstones.
    let keys: Vec<String> = sm.tombstones().map(|t| t.object_key.clone()).collect();
    sm.apply(&cmd(
        T0,
        Kind::PurgeTombstones(PurgeTombstonesRequest { object_keys: keys }),
    ));
    assert_eq!(sm.tombstones().count(), 0);
}

#[test]
fn finished_days_become_one_block_and_tiers_merge() {
    let mut sm = StateMachine::default();
    let day = T0;
    for h in 0..3 {
        add(
            &mut sm,
            block(
                &format!("h{h}"),
                "t",
                2,
                day + h * 3_600_000,
                day + h * 3_600_000 + 3_599_000,
            ),
        );
    }
    add(
        &mut sm,
        block(
            "late",
            "t",
            0,
            day + 10 * 3_600_000,
            day + 10 * 3_600_000 + 500,
        ),
    );
    // Before the day's grace period: only the hour job of the late segment.
    let jobs = poll(&mut sm, "w", day + DAY / MS + 60_000);
    assert!(
        jobs.iter().all(|j| j.kind == JobKind::Merge as i32),
        "{jobs:?}"
    );
    // Give the hour job back unchanged (its lease runs out), then after the
    // grace the day job takes every raw block of the day.
    sm.jobs.clear();
    let jobs = poll(&mut sm, "w", day + DAY / MS + 3 * 3_600_000);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].kind, JobKind::Day as i32);
    assert_eq!(jobs[0].sources.len(), 4);
    let raw = block("raw0", "t", 3, day, day + 86_399_000);
    let tier = |id: &str, res: i64| BlockMeta {
        resolution: res,
        coverage: vec![Coverage {
            start: day * MS,
            end: day * MS + DAY,
            raw_block: "raw0".into(),
        }],
        ..block(id, "t", 3, day, day + 86_399_000)
    };
    let out = vec![raw, tier("m", MINUTE), tier("h", HOUR), tier("d", DAY)];
    assert!(complete(&mut sm, &jobs[0], out, day + DAY / MS + 3 * 3_600_000 + 1).0);
    assert_eq!(sm.index().len(), 4);
    // Nothing more to do for that day.
    assert!(poll(&mut sm, "w", day + DAY / MS + 4 * 3_600_000).is_empty());
    // Once four days of tiers exist, the hour and day tiers merge into
    // 16-day blocks (the minute tier stays per day).
    for d in 1..4 {
        let start = day + d * 86_400_000;
        for (id, res) in [("h", HOUR), ("d", DAY)] {
            add(
                &mut sm,
                BlockMeta {
                    resolution: res,
                    coverage: vec![Coverage {
                        start: start * MS,
                        end: start * MS + DAY,
                        raw_block: format!("r{d}"),
                    }],
                    ..block(&format!("{id}{d}"), "t", 3, start, start + 86_399_000)
                },
            );
        }
    }
    let jobs = poll(&mut sm, "w", day + 5 * DAY / MS);
    let tiers: Vec<_> = jobs
        .iter()
        .filter(|j| j.kind == JobKind::TierMerge as i32)
        .collect();
    assert_eq!(tiers.len(), 2, "{jobs:?}");
    assert!(
        tiers
            .iter()
            .all(|j| j.target_level == 4 && j.sources.len() == 4)
    );
    let mut res: Vec<i64> = tiers.iter().map(|j| j.resolution).collect();
    res.sort();
    assert_eq!(res, vec![HOUR, DAY]);
}

#[test]
fn retention_removes_what_it_should_and_nothing_else() {
    let mut sm = StateMachine::default();
    let now = T0 + 100 * 86_400_000;
    add(&mut sm, block("old-raw", "a", 3, T0, T0 + 1000));
    add(
        &mut sm,
        block("new-raw", "a", 3, now - 86_400_000, now - 86_000_000),
    );
    add(
        &mut sm,
        BlockMeta {
            resolution: HOUR,
            ..block("old-hour-tier", "a", 3, T0, T0 + 1000)
        },
    );
    add(&mut sm, block("old-raw-b", "b", 3, T0, T0 + 1000));
    // Old raw data not yet through its day job (a segment and an hour
    // block): kept until the day job has written its roll-ups.
    add(&mut sm, block("old-segment", "a", 0, T0, T0 + 1000));
    add(&mut sm, block("old-hour-block", "a", 2, T0, T0 + 1000));
    let rules = vec![
        RetentionRule {
            tenant: String::new(),
            resolution: 0,
            max_age_ms: 30 * 86_400_000,
        },
        RetentionRule {
            tenant: String::new(),
            resolution: HOUR,
            max_age_ms: 365 * 86_400_000,
        },
        // Tenant b keeps raw data for 200 days.
        RetentionRule {
            tenant: "b".into(),
            resolution: 0,
            max_age_ms: 200 * 86_400_000,
        },
    ];
    let removed = sm.apply(&cmd(
        now,
        Kind::ApplyRetention(ApplyRetentionRequest { rules }),
    ));
    assert_eq!(removed, Applied::Removed(1));
    let mut ids: Vec<&str> = sm.index().iter().map(|b| b.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            "new-raw",
            "old-hour-block",
            "old-hour-tier",
            "old-raw-b",
            "old-segment"
        ]
    );
    assert_eq!(
        sm.tombstones()
            .map(|t| t.block_id.as_str())
            .collect::<Vec<_>>(),
        vec!["old-raw"]
    );
}
