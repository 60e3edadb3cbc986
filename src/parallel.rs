//! How many threads a large push may be parsed and prepared on: the CPUs this process may
//! use, asked once (the question is a system call, too costly to ask per push).

use std::sync::OnceLock;

/// The CPUs this process may use (1 if that cannot be found out).
pub fn available_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
