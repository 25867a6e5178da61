//! zen-sysdecl: the system image, declared (as Hubris declares its tasks in app.toml).
//!
//! `system.toml` at the top of the tree names, in start order, the services init
//! starts: the program, the devices it drives (a class: each matching PCI function
//! gets an instance of its own), the rights of the system token it gets, the disks it
//! may read (block connections to a driver service), for a store server the driver
//! whose TagFS root partition it serves (`root`), the store it may use (`store`),
//! and whether init starts it again when it ends. init's build script turns the file into a table compiled into
//! init, and xtask checks it at build time (every program in the boot archive), so a
//! mistake is a build error with its line, never a boot-time surprise.
//!
//! The file is a small subset of TOML: `[[service]]` tables of `key = value` lines,
//! values a "string", a bool, or a ["list", "of strings"]; `#` comments.
#![deny(unsafe_code)]

/// A device class a service can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceClass {
    /// NVMe controllers (PCI class 01:08).
    Nvme,
}

impl DeviceClass {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "nvme" => Some(Self::Nvme),
            _ => None,
        }
    }
    /// PCI (class, subclass).
    pub const fn pci_class(self) -> (u8, u8) {
        match self {
            Self::Nvme => (0x01, 0x08),
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::Nvme => "nvme",
        }
    }
}

/// Rights of the system token a service may get.
pub const SYSTEM_RIGHTS: &[&str] = &["power", "device", "audit"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub program: String,
    pub devices: Option<DeviceClass>,
    pub system: Vec<String>,
    /// The driver service whose disks it gets (read-only connections).
    pub disks: Option<String>,
    /// The driver service on whose disks it serves the TagFS root partition (a
    /// read-write connection confined to the first one found): a store server.
    pub root: Option<String>,
    /// The store service it gets a connection to (read, write and tag).
    pub store: Option<String>,
    pub restart: bool,
}

/// A mistake in the file, with its line (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub what: String,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "system.toml:{}: {}", self.line, self.what)
    }
}

enum Value {
    Str(String),
    Bool(bool),
    List(Vec<String>),
}

fn value(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return (!inner.contains('"')).then(|| Value::Str(inner.into()));
    }
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(Value::List(Vec::new()));
    }
    inner
        .split(',')
        .map(|w| match value(w)? {
            Value::Str(s) => Some(s),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(Value::List)
}

/// Parses and checks `text`; `programs` are the programs of the boot archive.
pub fn parse(text: &str, programs: &[&str]) -> Result<Vec<Service>, Error> {
    let mut out: Vec<(usize, Service)> = Vec::new();
    let err = |line: usize, what: String| Error { line, what };
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let l = match raw.find('#') {
            // A '#' inside a string would be cut; names never have one.
            Some(i) => &raw[..i],
            None => raw,
        }
        .trim();
        if l.is_empty() {
            continue;
        }
        if l == "[[service]]" {
            out.push((
                line,
                Service {
                    name: String::new(),
                    program: String::new(),
                    devices: None,
                    system: Vec::new(),
                    disks: None,
                    root: None,
                    store: None,
                    restart: false,
                },
            ));
            continue;
        }
        let Some((key, v)) = l.split_once('=') else {
            return Err(err(
                line,
                format!("expected `key = value` or [[service]], got `{l}`"),
            ));
        };
        let Some((_, svc)) = out.last_mut() else {
            return Err(err(line, "a key before the first [[service]]".into()));
        };
        let v = value(v).ok_or_else(|| err(line, format!("bad value `{}`", v.trim())))?;
        match (key.trim(), v) {
            ("name", Value::Str(s)) => svc.name = s,
            ("program", Value::Str(s)) => svc.program = s,
            ("devices", Value::Str(s)) => {
                svc.devices = Some(
                    DeviceClass::parse(&s)
                        .ok_or_else(|| err(line, format!("unknown device class `{s}`")))?,
                )
            }
            ("system", Value::List(l)) => {
                if let Some(bad) = l.iter().find(|r| !SYSTEM_RIGHTS.contains(&r.as_str())) {
                    return Err(err(line, format!("unknown system right `{bad}`")));
                }
                svc.system = l;
            }
            ("disks", Value::Str(s)) => svc.disks = Some(s),
            ("root", Value::Str(s)) => svc.root = Some(s),
            ("store", Value::Str(s)) => svc.store = Some(s),
            ("restart", Value::Bool(b)) => svc.restart = b,
            (k, _) => return Err(err(line, format!("unknown key or wrong type: `{k}`"))),
        }
    }
    for (i, (line, s)) in out.iter().enumerate() {
        if s.name.is_empty() || s.program.is_empty() {
            return Err(err(*line, "a service needs a name and a program".into()));
        }
        if !programs.contains(&s.program.as_str()) {
            return Err(err(
                *line,
                format!("no program `{}` in the boot archive", s.program),
            ));
        }
        if out[..i].iter().any(|(_, o)| o.name == s.name) {
            return Err(err(*line, format!("two services named `{}`", s.name)));
        }
        for (key, d) in [("disks", &s.disks), ("root", &s.root)] {
            let Some(d) = d else { continue };
            // Started before, and a driver: init connects to it first.
            if !out[..i]
                .iter()
                .any(|(_, o)| &o.name == d && o.devices.is_some())
            {
                return Err(err(
                    *line,
                    format!("{key} = \"{d}\": no driver service of that name before it"),
                ));
            }
        }
        if let Some(d) = &s.store {
            if !out[..i]
                .iter()
                .any(|(_, o)| &o.name == d && o.root.is_some())
            {
                return Err(err(
                    *line,
                    format!("store = \"{d}\": no store service (one with `root`) of that name before it"),
                ));
            }
        }
        if s.root.is_some() && s.devices.is_some() {
            return Err(err(
                *line,
                "a service is a driver or a store, not both".into(),
            ));
        }
    }
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests;
