//! The append hot path allocates nothing: a counting global allocator (this test binary only)
//! counts the heap allocations made by this thread while it appends. (The allocator is the one
//! `unsafe` of this file: a forwarding `GlobalAlloc` needs it.)
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use softadastra_wal::{RecordType, SyncMode, WalConfig, WalStore};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// `GlobalAlloc` contract; the counter is a thread-local `Cell` that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through `alloc` above, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract for `realloc` is passed through unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Appends `n` 128-byte records (no rotation: the segment has room) and returns how many heap
/// allocations this thread made meanwhile.
fn allocations_during_appends(mode: SyncMode, n: u64) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = WalConfig::new(dir.path())
        .segment_size(16 << 20)
        .sync_mode(mode);
    let store = WalStore::open(config).expect("open");
    let w = store.writer();
    let payload = [0x5au8; 128];
    // Warm up: first touches, lazily built state.
    for _ in 0..100 {
        w.append(RecordType::Put, &payload).expect("append");
    }
    let before = allocations();
    for _ in 0..n {
        w.append(RecordType::Put, &payload).expect("append");
    }
    allocations() - before
}

#[test]
fn durable_appends_do_not_allocate() {
    // 2,000 records of 160 bytes cross about 80 index boundaries (one entry per 4 KiB).
    assert_eq!(allocations_during_appends(SyncMode::Always, 2_000), 0);
}

#[test]
fn unsynced_appends_do_not_allocate() {
    assert_eq!(allocations_during_appends(SyncMode::Manual, 50_000), 0);
}

#[test]
fn the_counter_counts() {
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert_eq!(allocations() - before, 1);
    drop(v);
}
