//! Foreign-architecture binaries under qemu-user: the ELF checks (the
//! target's machine, statically linked) and the wrapper script that runs
//! the binary under qemu, shared by tests/arm64.rs, tests/boards.rs and
//! tests/release.rs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// ELF machine numbers (`e_machine`) of the architectures we build.
pub const EM_X86_64: u16 = 62;
pub const EM_ARM: u16 = 40;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;

/// Checks that `bin` is a little-endian ELF executable for `machine`
/// without a program interpreter (no PT_INTERP: statically linked).
/// Panics, naming `hint` (how to build it), when it is missing or not so.
pub fn check_static_elf(bin: &str, machine: u16, hint: &str) {
    let elf = fs::read(bin).unwrap_or_else(|e| panic!("{bin}: {e} ({hint})"));
    assert!(
        elf.len() > 64 && &elf[..4] == b"\x7fELF",
        "{bin} is not an ELF file"
    );
    assert_eq!(elf[5], 1, "{bin} is not little endian");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    // e_type 2: ET_EXEC, a non-PIE executable (relocation-model=static).
    assert_eq!(u16_at(16), 2, "{bin} is not a fixed-address executable");
    assert_eq!(
        u16_at(18),
        machine,
        "{bin}: ELF machine {} where {machine} was expected",
        u16_at(18)
    );
    // The program headers, in ELF32 (class 1) or ELF64 (class 2) layout.
    let (phoff, phentsize, phnum) = match elf[4] {
        1 => (
            u32_at(28) as usize,
            u16_at(42) as usize,
            u16_at(44) as usize,
        ),
        2 => (
            u64_at(32) as usize,
            u16_at(54) as usize,
            u16_at(56) as usize,
        ),
        c => panic!("{bin}: ELF class {c}"),
    };
    assert!(phnum > 0, "{bin} has no program headers");
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize);
        assert_ne!(p_type, 3, "{bin} names a dynamic loader (PT_INTERP)");
        assert_ne!(p_type, 2, "{bin} has a dynamic section (PT_DYNAMIC)");
    }
}

/// The path of `qemu` (e.g. `qemu-arm-static`), failing when it is not
/// installed.
pub fn qemu_path(qemu: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {qemu}")])
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{qemu} missing: apt-get install qemu-user-static (the make target does)"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A script named `name` that runs `bin` under `qemu` with the arguments
/// it gets; `exec` keeps the process id, so the test support sees the
/// listening socket in the process it started. See [`qemu_wrappers`].
pub fn qemu_wrapper(qemu: &str, bin: &str, name: &str) -> String {
    qemu_wrappers(&[(qemu, bin, name)]).remove(0)
}

/// [`qemu_wrapper`] for several binaries at once: one script per
/// `(qemu, binary, script name)`, in that order.
///
/// Written once per test process, all together, before any test spawns a
/// child: a file still open for writing in this process while another test
/// thread forks is inherited by that child until it execs, and executing
/// the script then fails with ETXTBSY ("Text file busy"; CI saw it). Every
/// test of the process must call this first, before it starts any other
/// program, and always with the same list.
pub fn qemu_wrappers(specs: &[(&str, &str, &str)]) -> Vec<String> {
    static WRAPPERS: OnceLock<(String, Vec<String>)> = OnceLock::new();
    let key = format!("{specs:?}");
    let (made_for, paths) = WRAPPERS.get_or_init(|| {
        let paths = specs
            .iter()
            .map(|(qemu, bin, name)| write_wrapper(qemu, bin, name))
            .collect();
        (key.clone(), paths)
    });
    assert_eq!(made_for, &key, "one set of qemu wrappers per test process");
    paths.clone()
}

fn write_wrapper(qemu: &str, bin: &str, name: &str) -> String {
    let qemu = qemu_path(qemu);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let script = format!("#!/bin/sh\nexec {qemu} {bin} \"$@\"\n");
    fs::write(&path, script).expect("write the qemu wrapper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
    path.display().to_string()
}
