//! The peer crates from crates.io, each behind the tier traits it can honestly support.

pub mod commitlog;
pub mod okaywal;
pub mod open_wal;
pub mod raft_engine;
pub mod simple_wal;
pub mod wal_db;

use crate::subject::Subject;

/// Every peer, in table order: durable peers first, then the unsynced-only ones.
pub fn all() -> Vec<Subject> {
    vec![
        okaywal::subject(),
        wal_db::subject(),
        open_wal::subject(),
        raft_engine::subject(),
        commitlog::subject(),
        simple_wal::subject(),
    ]
}
