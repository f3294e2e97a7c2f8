//! Rebuild when a migration changes: `sqlx::migrate!` embeds the migration files at compile time,
//! and cargo does not know to look at them otherwise.
//!
//! Release builds of the server also get a function order for the linker (`link/startup-order.txt`,
//! made by `scripts/startup-order`): the code that runs while the server starts and idles is laid
//! out together, so an idle server maps a few MiB of its binary instead of most of it (see
//! docs/performance.md, "Idle RSS"). Only the layout changes: a stale or missing name is skipped.
use std::path::Path;
use std::process::Command;

const ORDER: &str = "link/startup-order.txt";

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-env-changed=PARLEY_LINK_MAP");
    println!("cargo:rerun-if-env-changed=PARLEY_LINK_ORDER");
    if !links_with_lld() {
        return;
    }
    // `scripts/startup-order` asks for a link map to find which function each executed address is in.
    if let Ok(map) = std::env::var("PARLEY_LINK_MAP") {
        println!("cargo:rustc-link-arg-bins=-Wl,-Map={map}");
    }
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if release && glibc_has_relr() {
        // Relative relocations packed as DT_RELR (glibc 2.36+, Debian 12): ~20 KiB instead of a
        // 1.4 MB table that the dynamic loader reads, and keeps resident, at every start. Only
        // where this machine's glibc loads them: the binary is built where it runs (README,
        // Dockerfile), and an older glibc would refuse to start it.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    // PARLEY_LINK_ORDER=0 links in the default order (to compare).
    let wanted = !std::env::var("PARLEY_LINK_ORDER").is_ok_and(|v| v == "0");
    if release && wanted && Path::new(ORDER).exists() {
        // Read when the script runs, not when it was compiled: a build script compiled for one
        // checkout can be reused for another that shares the target directory.
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let path = Path::new(&dir).join(ORDER);
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            path.display()
        );
        // Names change when dependencies or the compiler do; those are laid out as before.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// This machine's glibc is 2.36 or newer (`getconf GNU_LIBC_VERSION` prints "glibc 2.36").
fn glibc_has_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}

/// rustc links x86_64 Linux binaries with its own lld from 1.90 on; other linkers (GNU ld for
/// older compilers and other targets) do not know the options above.
fn links_with_lld() -> bool {
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (...)"
    let version = String::from_utf8_lossy(&out.stdout);
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
