//! Docker for the tests that need an engine (`tests/restore_reach.rs`, `tests/mirror_local.rs`):
//! the CLI with its output checked, and local images made from this machine's files (no
//! registry is reachable where the tests run).
#![allow(dead_code)]

use std::process::Command;

/// `docker ARGS`, which must succeed; its trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Imports a rootfs holding busybox (`sh`, `wget`, `sleep`) and whatever `extra` adds as
/// `image`, once; `changes` are `docker import --change` instructions.
pub fn import_image_with(image: &str, changes: &[&str], extra: impl FnOnce(&std::path::Path)) {
    if Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .unwrap()
        .status
        .success()
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for a in ["sh", "wget", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    extra(root.path());
    let tar = Command::new("tar")
        .args(["-C"])
        .arg(root.path())
        .args(["-c", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut import = Command::new("docker");
    import.arg("import");
    for c in changes {
        import.args(["--change", c]);
    }
    let mut import = import
        .args(["-", image])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(import.wait().unwrap().success());
}

/// [`import_image_with`] without changes.
pub fn import_image(image: &str, extra: impl FnOnce(&std::path::Path)) {
    import_image_with(image, &[], extra)
}

/// Copies `files` (absolute paths, symlinks followed) into `root` at the same paths, with every
/// library `ldd` names for each: what a dynamically linked program needs in an image.
pub fn copy_with_libraries(root: &std::path::Path, files: &[&str]) {
    let mut all: Vec<String> = Vec::new();
    for f in files {
        all.push(f.to_string());
        let ldd = Command::new("ldd").arg(f).output().unwrap();
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // `libc.so.6 => /lib/…/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
            if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
                all.push(path.to_string());
            }
        }
    }
    for f in all {
        let to = root.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
}

/// A suffix that keeps names of concurrent tests apart.
pub fn rand_suffix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{t:x}")
}
