//! The eBPF ABI (`ebpf/futex_abi.h`): the Rust mirror of each shared struct (`futex_trace::abi`) has the
//! layout the committed object's BTF gives the C struct (names, offsets, sizes, field count), and the
//! constants of futex-core's probe encoding that the C side uses agree with futex-core's.

use btf_rs::{Btf, Type};

use futex_trace::ebpf::abi::{
    self, RawAgg, RawAggKey, RawEdge, RawEdgeKey, RawEvent, RawHist, RawInflight, RawPython,
    RawUsdtArg, RawUsdtSpec, RawUstack, RawUstackHead,
};

fn object_btf() -> Btf {
    let obj = concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf/futex.bpf.o");
    let bytes = btf_rs::utils::elf::extract_btf_from_file(obj).expect("the object's .BTF section");
    Btf::from_bytes(&bytes).expect("the object's BTF parses")
}

/// The size of a member's type, following typedefs and qualifiers.
fn size_of(btf: &Btf, mut t: Type) -> usize {
    loop {
        match t {
            Type::Int(i) => return i.size(),
            Type::Struct(s) => return s.size(),
            Type::Array(a) => {
                let elem = btf.resolve_chained_type(&a).unwrap();
                return a.len() * size_of(btf, elem);
            }
            Type::Typedef(ref x) => t = btf.resolve_chained_type(x).unwrap(),
            Type::Const(ref x) => t = btf.resolve_chained_type(x).unwrap(),
            Type::Volatile(ref x) => t = btf.resolve_chained_type(x).unwrap(),
            other => panic!("unexpected member type {}", other.name()),
        }
    }
}

/// The C struct `name` as (field, offset, size) triples, and its size.
fn c_layout(btf: &Btf, name: &str) -> (Vec<(String, usize, usize)>, usize) {
    let types = btf.resolve_types_by_name(name).unwrap();
    let s = types
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("struct {name} not in the object's BTF"));
    let fields = s
        .members
        .iter()
        .map(|m| {
            assert_eq!(
                m.bitfield_size(),
                None,
                "{name}: bitfields are not mirrored"
            );
            let ty = btf.resolve_chained_type(m).unwrap();
            (
                btf.resolve_name(m).unwrap(),
                m.bit_offset() as usize / 8,
                size_of(btf, ty),
            )
        })
        .collect();
    (fields, s.size())
}

fn check(btf: &Btf, c_name: &str, rust: &[(&str, usize, usize)], rust_size: usize) -> Vec<String> {
    let (c, c_size) = c_layout(btf, c_name);
    let mut wrong = Vec::new();
    if c_size != rust_size {
        wrong.push(format!(
            "struct {c_name}: C size {c_size}, Rust {rust_size}"
        ));
    }
    if c.len() != rust.len() {
        wrong.push(format!(
            "struct {c_name}: C has {} fields, Rust {}",
            c.len(),
            rust.len()
        ));
    }
    for (c, r) in c.iter().zip(rust) {
        if (c.0.as_str(), c.1, c.2) != *r {
            wrong.push(format!(
                "struct {c_name}: C {} at {} ({} bytes), Rust {} at {} ({} bytes)",
                c.0, c.1, c.2, r.0, r.1, r.2
            ));
        }
    }
    wrong
}

#[test]
fn the_rust_mirror_has_the_layout_of_the_objects_btf() {
    let btf = object_btf();
    let mut wrong = Vec::new();
    wrong.extend(check(
        &btf,
        RawEvent::C_NAME,
        RawEvent::FIELDS,
        size_of_val(&RawEvent::default()),
    ));
    wrong.extend(check(
        &btf,
        RawUsdtArg::C_NAME,
        RawUsdtArg::FIELDS,
        size_of_val(&RawUsdtArg::default()),
    ));
    wrong.extend(check(
        &btf,
        RawUsdtSpec::C_NAME,
        RawUsdtSpec::FIELDS,
        size_of_val(&RawUsdtSpec::default()),
    ));
    for (name, fields, size) in [
        (
            RawAggKey::C_NAME,
            RawAggKey::FIELDS,
            std::mem::size_of::<RawAggKey>(),
        ),
        (
            RawAgg::C_NAME,
            RawAgg::FIELDS,
            std::mem::size_of::<RawAgg>(),
        ),
        (
            RawInflight::C_NAME,
            RawInflight::FIELDS,
            std::mem::size_of::<RawInflight>(),
        ),
        (
            RawEdgeKey::C_NAME,
            RawEdgeKey::FIELDS,
            std::mem::size_of::<RawEdgeKey>(),
        ),
        (
            RawEdge::C_NAME,
            RawEdge::FIELDS,
            std::mem::size_of::<RawEdge>(),
        ),
        (
            RawHist::C_NAME,
            RawHist::FIELDS,
            std::mem::size_of::<RawHist>(),
        ),
        (
            RawUstackHead::C_NAME,
            RawUstackHead::FIELDS,
            std::mem::size_of::<RawUstackHead>(),
        ),
        (
            RawUstack::C_NAME,
            RawUstack::FIELDS,
            std::mem::size_of::<RawUstack>(),
        ),
        (
            RawPython::C_NAME,
            RawPython::FIELDS,
            std::mem::size_of::<RawPython>(),
        ),
    ] {
        wrong.extend(check(&btf, name, fields, size));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_swapped_field_is_caught() {
    // The check itself must be able to fail: swap two fields of the mirror's table.
    let btf = object_btf();
    let mut swapped = RawEvent::FIELDS.to_vec();
    swapped.swap(9, 10); // pid and tid
    let wrong = check(
        &btf,
        RawEvent::C_NAME,
        &swapped,
        std::mem::size_of::<RawEvent>(),
    );
    assert_eq!(wrong.len(), 2, "{wrong:?}");
}

#[test]
fn the_c_sides_probe_constants_are_futex_cores() {
    use futex_core::probes::{self, Probe};
    assert_eq!(abi::FT_USDT_WAIT_START, Probe::WaitStart as u8);
    assert_eq!(abi::FT_USDT_WAIT_END, Probe::WaitEnd as u8);
    assert_eq!(abi::FT_USDT_WAKE, Probe::Wake as u8);
    assert_eq!(abi::FT_USDT_REQUEUE, Probe::Requeue as u8);
    assert_eq!(abi::FT_USDT_LOCK_CONTENDED, Probe::LockContended as u8);
    assert_eq!(u32::from(abi::FT_USDT_OUTCOME_SHIFT), probes::OUTCOME_SHIFT);
    assert_eq!(
        abi::FT_USDT_MISMATCH,
        futex_core::WaitOutcome::Mismatch as u8
    );
}
