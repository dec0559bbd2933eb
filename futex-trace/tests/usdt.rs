//! USDT over eBPF: futex-core's probes in a real binary, and (as root) traced through uprobes.

use futex_trace::usdt::{parse_args, parse_notes, Note};

#[test]
fn notes_of_a_real_binary_with_futex_core_probes() {
    // futex-trace links futex-core (its demo runs on it), so its probes are in the binary.
    let exe = std::fs::read(env!("CARGO_BIN_EXE_futex-trace")).unwrap();
    let notes = parse_notes(&exe).unwrap();
    let core: Vec<&Note> = notes
        .iter()
        .filter(|n| n.provider == "futex_core")
        .collect();
    for name in [
        "wait_start",
        "wait_end",
        "wake",
        "requeue",
        "lock_contended",
    ] {
        assert!(
            core.iter().any(|n| n.name == name),
            "no {name} site among {}",
            core.len()
        );
    }
    for n in core {
        let args = parse_args(&n.args).unwrap();
        assert!(!args.is_empty() && args.len() <= 6, "{n:?}");
        assert_eq!(n.semaphore, 0);
        // The site is a nop (0x90) at its file offset.
        assert_eq!(exe[n.file_offset as usize], 0x90, "{n:?}");
    }
}
