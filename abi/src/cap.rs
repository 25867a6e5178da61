//! Capability tokens and the per-process token page, as the kernel writes them and user
//! space reads them.
//!
//! A [`Token`] is 32 bytes of MAC and a 64-bit rights bitmap. The MAC (keyed BLAKE3
//! under a per-boot kernel key, computed by `zen-cap`) binds the rights to a
//! [`Binding`]: which object, of which type, held by which process, at which generation
//! of the object. The binding travels in clear beside the token in a [`TokenSlot`], so a
//! refusal can say *why* (forged, stale, stolen, too weak); changing any field of the
//! binding or any bit of the rights breaks the MAC.
//!
//! Each process has one 4 KiB [`TokenPage`], mapped read-only into it: a 64-byte header
//! whose `used` bitmap marks live slots, then [`TOKENS_PER_PAGE`] slots of 64 bytes.
//! A zeroed page is a valid empty page. All integers are little-endian (x86_64).
//!
//! `Token` deliberately has no `PartialEq`: MACs are compared in constant time by
//! `zen-cap`, and an accidental `==` would not be.

/// Capability rights, one bit each. Defined once here (kernel, zen-std and the shell's
/// `caps` command all use these); unknown bits are refused by [`Rights::from_bits`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Rights(u64);

impl Rights {
    /// Read the object (map a memory object readable, read the audit log).
    pub const READ: Rights = Rights(1 << 0);
    /// Write the object (map a memory object writable).
    pub const WRITE: Rights = Rights(1 << 1);
    /// Execute from a memory object.
    pub const EXECUTE: Rights = Rights(1 << 2);
    /// Map the object into an address space.
    pub const MAP: Rights = Rights(1 << 3);
    /// Produce into a channel (attach its sending ring, `msg_send`).
    pub const SEND: Rights = Rights(1 << 4);
    /// Consume from a channel (attach its receiving ring, `msg_recv`, `msg_poll`).
    pub const RECV: Rights = Rights(1 << 5);
    /// Pass a copy of this capability (equal or fewer rights) to another process.
    pub const GRANT: Rights = Rights(1 << 6);
    /// Revoke every outstanding token of the object (bump its generation).
    pub const REVOKE: Rights = Rights(1 << 7);
    /// Destroy the object (kill a process, close a channel for both ends).
    pub const DESTROY: Rights = Rights(1 << 8);
    /// Power the machine off (on the [`ObjectType::System`] object).
    pub const POWER: Rights = Rights(1 << 9);
    /// Hand out device capabilities (`dev_open`, on the [`ObjectType::System`] object).
    pub const DEVICE: Rights = Rights(1 << 10);
    /// Read the kernel's audit log (`audit_read`, on the [`ObjectType::System`] object).
    pub const AUDIT: Rights = Rights(1 << 11);
    /// Every defined right.
    pub const ALL: Rights = Rights((1 << 12) - 1);
    /// Every right a channel end can carry (the creator's): all but the system
    /// object's POWER, DEVICE and AUDIT.
    pub const CHANNEL_ALL: Rights =
        Rights(Self::ALL.0 & !Self::POWER.0 & !Self::DEVICE.0 & !Self::AUDIT.0);
    /// What a device token from `dev_open` carries: map its registers (MAP), give it
    /// memory to read and write (WRITE; READ is kept for read-only uses later), take
    /// its interrupts (RECV), pass it to a driver (GRANT).
    pub const DEVICE_ALL: Rights =
        Rights(Self::READ.0 | Self::WRITE.0 | Self::MAP.0 | Self::RECV.0 | Self::GRANT.0);
    /// No right at all.
    pub const EMPTY: Rights = Rights(0);

    /// Checked conversion: `None` if any bit is not a defined right.
    pub const fn from_bits(bits: u64) -> Option<Rights> {
        if bits & !Self::ALL.0 == 0 {
            Some(Rights(bits))
        } else {
            None
        }
    }
    /// Drops undefined bits.
    pub const fn from_bits_truncate(bits: u64) -> Rights {
        Rights(bits & Self::ALL.0)
    }
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Every right in `other` is also in `self`.
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }
    pub const fn intersection(self, other: Rights) -> Rights {
        Rights(self.0 & other.0)
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Rights {
    /// Every defined right with its name, in bit order.
    pub const NAMES: [(Rights, &'static str); 12] = [
        (Rights::READ, "read"),
        (Rights::WRITE, "write"),
        (Rights::EXECUTE, "execute"),
        (Rights::MAP, "map"),
        (Rights::SEND, "send"),
        (Rights::RECV, "recv"),
        (Rights::GRANT, "grant"),
        (Rights::REVOKE, "revoke"),
        (Rights::DESTROY, "destroy"),
        (Rights::POWER, "power"),
        (Rights::DEVICE, "device"),
        (Rights::AUDIT, "audit"),
    ];
}

/// `send|recv|grant`; `-` for none; undefined bits as `0x...`.
impl core::fmt::Display for Rights {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut sep = "";
        for (r, name) in Self::NAMES {
            if self.contains(r) {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        let unknown = self.0 & !Self::ALL.0;
        if unknown != 0 {
            write!(f, "{sep}{unknown:#x}")?;
        } else if sep.is_empty() {
            f.write_str("-")?;
        }
        Ok(())
    }
}

impl ObjectType {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Memory => "memory",
            Self::Process => "process",
            Self::Thread => "thread",
            Self::Interrupt => "interrupt",
            Self::AuditLog => "audit log",
            Self::Grant => "grant",
            Self::System => "system",
            Self::Device => "device",
        }
    }
}

impl core::ops::BitOr for Rights {
    type Output = Rights;
    fn bitor(self, rhs: Rights) -> Rights {
        self.union(rhs)
    }
}

impl core::ops::BitAnd for Rights {
    type Output = Rights;
    fn bitand(self, rhs: Rights) -> Rights {
        self.intersection(rhs)
    }
}

/// Kinds of kernel object a capability can name. Part of the MAC input, so a token for
/// object 7 as a channel is useless for object 7 as a process.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Channel = 1,
    Memory = 2,
    Process = 3,
    Thread = 4,
    Interrupt = 5,
    AuditLog = 6,
    /// A page grant in flight over a channel.
    Grant = 7,
    /// The machine itself (object 0): [`Rights::POWER`] powers it off. The kernel gives
    /// init the only token at boot; init passes it on to whom it trusts (the shell).
    System = 8,
    /// A PCI function (object id: its packed address, `zen_abi::device`).
    Device = 9,
}

impl TryFrom<u32> for ObjectType {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            1 => Self::Channel,
            2 => Self::Memory,
            3 => Self::Process,
            4 => Self::Thread,
            5 => Self::Interrupt,
            6 => Self::AuditLog,

            7 => Self::Grant,
            8 => Self::System,
            9 => Self::Device,
            other => return Err(other),
        })
    }
}

/// The token proper: MAC + rights. 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Token {
    pub mac: [u8; 32],
    /// `Rights` bits; kept as a raw `u64` because it is read from untrusted memory (the
    /// MAC decides whether it is genuine).
    pub rights: u64,
}

/// What a token is bound to. Stored in clear beside the token; the MAC covers it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// Kernel object id.
    pub object: u64,
    /// The object's generation when the token was minted; 64 bits so it never wraps
    /// (a wrapped generation would bring revoked tokens back to life).
    pub generation: u64,
    /// Process id of the only process that may use the token.
    pub holder: u32,
    /// `ObjectType as u32`.
    pub object_type: u32,
}

/// One slot of the token page: a token and its binding. 64 bytes, one cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TokenSlot {
    pub token: Token,
    pub binding: Binding,
}

/// Header of the token page. Written by the kernel only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TokenPageHeader {
    /// Bit `i` set: slot `i` holds a live token. Bit 63 is never set (63 slots).
    pub used: u64,
    /// Number of live slots (`used.count_ones()`), for readers that want only that.
    pub count: u32,
    /// [`TOKENS_PER_PAGE`], so a reader can check it speaks the same layout.
    pub capacity: u32,
    pub reserved: [u8; 48],
}

/// Tokens in one page: (4096 - 64-byte header) / 64-byte slots.
pub const TOKENS_PER_PAGE: usize = 63;

/// The per-process token page: 4096 bytes, mapped read-only into the process.
#[repr(C, align(4096))]
#[derive(Clone, Copy, Debug)]
pub struct TokenPage {
    pub header: TokenPageHeader,
    pub slots: [TokenSlot; TOKENS_PER_PAGE],
}

impl TokenSlot {
    pub const SIZE: usize = 64;

    /// The slot as the 64 bytes it occupies in memory (little-endian, field order),
    /// how system calls take tokens.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..32].copy_from_slice(&self.token.mac);
        b[32..40].copy_from_slice(&self.token.rights.to_le_bytes());
        b[40..48].copy_from_slice(&self.binding.object.to_le_bytes());
        b[48..56].copy_from_slice(&self.binding.generation.to_le_bytes());
        b[56..60].copy_from_slice(&self.binding.holder.to_le_bytes());
        b[60..64].copy_from_slice(&self.binding.object_type.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; 64]) -> Self {
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut mac = [0u8; 32];
        mac.copy_from_slice(&b[..32]);
        TokenSlot {
            token: Token {
                mac,
                rights: u64_at(32),
            },
            binding: Binding {
                object: u64_at(40),
                generation: u64_at(48),
                holder: u32_at(56),
                object_type: u32_at(60),
            },
        }
    }

    /// An all-zero slot (what a free slot holds).
    pub const ZERO: TokenSlot = TokenSlot {
        token: Token {
            mac: [0; 32],
            rights: 0,
        },
        binding: Binding {
            object: 0,
            generation: 0,
            holder: 0,
            object_type: 0,
        },
    };
}

impl TokenPage {
    /// An empty page (equal to a zeroed one except for `capacity`).
    pub const EMPTY: TokenPage = TokenPage {
        header: TokenPageHeader {
            used: 0,
            count: 0,
            capacity: TOKENS_PER_PAGE as u32,
            reserved: [0; 48],
        },
        slots: [TokenSlot::ZERO; TOKENS_PER_PAGE],
    };
}

/// The user address of slot `i` of the token page: how a process names its own token
/// in a system call (the kernel then reads its own copy, see docs/abi.md).
pub const fn slot_addr(i: usize) -> u64 {
    crate::syscall::TOKEN_PAGE + (TokenSlot::SIZE * (1 + i)) as u64
}

/// The slot whose address `ptr` is (the start of a slot of the token page), if any.
pub const fn slot_at(ptr: u64) -> Option<usize> {
    let off = ptr.wrapping_sub(slot_addr(0));
    if off < (TOKENS_PER_PAGE * TokenSlot::SIZE) as u64
        && off.is_multiple_of(TokenSlot::SIZE as u64)
    {
        Some((off / TokenSlot::SIZE as u64) as usize)
    } else {
        None
    }
}

const _: () = {
    assert!(core::mem::size_of::<Token>() == 40);
    assert!(core::mem::size_of::<Binding>() == 24);
    assert!(core::mem::size_of::<TokenSlot>() == 64);
    assert!(core::mem::size_of::<TokenPageHeader>() == 64);
    assert!(core::mem::size_of::<TokenPage>() == 4096);
    assert!(core::mem::offset_of!(TokenPage, slots) == 64);
    // The `used` bitmap has a bit for every slot.
    assert!(TOKENS_PER_PAGE < 64);
};

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn slot_addresses_round_trip_and_nothing_else_is_a_slot() {
        for i in 0..TOKENS_PER_PAGE {
            assert_eq!(slot_at(slot_addr(i)), Some(i));
            assert_eq!(slot_at(slot_addr(i) + 1), None);
            assert_eq!(slot_at(slot_addr(i) + 63), None);
        }
        let page = crate::syscall::TOKEN_PAGE;
        // The header, the byte after the last slot, the next page, and addresses that
        // wrap around to the page when the offset is computed.
        for p in [
            page,
            page + 63,
            page + 4096,
            page - 64,
            0,
            u64::MAX,
            u64::MAX - 63,
        ] {
            assert_eq!(slot_at(p), None, "{p:#x}");
        }
        assert_eq!(slot_addr(TOKENS_PER_PAGE - 1) + 64, page + 4096);
    }

    #[test]
    fn rights_print_by_name() {
        assert_eq!(format!("{}", Rights::EMPTY), "-");
        assert_eq!(format!("{}", Rights::SEND | Rights::RECV), "send|recv");
        assert_eq!(
            format!("{}", Rights::ALL),
            "read|write|execute|map|send|recv|grant|revoke|destroy|power|device|audit"
        );
        assert_eq!(format!("{}", Rights(1 << 40 | 1)), "read|0x10000000000");
        assert_eq!(format!("{}", Rights(1 << 40)), "0x10000000000");
        // NAMES covers ALL, once each.
        let all = Rights::NAMES
            .iter()
            .fold(Rights::EMPTY, |acc, (r, _)| acc | *r);
        assert_eq!(all, Rights::ALL);
    }

    #[test]
    fn object_types_have_names_and_numbers() {
        for n in 1..=9 {
            let t = ObjectType::try_from(n).unwrap();
            assert_eq!(t as u32, n);
            assert!(!t.name().is_empty());
        }
        assert_eq!(ObjectType::try_from(10), Err(10));
        assert_eq!(ObjectType::try_from(0), Err(0));
    }
}
