//! The chain of trust: firmware → UEFI stub → zenos.bin.
//!
//! - Secure Boot keys (PK, KEK, db: RSA-2048 X.509 certificates made with openssl).
//!   The stub is signed with db's key by `sbsign`; PK, KEK and db are enrolled into a
//!   copy of OVMF's variable store by `virt-fw-vars` (PyPI package virt-firmware,
//!   installed into target/tools/venv on first use), which then has Secure Boot on.
//! - The image key (ed25519, an openssl PKCS#8 PEM): signs zenos.bin's header; its
//!   public half is built into the UEFI stub, which refuses an image it did not sign.
//!
//! Development keys are made on first use in target/keys (never committed: target/ is
//! ignored). `ZEN_KEYS=<dir>` uses your own instead: the same file names, nothing
//! generated, a missing file is an error.

use crate::util::{mkdir, output, read, run, show, target, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Secure Boot key files, by role: `<role>.key` (PEM private key) and `<role>.crt`
/// (PEM certificate).
pub const SB_ROLES: [&str; 3] = ["PK", "KEK", "db"];
/// The ed25519 key that signs zenos.bin (PKCS#8 PEM, `openssl genpkey -algorithm
/// ed25519`).
pub const IMAGE_KEY: &str = "zenos-image.pem";
/// Owner GUID recorded with our certificates in PK, KEK and db.
pub const OWNER_GUID: &str = "5a454e4f-5300-4b65-7973-000000000001";
/// The environment variable naming a directory of your own keys.
pub const KEYS_ENV: &str = "ZEN_KEYS";
/// virt-firmware, pinned: the tool that writes OVMF's variable store.
const VIRT_FIRMWARE: &str = "virt-firmware==26.10";

/// A directory of keys.
#[derive(Clone, Debug)]
pub struct Keys {
    pub dir: PathBuf,
}

/// The keys to sign with: `$ZEN_KEYS` if set (checked, never written to), else the
/// development keys in target/keys, made now if missing.
pub fn keys() -> Result<Keys> {
    if let Some(dir) = std::env::var_os(KEYS_ENV) {
        let k = Keys { dir: dir.into() };
        let missing: Vec<String> = k
            .files()
            .into_iter()
            .filter(|f| !f.is_file())
            .map(|f| f.display().to_string())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{KEYS_ENV}={} lacks {} (see README, \"Keys\")",
                k.dir.display(),
                missing.join(", ")
            ));
        }
        return Ok(k);
    }
    let k = Keys {
        dir: target().join("keys"),
    };
    k.generate_missing("Zen OS development")?;
    Ok(k)
}

fn openssl(args: &[&str]) -> Command {
    let mut c = Command::new("openssl");
    c.args(args);
    c
}

impl Keys {
    /// Every file a key directory must hold.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = SB_ROLES
            .iter()
            .flat_map(|r| [self.key(r), self.cert(r)])
            .collect();
        v.push(self.dir.join(IMAGE_KEY));
        v
    }

    pub fn key(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.key"))
    }

    pub fn cert(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.crt"))
    }

    /// Makes whatever key of this directory is missing (`cn` prefixes the certificates'
    /// common names). Self-signed certificates suffice: the firmware trusts what is
    /// enrolled, not a chain.
    pub fn generate_missing(&self, cn: &str) -> Result {
        mkdir(&self.dir)?;
        for role in SB_ROLES {
            let (key, crt) = (self.key(role), self.cert(role));
            if key.is_file() && crt.is_file() {
                continue;
            }
            println!(
                "xtask: making Secure Boot key {role} in {}",
                self.dir.display()
            );
            let subj = format!("/CN={cn} {role}/");
            let mut c = openssl(&[
                "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days",
                "3650", "-subj", &subj,
            ]);
            c.arg("-keyout").arg(&key).arg("-out").arg(&crt);
            output(&mut c)?;
        }
        let image = self.dir.join(IMAGE_KEY);
        if !image.is_file() {
            println!(
                "xtask: making the zenos.bin signing key (ed25519) in {}",
                self.dir.display()
            );
            output(openssl(&["genpkey", "-algorithm", "ed25519", "-out"]).arg(&image))?;
        }
        Ok(())
    }

    /// The ed25519 key pair that signs zenos.bin.
    pub fn image_keypair(&self) -> Result<ed25519_compact::KeyPair> {
        let path = self.dir.join(IMAGE_KEY);
        let der = Command::new("openssl")
            .args(["pkey", "-outform", "DER", "-in"])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if !der.status.success() {
            return Err(format!(
                "{}: not a private key openssl can read",
                path.display()
            ));
        }
        let seed = ed25519_seed(&der.stdout)
            .ok_or_else(|| format!("{}: not an ed25519 private key", path.display()))?;
        Ok(ed25519_compact::KeyPair::from_seed(
            ed25519_compact::Seed::new(seed),
        ))
    }

    /// Signs the EFI binary `input` with db's key into `output` (sbsign).
    pub fn sign_efi(&self, input: &Path, out: &Path) -> Result {
        let mut c = Command::new("sbsign");
        c.arg("--key")
            .arg(self.key("db"))
            .arg("--cert")
            .arg(self.cert("db"));
        c.arg("--output").arg(out).arg(input);
        output(&mut c).map(|_| ())
    }

    /// A copy of OVMF's Secure Boot variable store with PK, KEK and db enrolled and
    /// Secure Boot on (made once per key set; `target/secboot/<hash of the certs>.fd`).
    pub fn enrolled_vars(&self) -> Result<PathBuf> {
        let mut certs = Vec::new();
        for role in SB_ROLES {
            certs.extend(read(&self.cert(role))?);
        }
        let tag: String = zen_image::sha512(&certs)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let out = target()
            .join("secboot")
            .join(format!("OVMF_VARS_4M.{tag}.fd"));
        if out.is_file() {
            return Ok(out);
        }
        mkdir(out.parent().expect("has a parent"))?;
        let mut c = Command::new(virt_fw_vars()?);
        c.arg("-i").arg(crate::ovmf::OVMF_VARS).arg("-o").arg(&out);
        c.arg("--set-pk").arg(OWNER_GUID).arg(self.cert("PK"));
        c.arg("--add-kek").arg(OWNER_GUID).arg(self.cert("KEK"));
        c.arg("--add-db").arg(OWNER_GUID).arg(self.cert("db"));
        c.arg("--secure-boot");
        println!("xtask: enrolling keys: {}", show(&c));
        output(&mut c)?;
        Ok(out)
    }
}

/// The 32-byte seed of an ed25519 PKCS#8 DER private key (RFC 8410: a fixed 16-byte
/// prefix, then the seed).
pub fn ed25519_seed(der: &[u8]) -> Option<[u8; 32]> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    (der.len() == 48 && der[..16] == PREFIX).then(|| der[16..].try_into().expect("32 bytes"))
}

/// Signs a built zenos.bin in place: sets the signed flag, then signs header bytes
/// 0..IMAGE_SIGNED_LEN (which hold the payload's hash) into the signature field.
pub fn sign_image(bin: &mut [u8], kp: &ed25519_compact::KeyPair) -> Result {
    use zen_abi::image::{IMAGE_FLAG_SIGNED, IMAGE_HEADER_SIZE, IMAGE_SIGNED_LEN};
    if bin.len() < IMAGE_HEADER_SIZE {
        return Err("zenos.bin shorter than its header".into());
    }
    let flags = u32::from_le_bytes(bin[16..20].try_into().expect("4 bytes")) | IMAGE_FLAG_SIGNED;
    bin[16..20].copy_from_slice(&flags.to_le_bytes());
    let sig = kp.sk.sign(&bin[..IMAGE_SIGNED_LEN], None);
    bin[IMAGE_SIGNED_LEN..IMAGE_SIGNED_LEN + 64].copy_from_slice(sig.as_ref());
    Ok(())
}

/// The stub as built, before `signed_stub` signed a copy of it.
pub fn unsigned_stub(signed: &Path) -> PathBuf {
    signed.with_file_name("zen-boot-uefi.efi")
}

/// Signs the stub `built` for Secure Boot into `BOOTX64.signed.efi` beside it. Every
/// time (it takes milliseconds): a copy signed with another key set must not survive
/// a change of `ZEN_KEYS`.
pub fn signed_stub(keys: &Keys, built: &Path) -> Result<PathBuf> {
    let out = built.with_file_name("BOOTX64.signed.efi");
    keys.sign_efi(built, &out)?;
    Ok(out)
}

/// Lowercase hex, for passing the public key to the stub's build script.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// virt-fw-vars, installed with pip into target/tools/venv on first use (Debian 12
/// does not package it).
fn virt_fw_vars() -> Result<PathBuf> {
    let venv = target().join("tools/venv");
    let tool = venv.join("bin/virt-fw-vars");
    if tool.is_file() {
        return Ok(tool);
    }
    println!(
        "xtask setup: installing {VIRT_FIRMWARE} (pip) into {}",
        venv.display()
    );
    // The system Python (with python3-venv), not whichever one PATH finds first.
    let py = if Path::new("/usr/bin/python3").is_file() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    run(Command::new(py).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", VIRT_FIRMWARE]))
        .map_err(|e| format!("{e}\n(Secure Boot needs virt-fw-vars from PyPI's virt-firmware)"))?;
    if !tool.is_file() {
        return Err(format!(
            "pip installed {VIRT_FIRMWARE} but {} is missing",
            tool.display()
        ));
    }
    Ok(tool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_what_the_stub_checks() {
        let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32]));
        let base = zen_abi::layout::KERNEL_BASE;
        let mut bin = zen_image::build(&[1u8; 5000], 8192, base, base);
        assert_eq!(
            zen_image::check_signature(&bin, &kp.pk),
            Err(zen_image::ImageError::Unsigned)
        );
        sign_image(&mut bin, &kp).unwrap();
        let pk: [u8; 32] = *kp.pk;
        assert_eq!(zen_image::check_signature(&bin, &pk), Ok(()));
        let mut bad = bin.clone();
        bad[40] ^= 1; // mem_size: covered by the signature
        assert!(zen_image::check_signature(&bad, &pk).is_err());
        let other = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([8; 32]));
        assert!(zen_image::check_signature(&bin, &other.pk).is_err());
    }

    #[test]
    fn reads_openssl_ed25519_der() {
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend([9u8; 32]);
        assert_eq!(ed25519_seed(&der), Some([9; 32]));
        der[10] = 0x71; // ed448's OID
        assert_eq!(ed25519_seed(&der), None);
        assert_eq!(ed25519_seed(&der[..40]), None);
    }
}
