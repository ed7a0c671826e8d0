//! The C ABI from C: `tests/c/abi_test.c` calls every exported function with its edge cases
//! (linked with `-ltemporal_slab`, and again under `LD_PRELOAD`); the first allocation of a C
//! program (a regression: it deadlocked); the allocator's thread-local storage across `dlopen`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{assert_ok, c_dir, cc, cdylib, compile, preloaded, run, scratch};

/// Compiles `abi_test.c` against the built library, with an rpath so it runs as is.
fn build_abi_test(scratch_name: &str) -> Option<std::path::PathBuf> {
    let cc = cc()?;
    let so = cdylib();
    let lib_dir = so.parent().expect("the library has a directory");
    let dir = scratch(scratch_name);
    let exe = dir.join("abi_test");
    let l = format!("-L{}", lib_dir.display());
    let rpath = format!("-Wl,-rpath,{}", lib_dir.display());
    compile(&cc, &[&c_dir().join("abi_test.c")], &exe, &[&l, &rpath, "-ltemporal_slab", "-pthread", "-ldl"]);
    Some(exe)
}

fn check_abi_output(out: &std::process::Output, how: &str) {
    assert_ok(out, &format!("abi_test ({how})"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(", 0 failed"), "abi_test ({how}) printed {stdout}");
    // malloc_stats() wrote the allocator's figures, not glibc's.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("temporal-slab malloc_stats") && stderr.contains("in use bytes"), "{stderr}");
    assert!(!stderr.contains("FAIL"), "{stderr}");
}

#[test]
fn abi_test_passes_when_linked() {
    let Some(exe) = build_abi_test("abi_linked") else { return };
    // Linked with -ltemporal_slab: the library comes before libc in the lookup order, so its
    // malloc is the process's malloc (the mallinfo2 checks in the program prove it).
    let out = run(&mut Command::new(&exe), Duration::from_secs(120));
    check_abi_output(&out, "linked");
}

#[test]
fn abi_test_passes_when_preloaded() {
    let Some(exe) = build_abi_test("abi_preloaded") else { return };
    let out = run(&mut preloaded(&exe), Duration::from_secs(120));
    check_abi_output(&out, "LD_PRELOAD");
}

/// Regression: the first allocation of every C program under LD_PRELOAD hung. The main
/// thread's exit-hook registration allocates while its heap is being set up, so it went to the
/// shared fallback heap, which started the reclaimer thread while holding its lock; creating
/// the thread allocates, which came back to the fallback heap and spun on that lock forever.
#[test]
fn first_allocation_of_a_c_program_does_not_deadlock() {
    for program in ["/bin/true", "/bin/ls", "/bin/echo"] {
        if !Path::new(program).is_file() {
            continue;
        }
        let out = run(preloaded(Path::new(program)).arg("/"), Duration::from_secs(20));
        assert_ok(&out, program);
    }
}

#[test]
fn thread_local_state_survives_dlopen() {
    let Some(cc) = cc() else { return };
    let dir = scratch("dlopen_tls");
    let module = dir.join("tls_module_1.so");
    compile(&cc, &[&c_dir().join("tls_module.c")], &module, &["-shared", "-fPIC"]);
    // More modules than glibc's 14 spare TLS slots per thread, so thread TLS vectors must grow.
    const MODULES: usize = 40;
    for i in 2..=MODULES {
        std::fs::copy(&module, dir.join(format!("tls_module_{i}.so"))).expect("copying the module");
    }
    let exe = dir.join("dlopen_tls");
    compile(&cc, &[&c_dir().join("dlopen_tls.c")], &exe, &["-pthread", "-ldl"]);
    let out = run(preloaded(&exe).arg(&dir).arg(MODULES.to_string()), Duration::from_secs(60));
    assert_ok(&out, "dlopen_tls under LD_PRELOAD");
    assert!(String::from_utf8_lossy(&out.stdout).contains("modules ok"));
}
