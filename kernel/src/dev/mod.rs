//! Devices: every PCI function the kernel finds at boot, as a capability object.
//!
//! The kernel walks the PCI Express configuration space (ECAM, from the MCFG) once,
//! from bus 0 through the bridges, and keeps each function it finds in a fixed table:
//! its header, its BARs (probed, then checked against RAM and against each other:
//! a BAR that would hand a driver RAM or another device's registers is dropped) and
//! its MSI-X capability (checked to lie inside its BAR). No function may start DMA
//! while nobody drives it: bus mastering is off for each from boot on, turned on when
//! a driver claims the device and off again when that driver ends, before its memory
//! is freed.
//!
//! A device token (type `Device`, object: the packed PCI address) comes from
//! `dev_open`, which needs DEVICE on the system token (init's), and goes to a driver
//! like any token (spawn, cap_send). `driver.rs` is what a driver does with it.
//!
//! Above ipc in the call graph (a driver is a `Party`), below proc, whose teardown
//! calls [`release`].

mod driver;

use alloc::vec::Vec;
use zen_abi::cap::{ObjectType, Rights};
use zen_abi::device::DeviceInfo;
use zen_abi::syscall::Error;
use zen_pci::{command, Address, Bar, Config, Header, MsixInfo, BARS};

use crate::arch::acpi::Ecam;
use crate::arch::pci::{Function, Registers};
use crate::cap::Presented;
use crate::ipc::Party;

pub use driver::{dma_addr, dma_alloc, irq_bind, map_bar, release, unpin};

/// Most functions the kernel keeps (a PC has a few dozen).
const MAX_DEVICES: usize = 64;

/// One PCI function.
pub struct Device {
    /// Its place in the table, from 1: its IOMMU domain's id.
    index: u16,
    pub addr: Address,
    pub header: Header,
    bars: [Option<Bar>; BARS],
    msix: Option<Msix>,
    /// The capability as found, until `map_msix` maps its table.
    msix_info: Option<MsixInfo>,
    cfg: Function,
    state: spin::Mutex<driver::State>,
}

/// A function's MSI-X capability and the kernel's mapping of its table.
struct Msix {
    info: MsixInfo,
    table: Registers,
}

static DEVICES: spin::Once<Vec<Device>> = spin::Once::new();

fn devices() -> &'static [Device] {
    DEVICES.get().map_or(&[], |d| d.as_slice())
}

/// Finds the functions behind `ecam` (at boot, once), then turns DMA remapping on
/// if `dmar` names an IOMMU. `ram` is the memory map.
pub fn init(ecam: &[Ecam], dmar: Option<&zen_vtd::Dmar>, ram: &[zen_abi::boot::MemoryRegion]) {
    DEVICES.call_once(|| {
        let mut found = Vec::new();
        for e in ecam {
            let mut seen = [false; 256];
            scan_bus(e, e.bus_start, &mut seen, &mut found);
        }
        check_bars(&mut found, ram);
        for (i, d) in found.iter_mut().enumerate() {
            d.index = i as u16 + 1;
            map_msix(d);
        }
        crate::kprintln!("zen: PCI: {} functions", found.len());
        found
    });
    match dmar.map(crate::arch::vtd::init) {
        Some(Ok(n)) => crate::kprintln!(
            "zen: IOMMU: {} remapping unit(s); each device reaches only its driver's memory{}",
            n,
            if crate::arch::vtd::remapping() {
                " and raises only its interrupts"
            } else {
                " (interrupts not remapped: a driver's device can raise any vector)"
            }
        ),
        Some(Err(why)) => crate::kprintln!(
            "zen: IOMMU refused ({}): DMA is unconfined, a driver's device can reach all memory",
            why
        ),
        None => crate::kprintln!(
            "zen: no IOMMU: DMA is unconfined, a driver's device can reach all memory"
        ),
    }
}

fn scan_bus(e: &Ecam, bus: u8, seen: &mut [bool; 256], out: &mut Vec<Device>) {
    if core::mem::replace(&mut seen[bus as usize], true) {
        return;
    }
    for device in 0..32 {
        for function in 0..8 {
            let addr = Address {
                segment: e.segment,
                bus,
                device,
                function,
            };
            let Some(cfg) = Function::at(e, addr) else {
                return;
            };
            let Some(header) = Header::read(&cfg) else {
                if function == 0 {
                    break;
                }
                continue;
            };
            if out.len() < MAX_DEVICES {
                out.push(found(addr, header, cfg));
            } else {
                // Not kept, but never left mastering the bus as firmware left it.
                let cmd = cfg.read32(zen_pci::reg::COMMAND) & 0xffff;
                cfg.write32(zen_pci::reg::COMMAND, cmd & !command::BUS_MASTER);
                crate::kprintln!(
                    "zen: PCI {}: more than {} functions; not kept",
                    addr,
                    MAX_DEVICES
                );
            }
            if let Some((secondary, _)) = zen_pci::bridge_buses(&cfg, &header) {
                if secondary <= e.bus_end {
                    scan_bus(e, secondary, seen, out);
                }
            }
            if function == 0 && !header.multifunction {
                break;
            }
        }
    }
}

/// A function as found: bus mastering and MSI-X off (whatever firmware left), BARs
/// probed, the MSI-X table mapped for the kernel if it checks out.
fn found(addr: Address, header: Header, cfg: Function) -> Device {
    let cmd = cfg.read32(zen_pci::reg::COMMAND) & 0xffff;
    if header.kind == 0 {
        cfg.write32(zen_pci::reg::COMMAND, cmd & !command::BUS_MASTER);
    }
    let bars = zen_pci::probe_bars(&cfg, &header);
    // MSI-X off for now (in configuration space: nothing of the BAR is touched
    // before the BARs are checked); its table is mapped and masked in `map_msix`.
    let msix = zen_pci::msix(&cfg).filter(|info| match info.check(&bars) {
        Ok(()) => true,
        Err(why) => {
            crate::kprintln!("zen: PCI {}: {}; no MSI-X", addr, why);
            false
        }
    });
    if let Some(info) = &msix {
        let control = cfg.read32(info.cap);
        cfg.write32(
            info.cap,
            (control & !zen_pci::msix_control::ENABLE) | zen_pci::msix_control::FUNCTION_MASK,
        );
    }
    Device {
        index: 0,
        addr,
        header,
        bars,
        msix: None,
        msix_info: msix,
        cfg,
        state: spin::Mutex::new(driver::State::default()),
    }
}

/// Maps the MSI-X table of a function whose BARs passed `check_bars`, for the
/// kernel, and masks every vector until a driver binds it.
fn map_msix(d: &mut Device) {
    let Some(info) = d.msix_info else { return };
    let Some(bar) = d.bars[info.table_bar as usize] else {
        return;
    };
    let (start, end) = info.table_range();
    let Some(table) = Registers::map(bar.base + start, end - start) else {
        crate::kprintln!("zen: PCI {}: cannot map its MSI-X table", d.addr);
        return;
    };
    for v in 0..info.vectors as u64 {
        table.write32(v * zen_pci::MSIX_ENTRY + 12, 1);
    }
    d.msix = Some(Msix { info, table });
}

/// Drops every memory BAR that overlaps RAM or another function's BAR: mapping it
/// would give a driver memory that is not its device's.
fn check_bars(devs: &mut [Device], ram: &[zen_abi::boot::MemoryRegion]) {
    let all: Vec<(usize, usize, Bar)> = devs
        .iter()
        .enumerate()
        .flat_map(|(d, dev)| {
            dev.bars
                .iter()
                .enumerate()
                .filter_map(move |(i, b)| b.filter(Bar::is_memory).map(|b| (d, i, b)))
        })
        .collect();
    for &(d, i, b) in &all {
        let in_ram = crate::arch::acpi::in_ram(b.base, b.size, ram);
        let clash = all
            .iter()
            .any(|&(d2, i2, b2)| (d2, i2) != (d, i) && b2.overlaps(b.base, b.size));
        if in_ram || clash {
            crate::kprintln!(
                "zen: PCI {} BAR {} at {:#x} refused: {}",
                devs[d].addr,
                i,
                b.base,
                if in_ram {
                    "inside RAM"
                } else {
                    "overlaps another BAR"
                }
            );
            devs[d].bars[i] = None;
            if devs[d]
                .msix_info
                .is_some_and(|m| m.table_bar as usize == i || m.pba_bar as usize == i)
            {
                devs[d].msix_info = None;
            }
        }
    }
}

/// dev_list: every function, in the order found.
pub fn list() -> Vec<DeviceInfo> {
    devices().iter().map(Device::info).collect()
}

impl Device {
    fn info(&self) -> DeviceInfo {
        let h = &self.header;
        let memory_bars = self
            .bars
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_some_and(|b| b.is_memory()))
            .fold(0u8, |m, (i, _)| m | 1 << i);
        DeviceInfo {
            address: self.addr.packed(),
            vendor: h.vendor,
            device: h.device,
            class: h.class,
            subclass: h.subclass,
            prog_if: h.prog_if,
            revision: h.revision,
            holder: self.state.lock().holder,
            msix_vectors: self.msix.as_ref().map_or(0, |m| m.info.vectors),
            memory_bars,
            flags: if h.kind == 1 {
                zen_abi::device::flags::BRIDGE
            } else {
                0
            } | if crate::arch::vtd::active() {
                zen_abi::device::flags::CONFINED
            } else {
                0
            } | if crate::arch::vtd::remapping() {
                zen_abi::device::flags::REMAPPED
            } else {
                0
            },
            bar_size_log2: self.bars.map(|b| {
                b.filter(Bar::is_memory)
                    .map_or(0, |b| b.size.trailing_zeros() as u8)
            }),
            reserved: [0; 6],
        }
    }
}

fn find(address: u64) -> Option<&'static Device> {
    devices().iter().find(|d| d.addr.packed() as u64 == address)
}

/// dev_open: a token for the function at `address`, in the caller's token page.
pub fn open(me: &dyn Party, system: &Presented, address: u64) -> Result<u64, Error> {
    let call = zen_abi::syscall::Syscall::DevOpen as u16;
    crate::cap::check_system(me, system, Rights::DEVICE, call)?;
    let dev = find(address).ok_or(Error::InvalidArgument)?;
    let t = zen_cap::mint(
        crate::cap::key(),
        crate::cap::device_binding(dev.addr.packed(), me.pid()),
        Rights::DEVICE_ALL,
    );
    me.insert_token(t).map(|s| s as u64)
}

/// The device a token names, if it is a genuine device token of the caller with
/// `need`.
fn check(
    me: &dyn Party,
    tok: &Presented,
    need: Rights,
    call: u16,
) -> Result<&'static Device, Error> {
    let object = tok.binding.object;
    let denied = |why| crate::cap::denied(call, object, why);
    if tok.binding.object_type != ObjectType::Device as u32 {
        return Err(denied(zen_cap::CapError::WrongObject));
    }
    let dev = find(object).ok_or_else(|| denied(zen_cap::CapError::UnknownObject))?;
    let expected = crate::cap::device_binding(dev.addr.packed(), me.pid());
    crate::cap::verify(me, tok, &expected, need).map_err(denied)?;
    Ok(dev)
}
