//! Slot management of a process's token page ([`TokenPage`]).
//!
//! The kernel is the only writer (the page is read-only in the process), so the header
//! is trusted on the kernel side; the functions still bounds-check every index so a
//! torn or corrupted page read from user space (zen-std reads the same layout) can only
//! produce an error. Invariant kept by [`insert`] and [`remove`]: `count ==
//! used.count_ones()`, bits at and above [`TOKENS_PER_PAGE`] are clear, and a free slot
//! is all zeros (a removed token does not linger in a readable page).

use crate::{CapError, TokenPage, TokenSlot};
use zen_abi::cap::TOKENS_PER_PAGE;

/// Bits of `used` that name real slots.
const VALID: u64 = (1 << TOKENS_PER_PAGE) - 1;

/// Puts `slot` in the lowest free slot; returns its index (what the process passes to
/// system calls to name the capability).
pub fn insert(page: &mut TokenPage, slot: TokenSlot) -> Result<usize, CapError> {
    let free = !page.header.used & VALID;
    if free == 0 {
        return Err(CapError::PageFull);
    }
    let i = free.trailing_zeros() as usize;
    page.slots[i] = slot;
    page.header.used |= 1 << i;
    page.header.count = page.header.used.count_ones();
    Ok(i)
}

/// Frees slot `index`, zeroing it; returns what it held.
pub fn remove(page: &mut TokenPage, index: usize) -> Result<TokenSlot, CapError> {
    get(page, index)?;
    let old = core::mem::replace(&mut page.slots[index], TokenSlot::ZERO);
    page.header.used &= !(1 << index);
    page.header.count = page.header.used.count_ones();
    Ok(old)
}

/// The live token in slot `index`.
pub fn get(page: &TokenPage, index: usize) -> Result<&TokenSlot, CapError> {
    if index >= TOKENS_PER_PAGE || page.header.used & (1 << index) == 0 {
        return Err(CapError::NoSuchSlot);
    }
    Ok(&page.slots[index])
}

/// Every live token with its index, lowest first (the shell's `caps` listing).
pub fn iter(page: &TokenPage) -> impl Iterator<Item = (usize, &TokenSlot)> {
    let used = page.header.used & VALID;
    page.slots
        .iter()
        .enumerate()
        .filter(move |(i, _)| used & (1 << i) != 0)
}

/// Number of free slots.
pub fn free_slots(page: &TokenPage) -> usize {
    TOKENS_PER_PAGE - (page.header.used & VALID).count_ones() as usize
}
