//! Persistence: the sled database ([`store`]) and the group commit that
//! makes acknowledged writes durable ([`group_commit`]).

pub mod group_commit;
pub mod store;

pub use group_commit::GroupCommit;
pub use store::Store;
