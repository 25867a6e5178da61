//! Starting QEMU: the one place that knows its command line, and a runner that captures
//! the serial console line by line under a timeout (for tests and benchmarks).
//!
//! TCG only unless asked: nested KVM on the development machines hangs 64-bit guests,
//! and `-icount` (for benchmarks) needs TCG anyway.

use crate::ovmf::{OVMF_CODE, OVMF_VARS};
use crate::util::{mkdir, show, target, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Firmware lines meaning there is nothing (more) to boot: the stub is missing, failed
/// to load, or returned, and OVMF fell through to its shell. Waiting on is pointless.
const FIRMWARE_GAVE_UP: &[&str] = &["skip startup.nsh", "BdsDxe: No bootable option"];

/// isa-debug-exit turns a guest write of `v` to port 0xf4 into QEMU exit status
/// `(v << 1) | 1`: the kernel writes 0x10 for success and 0x11 for failure.
pub const EXIT_SUCCESS: i32 = (0x10 << 1) | 1;
pub const EXIT_FAILURE: i32 = (0x11 << 1) | 1;

/// One virtual machine to start.
#[derive(Clone, Debug)]
pub struct Vm {
    /// Names the per-run copy of the UEFI variable store and the serial log.
    pub name: String,
    /// The ESP directory, presented to the guest as a FAT drive.
    pub esp: PathBuf,
    /// `-m` argument, e.g. "256M".
    pub mem: String,
    pub smp: u32,
    /// A display window instead of `-display none`.
    pub gui: bool,
    /// Use KVM (explicit opt-in only, see the module comment).
    pub kvm: bool,
    /// `-icount shift=0,sleep=off`: one guest instruction per virtual nanosecond (an idle
    /// guest does not wait for host time), so the TSC
    /// counts instructions and boots are exactly repeatable.
    pub icount: bool,
    /// Boot this disk image (`disk::Disk`: SeaBIOS, OVMF or OVMF with Secure Boot)
    /// instead of `esp` under OVMF.
    pub disk: Option<crate::disk::Disk>,
    /// A scratch disk file attached as an NVMe drive at PCI 00:10.0 (serial
    /// `zen-data`), for the driver tests.
    pub nvme: Option<PathBuf>,
}

impl Vm {
    pub fn new(name: &str, esp: &Path) -> Self {
        Vm {
            name: name.into(),
            esp: esp.into(),
            mem: "256M".into(),
            smp: 1,
            gui: false,
            kvm: false,
            icount: false,
            disk: None,
            nvme: None,
        }
    }

    /// QEMU's arguments. `interactive` puts the serial port, multiplexed with the QEMU
    /// monitor, on the terminal (so Ctrl-A X quits); otherwise serial goes to stdout
    /// for the harness to read and the monitor is off.
    fn args(&self, vars: &Path, interactive: bool) -> Vec<String> {
        let mut a: Vec<String> = [
            "-machine",
            "q35",
            "-m",
            &self.mem,
            "-smp",
            &self.smp.to_string(),
        ]
        .map(String::from)
        .to_vec();
        // VT-d, DMA and interrupt remapping: the kernel confines each device to its
        // driver's memory and to the interrupts it was given. (Under KVM interrupt
        // remapping needs the split irqchip; TCG has no in-kernel one.)
        a.extend(["-device", "intel-iommu,intremap=on"].map(String::from));
        if self.kvm {
            a.extend(["-machine", "kernel-irqchip=split"].map(String::from));
            a.extend(["-accel", "kvm", "-cpu", "host"].map(String::from));
        } else {
            a.extend(["-accel", "tcg", "-cpu", "max"].map(String::from));
        }
        if let Some(d) = &self.disk {
            a.extend(d.qemu_args(vars));
        } else {
            a.push("-drive".into());
            a.push(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
            a.push("-drive".into());
            a.push(format!("if=pflash,format=raw,file={}", vars.display()));
            a.push("-drive".into());
            a.push(format!("format=raw,file=fat:rw:{}", self.esp.display()));
        }
        if let Some(f) = &self.nvme {
            a.push("-drive".into());
            a.push(format!("if=none,id=data,format=raw,file={}", f.display()));
            a.push("-device".into());
            // In PCI slot 0x10 (00:10.0): how the in-OS tests tell the scratch disk
            // from a boot disk, which they must never write.
            a.push("nvme,serial=zen-data,drive=data,addr=0x10".into());
        }
        a.push("-serial".into());
        a.push(if interactive { "mon:stdio" } else { "stdio" }.into());
        if !interactive {
            a.extend(["-monitor", "none"].map(String::from));
        }
        if !self.gui {
            a.extend(["-display", "none"].map(String::from));
        }
        if self.icount {
            a.extend(["-icount", "shift=0,sleep=off"].map(String::from));
        }
        // No NIC: nothing uses one yet, and OVMF would spend a minute on PXE boot
        // whenever the stub fails.
        a.extend(
            [
                "-nic",
                "none",
                "-no-reboot",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
            ]
            .map(String::from),
        );
        a
    }

    /// The command, after giving this run its own copy of the variable store: OVMF
    /// writes to it, and parallel runs must not share one.
    fn command(&self, interactive: bool) -> Result<Command> {
        let dir = target().join("qemu");
        mkdir(&dir)?;
        let vars = dir.join(format!("{}.vars.fd", self.name));
        let template = match &self.disk {
            Some(d) => d.vars_template(),
            None => Some(Path::new(OVMF_VARS)),
        };
        if let Some(t) = template {
            std::fs::copy(t, &vars).map_err(|e| format!("cannot copy {}: {e}", t.display()))?;
        }
        let mut c = Command::new("qemu-system-x86_64");
        c.args(self.args(&vars, interactive));
        Ok(c)
    }

    /// Boots with the serial console on this terminal; returns when QEMU exits.
    pub fn run_interactive(&self) -> Result<ExitStatus> {
        let mut c = self.command(true)?;
        println!("running: {}", show(&c));
        println!("(serial console below; Ctrl-A X quits QEMU)");
        crate::util::status(&mut c)
    }

    /// Boots with serial captured. Every serial line is passed to `on_line`; when it
    /// returns true, QEMU is killed (e.g. the awaited line was seen). QEMU is also
    /// killed when `timeout` passes. The whole console goes to `target/qemu/<name>.log`.
    pub fn run_captured(
        &self,
        timeout: Duration,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<Capture> {
        self.run_scripted(
            timeout,
            |l| if on_line(l) { Reply::Stop } else { Reply::Wait },
        )
    }

    /// As [`Vm::run_captured`], but `on_line` may also type on the serial console
    /// ([`Reply::Send`]), to drive the shell.
    pub fn run_scripted(
        &self,
        timeout: Duration,
        on_line: impl FnMut(&str) -> Reply,
    ) -> Result<Capture> {
        scripted(self.command(false)?, &self.name, timeout, on_line)
    }
}

/// Runs `c` (a QEMU with serial on stdout) as `Vm::run_captured` does, for guests that
/// are not Zen OS under OVMF (the Linux bench guest); the log is `target/qemu/<name>.log`.
pub fn capture(
    c: Command,
    name: &str,
    timeout: Duration,
    mut on_line: impl FnMut(&str) -> bool,
) -> Result<Capture> {
    scripted(c, name, timeout, |l| {
        if on_line(l) {
            Reply::Stop
        } else {
            Reply::Wait
        }
    })
}

/// The capture loop behind [`Vm::run_scripted`] and [`capture`]: runs `c` (a QEMU with
/// serial on stdio), feeds each serial line to `on_line` and acts on its [`Reply`].
fn scripted(
    mut c: Command,
    name: &str,
    timeout: Duration,
    mut on_line: impl FnMut(&str) -> Reply,
) -> Result<Capture> {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", show(&c)))?;
    let (tx, rx) = mpsc::channel();
    let mut input = child.stdin.take().expect("piped");
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    std::thread::spawn(move || forward(out, Source::Serial, tx));
    std::thread::spawn(move || forward(err, Source::Qemu, tx2));

    let mut cap = Capture {
        lines: Vec::new(),
        status: None,
        timed_out: false,
        stopped: false,
        firmware_gave_up: false,
        elapsed: Duration::ZERO,
    };
    let mut open = 2; // both streams; QEMU has exited once both are closed
    while open > 0 {
        let left = timeout.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(Some((Source::Serial, line))) => {
                let stop = match on_line(&line) {
                    Reply::Stop => true,
                    Reply::Wait => false,
                    Reply::Send(bytes) => {
                        // QEMU hands bytes to the UART only as fast as the guest
                        // takes them, so nothing typed is lost.
                        input
                            .write_all(&bytes)
                            .and_then(|()| input.flush())
                            .map_err(|e| format!("typing into QEMU: {e}"))?;
                        false
                    }
                };
                let gave_up = !stop && FIRMWARE_GAVE_UP.iter().any(|p| line.contains(p));
                cap.lines.push(line);
                if stop || gave_up {
                    cap.stopped = stop;
                    cap.firmware_gave_up = gave_up;
                    break;
                }
            }
            Ok(Some((Source::Qemu, line))) => cap.lines.push(format!("[qemu] {line}")),
            Ok(None) => open -= 1,
            Err(_) => {
                cap.timed_out = true;
                break;
            }
        }
    }
    cap.status = finish(&mut child, open == 0)?;
    cap.elapsed = start.elapsed();
    let log = target().join("qemu").join(format!("{name}.log"));
    crate::util::write(&log, (cap.lines.join("\n") + "\n").as_bytes())?;
    Ok(cap)
}

/// What a scripted run does after a serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Keep reading.
    Wait,
    /// Kill QEMU, the run is over.
    Stop,
    /// Type these bytes on the serial console, then keep reading.
    Send(Vec<u8>),
}

/// Reaps QEMU: waits if it has exited by itself, else kills it (by its own pid) first.
/// Returns its exit status if it exited by itself.
fn finish(child: &mut Child, exited: bool) -> Result<Option<ExitStatus>> {
    if exited {
        return child
            .wait()
            .map(Some)
            .map_err(|e| format!("waiting for QEMU: {e}"));
    }
    let _ = child.kill(); // may have exited meanwhile; either way it is gone after wait
    child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    Ok(None)
}

/// What a captured run saw.
#[derive(Debug)]
pub struct Capture {
    /// Serial lines (cleaned by `clean`), with QEMU's own messages as `[qemu] ...`.
    pub lines: Vec<String>,
    /// QEMU's exit status if it exited by itself; None if we killed it.
    pub status: Option<ExitStatus>,
    /// Killed because the timeout passed.
    pub timed_out: bool,
    /// Killed because `on_line` asked for it.
    pub stopped: bool,
    /// Killed because the firmware had nothing left to boot (see FIRMWARE_GAVE_UP).
    pub firmware_gave_up: bool,
    pub elapsed: Duration,
}

impl Capture {
    /// The last `n` lines, for showing why something failed.
    pub fn tail(&self, n: usize) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }

    /// A one-line account of how the run ended.
    pub fn ending(&self) -> String {
        if self.firmware_gave_up {
            return format!(
                "OVMF found nothing to boot (no stub, or it returned) after {:.1?}",
                self.elapsed
            );
        }
        match (self.status, self.timed_out) {
            (_, true) => format!("timed out after {:.0?}, killed", self.elapsed),
            (Some(s), _) => format!("QEMU exited ({s}) after {:.1?}", self.elapsed),
            (None, _) => format!("stopped after {:.1?}", self.elapsed),
        }
    }
}

#[derive(Clone, Copy)]
enum Source {
    Serial,
    Qemu,
}

/// Sends each line of `r` (cleaned), then None at end of stream.
fn forward(r: impl Read, src: Source, tx: mpsc::Sender<Option<(Source, String)>>) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if tx.send(Some((src, clean(&buf)))).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(None);
}

/// Makes a serial line comparable: OVMF's console paints the screen with ANSI escape
/// sequences and CRs that can end up on the same line as the kernel's first output.
/// Escape sequences and control characters are dropped, and so is anything before the
/// last CR (what a terminal would have overwritten).
pub fn clean(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_end_matches(['\n', '\r']);
    let s = s.rsplit('\r').next().unwrap_or("");
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters... final byte in @..~; other escapes are two chars.
            if chars.peek() == Some(&'[') {
                chars.next();
                for f in chars.by_ref() {
                    if ('@'..='~').contains(&f) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_escapes_and_carriage_returns() {
        assert_eq!(clean(b"zen: ready\r\n"), "zen: ready");
        assert_eq!(
            clean(b"\x1b[2J\x1b[01;01H\x1b[=3hzen-test: start 5\n"),
            "zen-test: start 5"
        );
        assert_eq!(clean(b"BdsDxe: loading\rzen: ready\r\n"), "zen: ready");
        assert_eq!(clean(b"a\x1bcb\x07"), "ab");
        assert_eq!(clean(b"\xff ok"), "\u{fffd} ok");
    }

    #[test]
    fn command_line_defaults_to_tcg_headless() {
        let vm = Vm::new("t", Path::new("/tmp/esp"));
        let a = vm.args(Path::new("/tmp/vars.fd"), false).join(" ");
        assert!(
            a.contains(
                "-machine q35 -m 256M -smp 1 -device intel-iommu,intremap=on -accel tcg -cpu max"
            ),
            "{a}"
        );
        assert!(a.contains("file=fat:rw:/tmp/esp"));
        assert!(!a.contains("nvme"), "no scratch disk unless asked");
        assert!(a.contains("if=pflash,format=raw,file=/tmp/vars.fd"));
        assert!(a.contains("-serial stdio -monitor none -display none"));
        assert!(a.ends_with("-nic none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(!a.contains("icount") && !a.contains("kvm"));

        let vm = Vm {
            gui: true,
            kvm: true,
            icount: true,
            smp: 4,
            mem: "1G".into(),
            ..vm
        };
        let a = vm.args(Path::new("/v"), true).join(" ");
        assert!(
            a.contains("-m 1G -smp 4 -device intel-iommu,intremap=on -machine kernel-irqchip=split -accel kvm -cpu host"),
            "{a}"
        );
        assert!(a.contains("-serial mon:stdio") && !a.contains("-display none"));
        assert!(a.contains("-icount shift=0,sleep=off"));
    }

    #[test]
    fn exit_codes_match_isa_debug_exit() {
        assert_eq!(EXIT_SUCCESS, 33);
        assert_eq!(EXIT_FAILURE, 35);
    }
}
