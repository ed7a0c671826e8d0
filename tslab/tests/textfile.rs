//! `tslab export prometheus --textfile`: the file node_exporter's textfile collector reads is
//! replaced atomically with mode 0644 and nothing else left behind, and on every failure
//! (missing directory, a file where a directory should be, no write permission, a file size
//! limit, a full file system) the old file stays as it was and the error is one line.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

mod export_util;
use export_util::*;
#[test]
fn textfile_has_mode_0644_and_the_stdout_text_and_nothing_else_is_left() {
    let dir = tempdir();
    let path = dir.path().join("tslab.prom");
    let stdout = stdout_text(&tslab(&["export", "prometheus", DEMO], None));
    // A restrictive umask must not leak into the file's mode: node_exporter may run as another user.
    for round in 0..2 {
        let out = run(
            Command::new("sh").args([
                "-c",
                "umask 077; exec \"$0\" \"$@\"",
                TSLAB,
                "export",
                "prometheus",
                DEMO,
                "--textfile",
                arg(&path),
            ]),
            None,
        );
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "round {round}: output besides the file");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), stdout, "round {round}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o644, "round {round}");
        assert_eq!(listing(dir.path()), ["tslab.prom"], "round {round}");
    }
}

#[test]
fn textfile_relative_to_the_working_directory() {
    let dir = tempdir();
    let out = run(
        Command::new(TSLAB).args(["export", "prometheus", DEMO, "--textfile", "x.prom"]).current_dir(dir.path()),
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(listing(dir.path()), ["x.prom"]);
}

#[test]
fn stale_temporary_files_of_a_killed_run_are_removed() {
    let dir = tempdir();
    let stale = dir.path().join(".tslab.prom.4242.1.tmp");
    std::fs::write(&stale, "half a file").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
    let fresh = dir.path().join(".tslab.prom.4243.1.tmp"); // may belong to a run in progress
    std::fs::write(&fresh, "being written").unwrap();
    let out = tslab(&["export", "prometheus", DEMO, "--textfile", arg(&dir.path().join("tslab.prom"))], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(listing(dir.path()), [".tslab.prom.4243.1.tmp", "tslab.prom"]);
}

#[test]
fn textfile_in_a_missing_directory_fails_and_creates_nothing() {
    let dir = tempdir();
    let path = dir.path().join("missing").join("tslab.prom");
    let out = tslab(&["export", "prometheus", DEMO, "--textfile", arg(&path)], None);
    assert_one_line_error(&out, "does not exist: create it");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no file was written"));
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn textfile_under_a_regular_file_fails_and_creates_nothing() {
    // Root can write anywhere, but not inside a regular file.
    let dir = tempdir();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = tslab(&["export", "prometheus", DEMO, "--textfile", arg(&file.join("tslab.prom"))], None);
    assert_one_line_error(&out, "is not a directory");
    assert_eq!(listing(dir.path()), ["not-a-dir"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn textfile_that_is_a_directory_or_not_named_prom_is_refused() {
    let dir = tempdir();
    let sub = dir.path().join("d.prom");
    std::fs::create_dir(&sub).unwrap();
    assert_one_line_error(&tslab(&["export", "prometheus", DEMO, "--textfile", arg(&sub)], None), "is a directory");
    let txt = dir.path().join("tslab.txt");
    assert_one_line_error(&tslab(&["export", "prometheus", DEMO, "--textfile", arg(&txt)], None), "must end in .prom");
    assert_eq!(listing(dir.path()), ["d.prom"]);
    assert!(listing(&sub).is_empty());
}

#[test]
fn textfile_in_a_directory_without_write_permission_keeps_the_old_file() {
    let dir = tempdir();
    let target = dir.path().join("ro");
    std::fs::create_dir(&target).unwrap();
    let path = target.join("tslab.prom");
    std::fs::write(&path, "old content\n").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let doc = std::fs::read(DEMO).unwrap();
    let out = if is_root() {
        // Root may write anywhere: run tslab as nobody in a directory that root owns.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        if !Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: needs setpriv to run tslab as another user");
            return;
        }
        let out = run(
            Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups", TSLAB]).args([
                "export",
                "prometheus",
                "-",
                "--textfile",
                arg(&path),
            ]),
            Some(&doc),
        );
        if out.status.code() != Some(2) && String::from_utf8_lossy(&out.stderr).contains("Permission denied") {
            eprintln!("skipped: the tslab binary is not executable by uid 65534 here");
            return;
        }
        out
    } else {
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o555)).unwrap();
        tslab(&["export", "prometheus", "-", "--textfile", arg(&path)], Some(&doc))
    };
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_one_line_error(&out, "permission denied in");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the previous file is left as it was"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old content\n");
    assert_eq!(listing(&target), ["tslab.prom"]);
}

#[test]
fn textfile_over_a_file_size_limit_fails_and_keeps_the_old_file() {
    let dir = tempdir();
    let path = dir.path().join("tslab.prom");
    std::fs::write(&path, "old content\n").unwrap();
    // SIGXFSZ ignored (kept across exec), so a write past the limit fails with EFBIG instead of
    // killing the process; `ulimit -f 8` allows 4 or 8 KiB, the text is far larger.
    let limited = |args: &[&str]| {
        let script = "trap '' XFSZ; ulimit -f 8 || exit 99; exec \"$0\" \"$@\"";
        run(Command::new("sh").args(["-c", script, TSLAB]).args(args), None)
    };
    // The limit does not stop tslab as such: the same export to a pipe works.
    let to_pipe = limited(&["export", "prometheus", DEMO]);
    assert!(
        to_pipe.status.success() && to_pipe.stdout.len() > 16 * 1024,
        "{}",
        String::from_utf8_lossy(&to_pipe.stderr)
    );
    let out = limited(&["export", "prometheus", DEMO, "--textfile", arg(&path)]);
    assert_one_line_error(&out, "file too large");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the previous file is left as it was"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old content\n");
    assert_eq!(listing(dir.path()), ["tslab.prom"]);
}

#[test]
fn textfile_on_a_full_file_system_fails_and_keeps_the_old_file() {
    // A 16 KiB tmpfs in a private mount namespace (nothing to clean up: it goes with the
    // namespace). Needs the right to mount: skipped where the container forbids it.
    let dir = tempdir();
    let unshare: &[&str] = if is_root() { &["-m"] } else { &["-r", "-m"] };
    let script = r#"
        mount -t tmpfs -o size=16k tmpfs "$1" 2>/dev/null || exit 77
        printf 'old content\n' > "$1/tslab.prom"
        "$2" export prometheus "$3" --textfile "$1/tslab.prom"
        echo "status=$?"
        cat "$1/tslab.prom"
        ls -A "$1"
    "#;
    let out =
        run(Command::new("unshare").args(unshare).args(["sh", "-c", script, "sh", arg(dir.path()), TSLAB, DEMO]), None);
    if out.status.code() != Some(0) {
        eprintln!(
            "skipped: cannot mount a tmpfs here ({:?}: {})",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "status=2\nold content\ntslab.prom\n", "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("tslab: cannot write textfile ")
            && stderr.contains("no space left on device: free space in"),
        "{stderr}"
    );
    assert!(stderr.contains("the previous file is left as it was"), "{stderr}");
    assert!(listing(dir.path()).is_empty(), "the tmpfs leaked out of its namespace");
}
