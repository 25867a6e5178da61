//! `zenimg`: writes zenos.img from the built pieces (xtask calls the library instead).
//!
//! zenimg --bios-stub <ELF> --uefi-stub <BOOTX64.EFI> --zenos <zenos.bin>
//!        [--cmdline <text>] [--esp-mib N] [--root-mib N] -o <zenos.img>
use std::process::ExitCode;
use zenimg::{write_image, BiosStub, ImageSpec};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zenimg: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut bios, mut uefi, mut zenos, mut out, mut cmdline) = (None, None, None, None, None);
    let (mut esp_mib, mut root_mib) = (64u64, 32u64);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--bios-stub" => bios = Some(val()?),
            "--uefi-stub" => uefi = Some(val()?),
            "--zenos" => zenos = Some(val()?),
            "--cmdline" => cmdline = Some(val()?),
            "--esp-mib" => esp_mib = val()?.parse().map_err(|_| "bad --esp-mib")?,
            "--root-mib" => root_mib = val()?.parse().map_err(|_| "bad --root-mib")?,
            "-o" => out = Some(val()?),
            _ => return Err(format!("unknown argument {a}\nusage: zenimg --bios-stub ELF --uefi-stub EFI --zenos BIN [--cmdline TEXT] [--esp-mib N] [--root-mib N] -o IMG")),
        }
    }
    let need = |o: Option<String>, what: &str| o.ok_or(format!("missing {what}"));
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let stub =
        BiosStub::from_elf(&read(&need(bios, "--bios-stub")?)?).map_err(|e| e.to_string())?;
    let uefi = read(&need(uefi, "--uefi-stub")?)?;
    let zenos = read(&need(zenos, "--zenos")?)?;
    let out = need(out, "-o")?;
    let mut spec = ImageSpec::new(&stub, &uefi, &zenos);
    spec.cmdline = cmdline.as_deref();
    spec.esp_bytes = esp_mib << 20;
    spec.root_bytes = root_mib << 20;
    let (img, layout) = write_image(&spec).map_err(|e| e.to_string())?;
    std::fs::write(&out, &img).map_err(|e| format!("{out}: {e}"))?;
    println!(
        "{out}: {} MiB; BIOS stub {} bytes (MBR + second stage); zenos.bin at LBA {}",
        img.len() >> 20,
        stub.size(),
        layout.zenos_lba
    );
    for p in &layout.partitions {
        println!("  {:<12} LBA {}..={}", p.name, p.first_lba, p.last_lba);
    }
    Ok(())
}
