//! COM1 (16550 UART at I/O port 0x3F8): the kernel console and test channel.

use ::x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

/// Programs COM1 for 115200 baud, 8N1, FIFOs on.
pub fn init() {
    let regs: [(u16, u8); 7] = [
        (1, 0x00), // no UART interrupts: the console is polled
        (3, 0x80), // DLAB on to set the divisor
        (0, 0x01), // divisor 1 = 115200 baud
        (1, 0x00),
        (3, 0x03), // DLAB off, 8 bits, no parity, one stop bit
        (2, 0xc7), // FIFOs on and cleared
        (4, 0x0b), // DTR, RTS, OUT2
    ];
    for (off, val) in regs {
        // SAFETY: these ports belong to COM1, which only this module drives.
        unsafe { Port::<u8>::new(COM1 + off).write(val) };
    }
}

/// Writes one byte, waiting for the transmit holding register to empty.
pub fn write_byte(b: u8) {
    let mut lsr = Port::<u8>::new(COM1 + 5);
    let mut data = Port::<u8>::new(COM1);
    // SAFETY: COM1's line status and data registers; reading LSR has no side effect
    // beyond the UART's own state.
    unsafe {
        for _ in 0..100_000 {
            if lsr.read() & 0x20 != 0 {
                break;
            }
        }
        data.write(b);
    }
}

/// Reads one received byte, if the UART has one.
pub fn read_byte() -> Option<u8> {
    let mut lsr = Port::<u8>::new(COM1 + 5);
    let mut data = Port::<u8>::new(COM1);
    // SAFETY: COM1's line status and receive registers; reading the receive buffer
    // only takes the byte out of the UART's FIFO.
    unsafe { (lsr.read() & 1 != 0).then(|| data.read()) }
}
