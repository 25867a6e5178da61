//! tagfs: host tool for TagFS images (being written; see issue 6).
fn main() {
    eprintln!("tagfs: not built yet");
    std::process::exit(2);
}
