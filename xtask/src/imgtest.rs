//! QEMU tests of the disk image `zenos.img` (called from `test::qemu_suites`): the
//! image is clean for `sgdisk -v` and `fsck.vfat -n`, boots to `zen: ready` under
//! SeaBIOS and under OVMF (the kernel naming the firmware), and a `zenos.bin` with one
//! flipped byte is refused by each stub with its message and a halt (watched for
//! [`HALT_WATCH`]: no more output, no reset), and so is, by the BIOS stub, each
//! damaged parameter sector (`disk::ParamsCorruption`). Then the Secure Boot chain
//! (`secboot_jobs`), and a correctly signed image whose policy table is damaged, which
//! the kernel itself refuses (`damaged_policy_job`).
//!
//! Every run is a fresh image under target/test-img/, booted from a snapshot overlay.

use crate::build::Artifacts;
use crate::disk::{self, Contents, Disk, Firmware, ParamsCorruption};
use crate::harness::{failure_notes, Job, Verdict};
use crate::image::Corruption;
use crate::qemu::{Capture, Vm};
use crate::util::{read, target, write, Result};
use std::path::PathBuf;
use std::time::Duration;

/// A boot under OVMF with SMM takes longer than one without; this bounds all of them.
pub const TIMEOUT: Duration = Duration::from_secs(150);

/// What a boot must and must not print.
#[derive(Clone, Debug)]
pub struct Expect {
    /// Lines (substrings) that must appear, in this order; the run stops at the last.
    pub lines: Vec<String>,
    /// Substrings that fail the test at once if they appear.
    pub never: Vec<String>,
    /// After the last line, watch the machine until [`HALT_WATCH`] has passed since
    /// the start: it must print nothing more at all, and neither reset nor exit.
    pub halts: bool,
}

/// How long a run that must end in a halt is watched in all.
pub const HALT_WATCH: Duration = Duration::from_secs(30);

/// Boots `vm` and checks `e`; one verdict named `name`.
pub fn boot_check(name: &str, vm: &Vm, e: &Expect) -> Verdict {
    let mut next = 0;
    let mut bad: Option<String> = None;
    let timeout = if e.halts { HALT_WATCH } else { TIMEOUT };
    let cap: Result<Capture> = vm.run_captured(timeout, |l| {
        if e.halts && next == e.lines.len() {
            bad = Some(format!("output after the halt: {l}"));
            return true;
        }
        if let Some(n) = e.never.iter().find(|n| l.contains(n.as_str())) {
            bad = Some(n.clone());
            return true;
        }
        if next < e.lines.len() && l.contains(e.lines[next].as_str()) {
            next += 1;
        }
        next == e.lines.len() && !e.halts
    });
    let verdict = |ok, notes| Verdict {
        name: name.into(),
        ok,
        notes,
    };
    let cap = match cap {
        Ok(c) => c,
        Err(err) => return verdict(false, vec![err]),
    };
    let why = match (&bad, next == e.lines.len()) {
        (Some(b), _) if b.starts_with("output after") => b.clone(),
        (Some(b), _) => format!("`{b}` appeared, and must not"),
        (None, true) if cap.status.is_some() => {
            "QEMU exited by itself (the guest reset or exited)".into()
        }
        (None, true) if e.halts && !cap.timed_out => {
            format!("{} before the watch ended", cap.ending())
        }
        (None, true) if e.halts => {
            let note = format!("refused, then silent until killed at {:.1?}", cap.elapsed);
            return verdict(true, vec![note]);
        }
        (None, true) => return verdict(true, vec![format!("{:.1?}", cap.elapsed)]),
        (None, false) => format!("no `{}` line", e.lines[next]),
    };
    verdict(false, failure_notes(vm, &cap, vec![why]))
}

/// A VM booting `image` with `firmware`.
pub fn vm(name: &str, image: PathBuf, firmware: Firmware) -> Vm {
    Vm {
        disk: Some(Disk {
            image: image.clone(),
            firmware,
            snapshot: true,
        }),
        ..Vm::new(name, &image)
    }
}

fn lines(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

/// What a good boot prints under `fw` ("BIOS"/"UEFI") with Secure Boot `sb`.
pub fn ready(stub: &str, fw: &str, sb: &str) -> Expect {
    Expect {
        lines: lines(&[
            &format!("zen-boot: {stub} stub, starting kernel"),
            &format!("(firmware {fw}, secure boot {sb})"),
            "zen: ready",
        ]),
        never: lines(&["zen-boot: refused", "zen: panic", "PANIC"]),
        halts: false,
    }
}

/// What a refusal by the stub prints: `message`; then the machine halts: no kernel,
/// no reset, nothing more from the firmware either.
pub fn refused(message: &str) -> Expect {
    Expect {
        lines: lines(&[message]),
        never: lines(&["starting kernel", "zen: "]),
        halts: true,
    }
}

/// The image tests: one image check, then four boots and the parameter-sector refusals.
pub fn jobs(a: &Artifacts) -> Vec<(&'static str, Result<Job>)> {
    let prepared = (|| -> Result<(PathBuf, PathBuf, Vec<PathBuf>, usize, String)> {
        let bios = disk::bios_stub()?;
        let uefi = read(&a.stub)?;
        let good = read(&a.zenos_bin)?;
        let dir = target().join("test-img");
        let (good_img, bad_img) = (dir.join("good.img"), dir.join("flipped.img"));
        let c = Contents {
            bios_stub: &bios,
            uefi_stub: &uefi,
            zenos_bin: &good,
            cmdline: None,
        };
        let layout = disk::write_image(&good_img, &c)?;
        let bad = Corruption::FlippedPayloadByte.apply(&good);
        disk::write_image(
            &bad_img,
            &Contents {
                zenos_bin: &bad,
                ..c
            },
        )?;
        // The good image with its parameter sector damaged, one file per way.
        let image = read(&good_img)?;
        let bad_params = ParamsCorruption::ALL
            .into_iter()
            .map(|pc| {
                let mut img = image.clone();
                pc.apply(&mut img, &layout)?;
                let p = dir.join(format!("{}.img", pc.name()));
                write(&p, &img)?;
                Ok(p)
            })
            .collect::<Result<Vec<_>>>()?;
        let clean = disk::check_clean(&good_img, &layout);
        Ok((
            good_img,
            bad_img,
            bad_params,
            bios.size(),
            clean.map_err(|e| format!("not clean: {e}"))?,
        ))
    })();
    let (good, bad, bad_params, bios_size, clean) = match prepared {
        Ok(p) => p,
        Err(e) => return vec![("image::prepare", Err(e))],
    };
    let stub_size: Job = Box::new(move || {
        vec![
            Verdict {
                name: "image::clean".into(),
                ok: true,
                notes: vec![clean],
            },
            Verdict {
                name: "image::bios_stub_under_8k".into(),
                ok: bios_size < 8192,
                notes: vec![format!("MBR code + second stage: {bios_size} bytes")],
            },
        ]
    });
    let boot = |name: &'static str,
                img: &PathBuf,
                fw: Firmware,
                e: Expect|
     -> (&'static str, Result<Job>) {
        let vm = vm(&name.replace("::", "-"), img.clone(), fw);
        (
            name,
            Ok(Box::new(move || vec![boot_check(name, &vm, &e)]) as Job),
        )
    };
    let refusal = Corruption::FlippedPayloadByte.refusal();
    let params_refusals = ParamsCorruption::ALL
        .into_iter()
        .zip(&bad_params)
        .map(|(pc, img)| {
            let name = match pc {
                ParamsCorruption::HugeLength => "qemu::image_bios_refuses_huge_zenos_len",
                ParamsCorruption::LengthPastRam => "qemu::image_bios_refuses_zenos_len_past_ram",
            };
            boot(name, img, Firmware::Bios, refused(pc.refusal()))
        });
    let mut jobs = vec![
        ("image::clean", Ok(stub_size)),
        boot(
            "qemu::image_bios_ready",
            &good,
            Firmware::Bios,
            ready("bios", "BIOS", "unknown"),
        ),
        boot(
            "qemu::image_uefi_ready",
            &good,
            Firmware::Uefi,
            ready("uefi", "UEFI", "off"),
        ),
        boot(
            "qemu::image_bios_refuses_flipped_byte",
            &bad,
            Firmware::Bios,
            refused(refusal),
        ),
        boot(
            "qemu::image_uefi_refuses_flipped_byte",
            &bad,
            Firmware::Uefi,
            refused(refusal),
        ),
    ];
    jobs.extend(params_refusals);
    jobs
}

/// The chain of trust under OVMF's Secure Boot build with our PK, KEK and db enrolled:
/// the signed stub boots (and the kernel hears Secure Boot is on); the firmware refuses
/// an unsigned stub and one signed by a key db does not hold; the stub refuses a
/// zenos.bin whose signature is damaged or made by another image key.
pub fn secboot_jobs(a: &Artifacts) -> Vec<(&'static str, Result<Job>)> {
    use crate::secboot::{self, Keys};
    let prepared = (|| -> Result<_> {
        let keys = secboot::keys()?;
        let vars = keys.enrolled_vars()?;
        let bios = disk::bios_stub()?;
        let signed = read(&a.stub)?;
        let unsigned = read(&secboot::unsigned_stub(&a.stub))?;
        // A complete key set that is never enrolled: its db signs the "wrong" stub,
        // its image key the "wrong" zenos.bin.
        let other = Keys {
            dir: target().join("test-keys/not-enrolled"),
        };
        other.generate_missing("Zen OS test, never enrolled")?;
        let dir = target().join("test-img");
        let wrong_stub = dir.join("BOOTX64.wrong-key.efi");
        other.sign_efi(&secboot::unsigned_stub(&a.stub), &wrong_stub)?;
        let wrong_stub = read(&wrong_stub)?;
        let good = read(&a.zenos_bin)?;
        let mut bad_sig = good.clone();
        bad_sig[zen_abi::image::IMAGE_SIGNED_LEN + 5] ^= 0x01;
        let mut other_key = good.clone();
        secboot::sign_image(&mut other_key, &other.image_keypair()?)?;
        let img = |name: &str, stub: &[u8], bin: &[u8]| -> Result<PathBuf> {
            let p = dir.join(format!("{name}.img"));
            disk::write_image(
                &p,
                &Contents {
                    bios_stub: &bios,
                    uefi_stub: stub,
                    zenos_bin: bin,
                    cmdline: None,
                },
            )?;
            Ok(p)
        };
        Ok([
            img("sb-signed", &signed, &good)?,
            img("sb-unsigned-stub", &unsigned, &good)?,
            img("sb-wrong-key-stub", &wrong_stub, &good)?,
            img("sb-bad-signature", &signed, &bad_sig)?,
            img("sb-other-image-key", &signed, &other_key)?,
        ]
        .map(|p| (p, Firmware::SecureBoot { vars: vars.clone() })))
    })();
    let [signed, unsigned, wrong, bad_sig, other_key] = match prepared {
        Ok(p) => p,
        Err(e) => return vec![("secboot::prepare", Err(e))],
    };
    let boot = |name: &'static str,
                (img, fw): (PathBuf, Firmware),
                e: Expect|
     -> (&'static str, Result<Job>) {
        let vm = vm(&name.replace("::", "-"), img, fw);
        (
            name,
            Ok(Box::new(move || vec![boot_check(name, &vm, &e)]) as Job),
        )
    };
    // OVMF's own words when its image verification fails (DxeImageVerificationLib).
    let firmware_refuses = Expect {
        lines: lines(&["Access Denied"]),
        never: lines(&["zen-boot:", "zen: "]),
        halts: false,
    };
    vec![
        boot(
            "qemu::secboot_signed_stub_boots",
            signed,
            ready("uefi", "UEFI", "on"),
        ),
        boot(
            "qemu::secboot_unsigned_stub_refused",
            unsigned,
            firmware_refuses.clone(),
        ),
        boot(
            "qemu::secboot_wrong_key_stub_refused",
            wrong,
            firmware_refuses,
        ),
        boot(
            "qemu::secboot_bad_image_signature_refused",
            bad_sig,
            refused("zen-boot: refused zenos.bin: bad signature"),
        ),
        boot(
            "qemu::secboot_other_image_key_refused",
            other_key,
            refused("zen-boot: refused zenos.bin: bad signature"),
        ),
    ]
}

/// A signed image whose policy table has one byte changed: the stub accepts it (the
/// signature is good), and the kernel refuses the table and starts nothing.
pub fn damaged_policy_job(a: &Artifacts) -> Result<Job> {
    let mut archive = crate::util::read(&a.archive)?;
    let parsed = zen_abi::archive::Archive::parse(&archive).map_err(|e| e.as_str())?;
    let table = parsed
        .data(zen_abi::archive::POLICY)
        .ok_or("the boot archive has no policy")?;
    // Where the table lies in the archive (its slice is into `archive`).
    let at = table.as_ptr() as usize - archive.as_ptr() as usize + table.len() / 2;
    archive[at] ^= 0x10;
    let bin = crate::build::signed_with_archive(a, &archive, "zenos-bad-policy.bin")?;
    let esp = crate::image::esp_dir(
        &crate::util::target().join("esp-bad-policy"),
        &crate::image::EspContents {
            stub: &a.stub,
            zenos_bin: &crate::util::read(&bin)?,
            cmdline: None,
        },
    )?;
    Ok(Box::new(move || {
        let vm = crate::qemu::Vm::new("refuse-policy", &esp);
        let name = "qemu::refuse_damaged_policy".to_string();
        let refused = "zen: policy refused (";
        let (ok, why, cap) = match crate::test::boot_until(
            &vm,
            &[
                "zen: no init without a policy",
                "zen: ready",
                "zen: started",
            ],
        ) {
            Ok((Some(0), cap)) if cap.lines.iter().any(|l| l.contains(refused)) => {
                (true, String::new(), cap)
            }
            Ok((Some(0), cap)) => (false, format!("no `{refused}...` line"), cap),
            Ok((Some(_), cap)) => (
                false,
                "ready, or a process started, under a damaged policy".into(),
                cap,
            ),
            Ok((None, cap)) => (false, "no `zen: no init without a policy` line".into(), cap),
            Err(e) => {
                return vec![Verdict {
                    name,
                    ok: false,
                    notes: vec![e],
                }]
            }
        };
        let notes = if ok {
            let line = cap.lines.iter().find(|l| l.contains(refused)).cloned();
            vec![format!("{}, and no init", line.unwrap_or_default().trim())]
        } else {
            failure_notes(&vm, &cap, vec![why])
        };
        vec![Verdict { name, ok, notes }]
    }))
}
