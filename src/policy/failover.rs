//! The failover policy: the record's `regions` in the order written; the first usable
//! one wins. Independent of the client, so its ECS scope is 0.

use std::borrow::Cow;

use crate::model::{DynRecord, RegionId};

/// The ranking: the configured order, borrowed.
pub fn rank(rec: &DynRecord) -> Cow<'_, [RegionId]> {
    Cow::Borrowed(&rec.regions)
}
