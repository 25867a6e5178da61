use super::*;

const PROGRAMS: &[&str] = &["nvmed", "shell", "tagfsd"];

#[test]
fn the_real_file_parses() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../system.toml")).unwrap();
    let s = parse(&text, PROGRAMS).unwrap();
    assert_eq!(s[0].devices, Some(DeviceClass::Nvme));
    assert!(s.iter().any(|x| x.program == "shell" && x.restart));
}

#[test]
fn a_service_with_everything() {
    let t = r#"
        # comment
        [[service]]
        name = "disk"        # the driver
        program = "nvmed"
        devices = "nvme"
        restart = true

        [[service]]
        name = "shell"
        program = "shell"
        system = ["power"]
        disks = "disk"
    "#;
    let s = parse(t, PROGRAMS).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].system, vec!["power".to_string()]);
    assert_eq!(s[1].disks.as_deref(), Some("disk"));
    assert!(!s[1].restart);
    assert_eq!(DeviceClass::Nvme.pci_class(), (1, 8));
}

#[test]
fn mistakes_name_their_line() {
    let bad = |t: &str| parse(t, PROGRAMS).unwrap_err();
    let e = bad("[[service]]\nname = \"x\"\nprogram = \"nope\"\n");
    assert_eq!(e.line, 1);
    assert!(e.what.contains("nope"), "{e}");
    assert_eq!(bad("name = \"x\"").line, 1);
    assert_eq!(bad("[[service]]\nname = x\n").line, 2);
    assert_eq!(
        bad("[[service]]\nprogram = \"shell\"\ncolour = \"red\"\n").line,
        3
    );
    assert_eq!(
        bad("[[service]]\nname = \"a\"\nprogram = \"shell\"\ndevices = \"gpu\"\n").line,
        4
    );
    assert_eq!(
        bad("[[service]]\nname = \"a\"\nprogram = \"shell\"\nsystem = [\"root\"]\n").line,
        4
    );
    assert!(bad("[[service]]\nname = \"a\"\nprogram = \"shell\"\n[[service]]\nname = \"a\"\nprogram = \"shell\"\n").what.contains("two services"));
    assert!(
        bad("[[service]]\nname = \"s\"\nprogram = \"shell\"\ndisks = \"d\"\n")
            .what
            .contains("no driver")
    );
    // A store needs a driver before it, a store user a store before it.
    let drv = "[[service]]\nname = \"d\"\nprogram = \"nvmed\"\ndevices = \"nvme\"\n";
    let e = bad(&format!(
        "{drv}[[service]]\nname = \"t\"\nprogram = \"tagfsd\"\nroot = \"x\"\n"
    ));
    assert!(e.what.contains("root = \"x\"") && e.line == 5, "{e}");
    let e = bad(&format!(
        "{drv}[[service]]\nname = \"s\"\nprogram = \"shell\"\nstore = \"d\"\n"
    ));
    assert!(e.what.contains("no store service"), "{e}");
    let ok = format!("{drv}[[service]]\nname = \"t\"\nprogram = \"tagfsd\"\nroot = \"d\"\n[[service]]\nname = \"s\"\nprogram = \"shell\"\nstore = \"t\"\n");
    let s = parse(&ok, PROGRAMS).unwrap();
    assert_eq!(
        (s[1].root.as_deref(), s[2].store.as_deref()),
        (Some("d"), Some("t"))
    );
    assert!(bad("[[service]]\nprogram = \"shell\"\n")
        .what
        .contains("name"));
    assert!(
        bad("[[service]]\nname = \"a\"\nprogram = \"shell\"\nrestart = \"yes\"\n")
            .what
            .contains("restart")
    );
}
