//! USDT (SystemTap SDT) probes: reading a binary's `.note.stapsdt`, turning each site's address into
//! the file offset a uprobe attaches to, and parsing each argument's location spec (`-8@%rax`,
//! `8@-16(%rbp)`, `-4@$5`) into what the eBPF program decodes (`ebpf/futex.bpf.c`, `usdt_probe`), the
//! way libbpf's `usdt.bpf.h` does. aya has no USDT support; this is it, for x86-64 ELF64.

use std::fmt;

use super::abi::{RawUsdtArg, RawUsdtSpec, USDT_CONST, USDT_DEREF, USDT_MAX_ARGS, USDT_REG};

/// One probe site (the compiler copies a probe into many sites).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub provider: String,
    pub name: String,
    /// Address of the site (the `nop`), adjusted for prelinking.
    pub pc: u64,
    /// Address of the semaphore (0: none).
    pub semaphore: u64,
    /// The argument specs, as written by the compiler (`-8@%rax 8@-16(%rbp)`).
    pub args: String,
    /// The file offset a uprobe attaches at.
    pub file_offset: u64,
}

/// Why a binary's probes could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsdtError(pub String);

impl fmt::Display for UsdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsdtError {}

fn err<T>(m: impl Into<String>) -> Result<T, UsdtError> {
    Err(UsdtError(m.into()))
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, UsdtError> {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| UsdtError(format!("truncated ELF at byte {o}")))
}
fn u32_at(b: &[u8], o: usize) -> Result<u32, UsdtError> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| UsdtError(format!("truncated ELF at byte {o}")))
}
fn u64_at(b: &[u8], o: usize) -> Result<u64, UsdtError> {
    b.get(o..o + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| UsdtError(format!("truncated ELF at byte {o}")))
}

/// An executable PT_LOAD segment: (vaddr, file offset, file size).
type Load = (u64, u64, u64);

struct Section {
    name: String,
    addr: u64,
    offset: u64,
    size: u64,
}

/// The section headers of an ELF64 little-endian binary, and its executable PT_LOAD segments
/// (vaddr, file offset, file size), which turn a site's address into a file offset.
fn elf_layout(elf: &[u8]) -> Result<(Vec<Section>, Vec<Load>), UsdtError> {
    if elf.get(..4) != Some(b"\x7fELF") {
        return err("not an ELF file");
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return err("not a 64-bit little-endian ELF file (only x86-64 is supported)");
    }
    let shoff = u64_at(elf, 0x28)? as usize;
    let shentsize = u16_at(elf, 0x3a)? as usize;
    let shnum = u16_at(elf, 0x3c)? as usize;
    let shstrndx = u16_at(elf, 0x3e)? as usize;
    let phoff = u64_at(elf, 0x20)? as usize;
    let phentsize = u16_at(elf, 0x36)? as usize;
    let phnum = u16_at(elf, 0x38)? as usize;
    if shentsize < 64 || phentsize < 56 {
        return err("unexpected ELF header sizes");
    }
    let sh = |i: usize| shoff + i * shentsize;
    let strtab_off = u64_at(elf, sh(shstrndx) + 0x18)? as usize;
    let name_at = |o: usize| -> String {
        let s = elf.get(strtab_off + o..).unwrap_or(&[]);
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        String::from_utf8_lossy(&s[..end]).into_owned()
    };
    let mut sections = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let h = sh(i);
        sections.push(Section {
            name: name_at(u32_at(elf, h)? as usize),
            addr: u64_at(elf, h + 0x10)?,
            offset: u64_at(elf, h + 0x18)?,
            size: u64_at(elf, h + 0x20)?,
        });
    }
    let mut loads = Vec::new();
    for i in 0..phnum {
        let h = phoff + i * phentsize;
        if u32_at(elf, h)? == 1 && u32_at(elf, h + 4)? & 1 != 0 {
            loads.push((
                u64_at(elf, h + 0x10)?,
                u64_at(elf, h + 0x08)?,
                u64_at(elf, h + 0x20)?,
            ));
        }
    }
    Ok((sections, loads))
}

/// Every probe site of an ELF64 little-endian binary (executable or shared library).
pub fn parse_notes(elf: &[u8]) -> Result<Vec<Note>, UsdtError> {
    let (sections, loads) = elf_layout(elf)?;
    let Some(notes) = sections.iter().find(|s| s.name == ".note.stapsdt") else {
        return Ok(Vec::new());
    };
    let base_addr = sections
        .iter()
        .find(|s| s.name == ".stapsdt.base")
        .map(|s| s.addr);
    let data = elf
        .get(notes.offset as usize..(notes.offset + notes.size) as usize)
        .ok_or_else(|| UsdtError(".note.stapsdt runs past the end of the file".into()))?;
    let mut out = Vec::new();
    let mut o = 0usize;
    let align4 = |n: usize| (n + 3) & !3;
    while o + 12 <= data.len() {
        let namesz = u32_at(data, o)? as usize;
        let descsz = u32_at(data, o + 4)? as usize;
        let ty = u32_at(data, o + 8)?;
        let name_start = o + 12;
        let desc_start = name_start + align4(namesz);
        let next = desc_start + align4(descsz);
        if next > data.len() {
            return err("a .note.stapsdt entry runs past its section");
        }
        if ty == 3 && data.get(name_start..name_start + namesz) == Some(b"stapsdt\0") {
            let desc = &data[desc_start..desc_start + descsz];
            let mut pc = u64_at(desc, 0)?;
            let base = u64_at(desc, 8)?;
            let semaphore = u64_at(desc, 16)?;
            // Prelink moves .stapsdt.base; the note records where it was at link time.
            if let Some(actual) = base_addr {
                if base != 0 {
                    pc = pc.wrapping_add(actual).wrapping_sub(base);
                }
            }
            let mut strs = desc[24..].split(|&c| c == 0);
            let mut next_str = || String::from_utf8_lossy(strs.next().unwrap_or(&[])).into_owned();
            let (provider, name, args) = (next_str(), next_str(), next_str());
            // A site whose function the linker discarded (--gc-sections) keeps its note with an
            // address in no executable segment: it cannot fire, skip it.
            let Some(file_offset) = loads
                .iter()
                .find(|(va, _, sz)| *va <= pc && pc < va + sz)
                .map(|(va, off, _)| pc - va + off)
            else {
                o = next;
                continue;
            };
            out.push(Note {
                provider,
                name,
                pc,
                semaphore,
                args,
                file_offset,
            });
        }
        o = next;
    }
    Ok(out)
}

/// Where one argument's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgLoc {
    /// A constant (`$5`).
    Const(i64),
    /// A register's value; the offset of that register in `struct pt_regs`.
    Reg { reg_off: u16 },
    /// Memory at a register plus an offset (`-16(%rbp)`).
    Deref { reg_off: u16, off: i64 },
}

/// One argument: where, how many bytes, signed or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpec {
    pub loc: ArgLoc,
    pub size: u8,
    pub signed: bool,
}

/// x86-64 `struct pt_regs` offsets, by every name a compiler may use for (part of) the register.
fn reg_offset(name: &str) -> Option<u16> {
    let off = match name {
        "r15" | "r15d" | "r15w" | "r15b" => 0,
        "r14" | "r14d" | "r14w" | "r14b" => 8,
        "r13" | "r13d" | "r13w" | "r13b" => 16,
        "r12" | "r12d" | "r12w" | "r12b" => 24,
        "rbp" | "ebp" | "bp" | "bpl" => 32,
        "rbx" | "ebx" | "bx" | "bl" | "bh" => 40,
        "r11" | "r11d" | "r11w" | "r11b" => 48,
        "r10" | "r10d" | "r10w" | "r10b" => 56,
        "r9" | "r9d" | "r9w" | "r9b" => 64,
        "r8" | "r8d" | "r8w" | "r8b" => 72,
        "rax" | "eax" | "ax" | "al" | "ah" => 80,
        "rcx" | "ecx" | "cx" | "cl" | "ch" => 88,
        "rdx" | "edx" | "dx" | "dl" | "dh" => 96,
        "rsi" | "esi" | "si" | "sil" => 104,
        "rdi" | "edi" | "di" | "dil" => 112,
        "rip" | "eip" | "ip" => 128,
        "rsp" | "esp" | "sp" | "spl" => 152,
        _ => return None,
    };
    Some(off)
}

/// Parses one argument spec: `[-]SIZE@LOCATION` (a bare location is 8 bytes unsigned).
pub fn parse_arg(spec: &str) -> Result<ArgSpec, UsdtError> {
    let (size, signed, loc) = match spec.split_once('@') {
        Some((sz, loc)) => {
            let n: i32 = sz
                .parse()
                .map_err(|_| UsdtError(format!("bad size in argument spec '{spec}'")))?;
            if ![1, 2, 4, 8].contains(&n.unsigned_abs()) {
                return err(format!("unsupported size {n} in argument spec '{spec}'"));
            }
            (n.unsigned_abs() as u8, n < 0, loc)
        }
        None => (8, false, spec),
    };
    let reg = |r: &str| {
        r.strip_prefix('%')
            .and_then(reg_offset)
            .ok_or_else(|| UsdtError(format!("unknown register '{r}' in argument spec '{spec}'")))
    };
    let loc = if let Some(c) = loc.strip_prefix('$') {
        let v = if let Some(h) = c.strip_prefix("0x").or_else(|| c.strip_prefix("-0x")) {
            let v = i64::from_str_radix(h, 16).ok();
            v.map(|v| if c.starts_with('-') { -v } else { v })
        } else {
            c.parse::<i64>().ok()
        };
        ArgLoc::Const(
            v.ok_or_else(|| UsdtError(format!("bad constant in argument spec '{spec}'")))?,
        )
    } else if let Some((off, rest)) = loc.split_once('(') {
        let r = rest.strip_suffix(')').ok_or_else(|| {
            UsdtError(format!("unbalanced parenthesis in argument spec '{spec}'"))
        })?;
        if r.contains(',') {
            return err(format!(
                "indexed memory operands are not supported: '{spec}'"
            ));
        }
        let off = match off {
            "" => 0,
            o => {
                let (neg, o) = o.strip_prefix('-').map_or((false, o), |o| (true, o));
                let v = match o.strip_prefix("0x") {
                    Some(h) => i64::from_str_radix(h, 16),
                    None => o.parse::<i64>(),
                }
                .map_err(|_| UsdtError(format!("bad offset in argument spec '{spec}'")))?;
                if neg {
                    -v
                } else {
                    v
                }
            }
        };
        ArgLoc::Deref {
            reg_off: reg(r)?,
            off,
        }
    } else {
        ArgLoc::Reg { reg_off: reg(loc)? }
    };
    Ok(ArgSpec { loc, size, signed })
}

/// Parses a site's whole argument string (space-separated specs).
pub fn parse_args(args: &str) -> Result<Vec<ArgSpec>, UsdtError> {
    args.split_whitespace().map(parse_arg).collect()
}

/// The spec of a site as the eBPF program reads it (the first six arguments: futex-core's probes have
/// at most six).
pub fn raw_spec(args: &[ArgSpec]) -> RawUsdtSpec {
    let mut r = RawUsdtSpec {
        nargs: args.len().min(USDT_MAX_ARGS as usize) as u32,
        ..RawUsdtSpec::default()
    };
    for (slot, a) in r.args.iter_mut().zip(args) {
        let (kind, reg_off, val) = match a.loc {
            ArgLoc::Const(v) => (USDT_CONST, 0, v),
            ArgLoc::Reg { reg_off } => (USDT_REG, reg_off, 0),
            ArgLoc::Deref { reg_off, off } => (USDT_DEREF, reg_off, off),
        };
        *slot = RawUsdtArg {
            val,
            reg_off,
            kind,
            size: a.size,
            is_signed: u8::from(a.signed),
            pad: [0; 3],
        };
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_specs() {
        let cases = [
            (
                "-8@%rax",
                ArgSpec {
                    loc: ArgLoc::Reg { reg_off: 80 },
                    size: 8,
                    signed: true,
                },
            ),
            (
                "8@%rdi",
                ArgSpec {
                    loc: ArgLoc::Reg { reg_off: 112 },
                    size: 8,
                    signed: false,
                },
            ),
            (
                "4@%r12d",
                ArgSpec {
                    loc: ArgLoc::Reg { reg_off: 24 },
                    size: 4,
                    signed: false,
                },
            ),
            (
                "8@-16(%rbp)",
                ArgSpec {
                    loc: ArgLoc::Deref {
                        reg_off: 32,
                        off: -16,
                    },
                    size: 8,
                    signed: false,
                },
            ),
            (
                "-4@0x28(%rsp)",
                ArgSpec {
                    loc: ArgLoc::Deref {
                        reg_off: 152,
                        off: 0x28,
                    },
                    size: 4,
                    signed: true,
                },
            ),
            (
                "2@(%rbx)",
                ArgSpec {
                    loc: ArgLoc::Deref {
                        reg_off: 40,
                        off: 0,
                    },
                    size: 2,
                    signed: false,
                },
            ),
            (
                "-4@$5",
                ArgSpec {
                    loc: ArgLoc::Const(5),
                    size: 4,
                    signed: true,
                },
            ),
            (
                "%rsi",
                ArgSpec {
                    loc: ArgLoc::Reg { reg_off: 104 },
                    size: 8,
                    signed: false,
                },
            ),
        ];
        for (s, want) in cases {
            assert_eq!(parse_arg(s), Ok(want), "{s}");
        }
        for bad in ["3@%rax", "8@%xmm0", "8@8(%rax,%rbx,2)", "x@%rax", "8@$zz"] {
            assert!(parse_arg(bad).is_err(), "{bad}");
        }
        let all = parse_args("-8@%rax 8@-16(%rbp) -4@$5").unwrap();
        let raw = raw_spec(&all);
        assert_eq!(raw.nargs, 3);
        assert_eq!(
            (raw.args[1].kind, raw.args[1].reg_off, raw.args[1].val),
            (2, 32, -16)
        );
        assert_eq!(
            (raw.args[2].kind, raw.args[2].val, raw.args[2].is_signed),
            (0, 5, 1)
        );
    }

    /// A minimal ELF64 with one PT_LOAD, a `.stapsdt.base` and a `.note.stapsdt` of two sites, one of
    /// them prelinked (its note's base differs from the section's address).
    fn fixture() -> Vec<u8> {
        let mut notes = Vec::new();
        let mut note = |pc: u64, base: u64, sem: u64, name: &str, args: &str| {
            let mut desc = Vec::new();
            desc.extend_from_slice(&pc.to_le_bytes());
            desc.extend_from_slice(&base.to_le_bytes());
            desc.extend_from_slice(&sem.to_le_bytes());
            desc.extend_from_slice(b"futex_core\0");
            desc.extend_from_slice(name.as_bytes());
            desc.push(0);
            desc.extend_from_slice(args.as_bytes());
            desc.push(0);
            notes.extend_from_slice(&8u32.to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&3u32.to_le_bytes());
            notes.extend_from_slice(b"stapsdt\0");
            while desc.len() % 4 != 0 {
                desc.push(0);
            }
            notes.extend_from_slice(&desc);
        };
        note(0x1100, 0x3000, 0, "wait_start", "-8@%rax 8@-16(%rbp)");
        note(0x1200, 0x2f00, 0x4010, "wake", "8@%rdi");
        let shstr = b"\0.note.stapsdt\0.stapsdt.base\0.shstrtab\0".to_vec();
        // Layout: header 64, one phdr at 64 (56), notes at 0x100, shstrtab after, shdrs at 0x400.
        let mut f = vec![0u8; 0x400 + 4 * 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[0x10..0x12].copy_from_slice(&3u16.to_le_bytes()); // DYN
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[0x28..0x30].copy_from_slice(&0x400u64.to_le_bytes()); // shoff
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&4u16.to_le_bytes());
        f[0x3e..0x40].copy_from_slice(&3u16.to_le_bytes());
        // PT_LOAD, R+X: vaddr 0x1000 maps file offset 0x0, 0x3000 bytes.
        f[64..68].copy_from_slice(&1u32.to_le_bytes());
        f[68..72].copy_from_slice(&5u32.to_le_bytes());
        f[64 + 0x08..64 + 0x10].copy_from_slice(&0u64.to_le_bytes());
        f[64 + 0x10..64 + 0x18].copy_from_slice(&0x1000u64.to_le_bytes());
        f[64 + 0x20..64 + 0x28].copy_from_slice(&0x3000u64.to_le_bytes());
        f[0x100..0x100 + notes.len()].copy_from_slice(&notes);
        let str_off = 0x100 + notes.len();
        f[str_off..str_off + shstr.len()].copy_from_slice(&shstr);
        let mut shdr = |i: usize, name: u32, addr: u64, off: u64, size: u64| {
            let h = 0x400 + i * 64;
            f[h..h + 4].copy_from_slice(&name.to_le_bytes());
            f[h + 0x10..h + 0x18].copy_from_slice(&addr.to_le_bytes());
            f[h + 0x18..h + 0x20].copy_from_slice(&off.to_le_bytes());
            f[h + 0x20..h + 0x28].copy_from_slice(&size.to_le_bytes());
        };
        shdr(1, 1, 0, 0x100, notes.len() as u64);
        shdr(2, 15, 0x3000, 0, 1);
        shdr(3, 29, 0, str_off as u64, shstr.len() as u64);
        f
    }

    #[test]
    fn notes_from_a_fixture() {
        let n = parse_notes(&fixture()).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(
            (
                n[0].provider.as_str(),
                n[0].name.as_str(),
                n[0].args.as_str()
            ),
            ("futex_core", "wait_start", "-8@%rax 8@-16(%rbp)")
        );
        assert_eq!(
            (n[0].pc, n[0].file_offset, n[0].semaphore),
            (0x1100, 0x100, 0)
        );
        // Prelinked: .stapsdt.base moved by 0x100 since link time, so the site did too.
        assert_eq!(
            (n[1].pc, n[1].file_offset, n[1].semaphore),
            (0x1300, 0x300, 0x4010)
        );
        assert!(parse_notes(b"not an elf").is_err());
        assert!(parse_notes(&fixture()[..0x300]).is_err(), "truncated");
    }
}
