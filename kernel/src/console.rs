//! The kernel console: formatted output to the serial port.
//!
//! One lock orders whole lines from different contexts. Interrupts are disabled
//! while it is held, so an interrupt handler that prints cannot deadlock against the
//! code it interrupted.

use core::fmt::{self, Write};

static LOCK: spin::Mutex<()> = spin::Mutex::new(());

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                crate::arch::serial::write_byte(b'\r');
            }
            crate::arch::serial::write_byte(b);
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let were_enabled = crate::arch::cpu::interrupts_enabled();
    crate::arch::cpu::disable_interrupts();
    {
        let _guard = LOCK.lock();
        let _ = Serial.write_fmt(args);
    }
    if were_enabled {
        crate::arch::cpu::enable_interrupts();
    }
}

/// Writes raw bytes (a user program's output) as one unit. `\n` becomes `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    let were_enabled = crate::arch::cpu::interrupts_enabled();
    crate::arch::cpu::disable_interrupts();
    {
        let _guard = LOCK.lock();
        for &b in bytes {
            if b == b'\n' {
                crate::arch::serial::write_byte(b'\r');
            }
            crate::arch::serial::write_byte(b);
        }
    }
    if were_enabled {
        crate::arch::cpu::enable_interrupts();
    }
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the kernel console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
