//! The failover policy: the record's `regions` in the order written; the first usable
//! one wins. Independent of the client, so its ECS scope is 0.

use super::Order;
use crate::model::DynRecord;

/// The ranking: the configured order.
pub fn rank(rec: &DynRecord) -> Order {
    Order::from_slice(&rec.regions)
}
