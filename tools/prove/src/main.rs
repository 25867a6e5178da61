//! `zen-prove`: runs every proof and prints one line each (`cargo xtask verify`).
#![deny(unsafe_code)]

fn main() {
    let ctx = z3::Context::new(&z3::Config::new());
    let mut failed = 0;
    for p in zen_prove::all() {
        let t = std::time::Instant::now();
        match (p.check)(&ctx) {
            Ok(()) => println!("proved  {:<62} {:>6.0?}  {}", p.name, t.elapsed(), p.claim),
            Err(e) => {
                failed += 1;
                println!("FAILED  {}: {e}", p.name);
            }
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
