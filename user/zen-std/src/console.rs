//! The console (the serial port): `print!`, `println!`, `eprintln!`, and reading.

use crate::sys::{call_into, call_reading};
use crate::Result;
use zen_abi::syscall::Syscall;

/// Writes bytes to the console (fd 1).
pub fn write(bytes: &[u8]) -> Result<usize> {
    write_fd(1, bytes)
}

fn write_fd(fd: u64, bytes: &[u8]) -> Result<usize> {
    let mut done = 0;
    // The kernel copies at most MAX_IO bytes a call.
    for chunk in bytes.chunks(zen_abi::syscall::MAX_IO as usize) {
        done += call_reading(
            Syscall::Write,
            [fd, chunk.as_ptr() as u64, chunk.len() as u64, 0, 0, 0],
        )? as usize;
    }
    Ok(done)
}

/// Reads what the console has, blocking until at least one byte arrives.
pub fn read(buf: &mut [u8]) -> Result<usize> {
    call_into(Syscall::Read, &[0], buf, &[]).map(|n| n as usize)
}

/// Standard output or error, for `core::fmt`.
pub struct Console(pub u64);

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_fd(self.0, s.as_bytes())
            .map(|_| ())
            .map_err(|_| core::fmt::Error)
    }
}

#[doc(hidden)]
pub fn _print(fd: u64, args: core::fmt::Arguments) {
    // Format into one buffer so a line reaches the console in one write.
    let s = alloc::fmt::format(args);
    let _ = write_fd(fd, s.as_bytes());
}

#[macro_export]
macro_rules! print {
    ($($a:tt)*) => { $crate::console::_print(1, format_args!($($a)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($a:tt)*) => { $crate::console::_print(1, format_args!("{}\n", format_args!($($a)*))) };
}

#[macro_export]
macro_rules! eprintln {
    ($($a:tt)*) => { $crate::console::_print(2, format_args!("{}\n", format_args!($($a)*))) };
}
