//! Time.

use crate::sys::call_reading;
use zen_abi::syscall::Syscall;

/// Milliseconds since boot.
pub fn uptime_ms() -> u64 {
    call_reading(Syscall::Uptime, [0; 6]).unwrap_or(0)
}

/// Sleeps for at least `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let _ = call_reading(Syscall::Sleep, [ms, 0, 0, 0, 0, 0]);
}
