//! Time units and compaction levels shared by the metastore's compaction
//! planner, the compactor, ingesters and queriers (`docs/block-format.md`,
//! "Levels, roll-up tiers and coverage"). Times are nanoseconds.

/// One minute, in ns.
pub const MINUTE: i64 = 60_000_000_000;
/// One hour, in ns.
pub const HOUR: i64 = 60 * MINUTE;
/// One day, in ns.
pub const DAY: i64 = 24 * HOUR;

/// The roll-up resolutions written for every compacted day.
pub const TIER_RESOLUTIONS: [i64; 3] = [MINUTE, HOUR, DAY];

/// Level of the segments ingesters write.
pub const SEGMENT_LEVEL: u32 = 0;
/// Level of the blocks a segment merge writes (part of an hour).
pub const SEGMENT_MERGE_LEVEL: u32 = 1;
/// Level of the raw hour blocks the hour merge writes.
pub const HOUR_LEVEL: u32 = 2;
/// Level of the raw day blocks the day job writes, and of the day's
/// roll-ups written with them.
pub const DAY_LEVEL: u32 = 3;
