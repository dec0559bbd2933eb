//! Provides the eBPF object futex-trace embeds: a fresh build of `ebpf/futex.bpf.c` when clang is
//! present, else the object committed beside it (so building futex-trace never needs clang). A fresh
//! build that differs from the committed object gives a warning here; CI fails on it
//! (`bash ebpf/build.sh --check`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let ebpf = manifest
        .join("../ebpf")
        .canonicalize()
        .expect("ebpf/ beside futex-trace/");
    let src = ebpf.join("futex.bpf.c");
    let committed = ebpf.join("futex.bpf.o");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("futex.bpf.o");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", committed.display());

    // The same command line as ebpf/build.sh, so that both produce the same bytes.
    let built = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86"])
        .args(["-I/usr/include/x86_64-linux-gnu", "-Wall", "-Werror"])
        .arg(format!("-fdebug-prefix-map={}=ebpf", ebpf.display()))
        .arg("-fdebug-compilation-dir=ebpf")
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if built {
        let fresh = std::fs::read(&out).unwrap();
        if std::fs::read(&committed).ok().as_deref() != Some(&fresh[..]) {
            println!(
                "cargo:warning=ebpf/futex.bpf.o is stale (differs from a build of futex.bpf.c): \
                 run `bash ebpf/build.sh` and commit it; using the fresh build"
            );
        }
    } else {
        std::fs::copy(&committed, &out).expect("ebpf/futex.bpf.o is committed");
    }
}
