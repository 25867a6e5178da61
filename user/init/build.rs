//! Turns `system.toml` (the declared system image, lib/sysdecl) into the table init
//! starts its services from; a mistake in the file fails the build with its line.

use std::path::Path;

fn opt(s: &Option<String>) -> String {
    match s {
        Some(d) => format!("Some({d:?})"),
        None => "None".into(),
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = root.join("system.toml");
    println!("cargo:rerun-if-changed={}", file.display());
    let text = std::fs::read_to_string(&file).expect("system.toml");
    // The programs: the crates under user/ (xtask checks the boot archive's list too).
    let programs: Vec<String> = std::fs::read_dir(root.join("user"))
        .expect("user/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("src/main.rs").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let names: Vec<&str> = programs.iter().map(String::as_str).collect();
    let services = match zen_sysdecl::parse(&text, &names) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let mut out = String::from(
        "/// Generated from system.toml by build.rs.\npub const SERVICES: &[Service] = &[\n",
    );
    for s in &services {
        let rights: Vec<String> = s
            .system
            .iter()
            .map(|r| format!("Rights::{}.bits()", r.to_uppercase()))
            .collect();
        out += &format!(
            "    Service {{ name: {:?}, program: {:?}, devices: {}, system: {}, disks: {}, root: {}, store: {}, restart: {} }},\n",
            s.name,
            s.program,
            match s.devices {
                Some(d) => format!("Some({:?})", d.pci_class()),
                None => "None".into(),
            },
            if rights.is_empty() { "0".into() } else { rights.join(" | ") },
            opt(&s.disks),
            opt(&s.root),
            opt(&s.store),
            s.restart
        );
    }
    out += "];\n";
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("system.rs");
    std::fs::write(dest, out).unwrap();
}
