//! Golden files: committed version-1 recordings (`tests/fixtures/v1-*.ftr`, made by the first reader's
//! `futex-trace record`: one of `futex-workload` through its kernel futexes, one of futex-core's USDT
//! probes on a `notify_all`) and the text report, JSON report and folded stacks (waiters and wakers)
//! each gives (`tests/golden/`). Every future reader must read these recordings and give these outputs:
//! an unintended change of the format or of an output fails here.
//!
//! After an intended output change, re-bless: `FUTEX_TRACE_BLESS=1 cargo test -p futex-trace --test
//! golden`, and review the diff of `tests/golden/` before committing it.

use std::path::Path;
use std::process::Command;

const FIXTURES: [&str; 2] = ["v1-kernel", "v1-usdt"];

/// The outputs compared: (golden file suffix, futex-trace arguments before the recording, whether the
/// output goes to a file given with -o rather than stdout).
const OUTPUTS: [(&str, &[&str], bool); 4] = [
    ("report.txt", &["report"], false),
    ("report.json", &["report", "--json"], false),
    ("waiters.folded", &["flamegraph", "--folded"], true),
    (
        "wakers.folded",
        &["flamegraph", "--folded", "--wakers"],
        true,
    ),
];

fn output(args: &[&str], recording: &str, to_file: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_futex-trace"));
    // Relative paths, so that the report's "recorded in" names the same path on every machine.
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .arg(recording);
    let file = std::env::temp_dir().join(format!(
        "futex-trace-golden-{}-{}",
        std::process::id(),
        recording.replace('/', "_")
    ));
    if to_file {
        cmd.arg("-o").arg(&file);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "futex-trace {args:?} {recording}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if to_file {
        let s = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        s
    } else {
        String::from_utf8(out.stdout).unwrap()
    }
}

#[test]
fn version_1_recordings_give_the_golden_outputs() {
    let bless = std::env::var_os("FUTEX_TRACE_BLESS").is_some();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut differ = Vec::new();
    for fixture in FIXTURES {
        let recording = format!("tests/fixtures/{fixture}.ftr");
        for (suffix, args, to_file) in OUTPUTS {
            let got = output(args, &recording, to_file);
            let golden = root.join(format!("tests/golden/{fixture}.{suffix}"));
            if bless {
                std::fs::write(&golden, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&golden)
                .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
            if got != want {
                let first = got
                    .lines()
                    .zip(want.lines())
                    .position(|(g, w)| g != w)
                    .unwrap_or(got.lines().count().min(want.lines().count()));
                differ.push(format!(
                    "{}: first difference at line {}:\n  got:  {}\n  want: {}",
                    golden.display(),
                    first + 1,
                    got.lines().nth(first).unwrap_or("<end>"),
                    want.lines().nth(first).unwrap_or("<end>")
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "outputs differ from the golden files (re-bless with FUTEX_TRACE_BLESS=1 if intended):\n{}",
        differ.join("\n")
    );
}

#[test]
fn the_fixtures_are_version_1_and_read_whole() {
    for fixture in FIXTURES {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{fixture}.ftr"));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"FUTEXTRC");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1, "{fixture}");
        let mut events = 0u64;
        let t = futex_trace::recording::read(&bytes[..], |_| events += 1).unwrap();
        let end = t.end.expect("the fixture ended cleanly");
        assert_eq!(end.events, events, "{fixture}");
        assert!(t.warning.is_none(), "{fixture}: {:?}", t.warning);
        assert!(!t.stacks.stacks.is_empty(), "{fixture} has stacks");
    }
}
