//! For tests of the kernel's state isolation only: writes and reads this thread's
//! x87/SSE registers (XMM0-15, MXCSR, the x87 control word), which the kernel must
//! keep per thread across context switches. Ordinary programs have no use for these.
//!
//! Programs are built for x86_64-unknown-none, which is soft-float: compiled code
//! never uses the x87/SSE registers, so values put there by
//! [`fill_vector_registers`] stay put until [`vector_registers_hold`] reads them,
//! unless the kernel lets another thread's state in.

/// The XMM register values, low quadword first, that `pattern` stands for: different
/// in every register and lane, so a shuffled or partly restored state is caught too.
fn lanes(pattern: u64) -> [u64; 32] {
    let mut v = [0u64; 32];
    for (i, x) in v.iter_mut().enumerate() {
        let r = pattern.rotate_left(4 * i as u32);
        *x = if i % 2 == 0 { r ^ i as u64 } else { !r };
    }
    v
}

/// MXCSR for `pattern`: every exception masked, the rounding mode from its low bits.
fn mxcsr(pattern: u64) -> u32 {
    0x1f80 | ((pattern as u32 & 3) << 13)
}

/// The x87 control word for `pattern`: the default with the rounding mode from bits
/// 2 and 3.
fn fcw(pattern: u64) -> u16 {
    0x037f | (((pattern >> 2) as u16 & 3) << 10)
}

/// The default MXCSR and x87 control word (after FNINIT), as a new thread must have.
const DEFAULT_MXCSR: u32 = 0x1f80;
const DEFAULT_FCW: u16 = 0x037f;

/// Sets XMM0-15, MXCSR and the x87 control word to values derived from `pattern`.
pub fn fill_vector_registers(pattern: u64) {
    let v = lanes(pattern);
    let m = mxcsr(pattern);
    let c = fcw(pattern);
    // SAFETY: the loads read `v`, `m` and `c`, which live through the asm block. The
    // registers written (XMM0-15, MXCSR, FCW) hold nothing of the compiled program's,
    // which is soft-float, so not declaring them as clobbered loses nothing; MXCSR
    // and FCW get valid values (no reserved bits, every exception masked).
    unsafe {
        core::arch::asm!(
            "movdqu xmm0, [{v}]",
            "movdqu xmm1, [{v} + 16]",
            "movdqu xmm2, [{v} + 32]",
            "movdqu xmm3, [{v} + 48]",
            "movdqu xmm4, [{v} + 64]",
            "movdqu xmm5, [{v} + 80]",
            "movdqu xmm6, [{v} + 96]",
            "movdqu xmm7, [{v} + 112]",
            "movdqu xmm8, [{v} + 128]",
            "movdqu xmm9, [{v} + 144]",
            "movdqu xmm10, [{v} + 160]",
            "movdqu xmm11, [{v} + 176]",
            "movdqu xmm12, [{v} + 192]",
            "movdqu xmm13, [{v} + 208]",
            "movdqu xmm14, [{v} + 224]",
            "movdqu xmm15, [{v} + 240]",
            "ldmxcsr [{m}]",
            "fldcw [{c}]",
            v = in(reg) v.as_ptr(),
            m = in(reg) &m,
            c = in(reg) &c,
            options(nostack, preserves_flags, readonly),
        );
    }
}

/// XMM0-15, MXCSR and the x87 control word as they are now.
fn read_vector_registers() -> ([u64; 32], u32, u16) {
    let mut v = [0u64; 32];
    let mut m = 0u32;
    let mut c = 0u16;
    // SAFETY: the stores write `v` (256 bytes), `m` (4) and `c` (2), which are ours
    // and exactly that large; reading the registers changes none of them.
    unsafe {
        core::arch::asm!(
            "movdqu [{v}], xmm0",
            "movdqu [{v} + 16], xmm1",
            "movdqu [{v} + 32], xmm2",
            "movdqu [{v} + 48], xmm3",
            "movdqu [{v} + 64], xmm4",
            "movdqu [{v} + 80], xmm5",
            "movdqu [{v} + 96], xmm6",
            "movdqu [{v} + 112], xmm7",
            "movdqu [{v} + 128], xmm8",
            "movdqu [{v} + 144], xmm9",
            "movdqu [{v} + 160], xmm10",
            "movdqu [{v} + 176], xmm11",
            "movdqu [{v} + 192], xmm12",
            "movdqu [{v} + 208], xmm13",
            "movdqu [{v} + 224], xmm14",
            "movdqu [{v} + 240], xmm15",
            "stmxcsr [{m}]",
            "fnstcw [{c}]",
            v = in(reg) v.as_mut_ptr(),
            m = in(reg) &mut m,
            c = in(reg) &mut c,
            options(nostack, preserves_flags),
        );
    }
    (v, m, c)
}

/// Whether XMM0-15, MXCSR and the x87 control word still hold what
/// `fill_vector_registers(pattern)` put there.
pub fn vector_registers_hold(pattern: u64) -> bool {
    read_vector_registers() == (lanes(pattern), mxcsr(pattern), fcw(pattern))
}

/// Whether this thread's state is the clean one every new thread must start with:
/// XMM0-15 zero, MXCSR 0x1F80, x87 control word 0x037F.
pub fn vector_state_is_default() -> bool {
    read_vector_registers() == ([0; 32], DEFAULT_MXCSR, DEFAULT_FCW)
}
