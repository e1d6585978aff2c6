//! `meshproof tools install` against a real HTTP server on loopback (a tokio TcpListener that
//! speaks just enough HTTP/1.1), serving release artifacts made here: the real tools.yaml,
//! pointed at the server through the mirror seam (`MESHPROOF_TOOLS_BASE_URL`), with locks and
//! the cache in temp dirs.

use meshproof::toolchain::download::Limits;
use meshproof::toolchain::install::{Installer, Outcome, Request, VerifiedBy};
use meshproof::toolchain::lock::Lock;
use meshproof::toolchain::table::Table;
use meshproof::toolchain::{Platform, ToolchainError};
use sha2::Digest as _;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LINUX: Platform = Platform {
    os: "linux",
    arch: "amd64",
};

#[derive(Clone)]
enum Reply {
    Ok(Vec<u8>),
    /// Declares `declared` bytes, sends `body`, closes.
    Short {
        body: Vec<u8>,
        declared: usize,
    },
    /// Reads the request and never answers (the connection is held for a bounded time).
    Silent,
    /// `302 Found` to this path on the same server, as GitHub sends release downloads to its
    /// storage host.
    Redirect(String),
}

/// A loopback HTTP server on its own thread and runtime; paths not set answer 404.
struct Server {
    addr: std::net::SocketAddr,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Server {
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (r, h) = (routes.clone(), hits.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((mut sock, _)) = listener.accept().await else {
                        return;
                    };
                    let (r, h) = (r.clone(), h.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            if buf.len() > 16 * 1024 {
                                return;
                            }
                        }
                        h.fetch_add(1, Ordering::SeqCst);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                        let reply = r.lock().unwrap().get(&path).cloned();
                        if let Some(Reply::Redirect(to)) = &reply {
                            let host = text
                                .lines()
                                .find_map(|l| l.strip_prefix("host: ").or_else(|| l.strip_prefix("Host: ")))
                                .unwrap_or("")
                                .trim()
                                .to_string();
                            let head = format!(
                                "HTTP/1.1 302 Found\r\nLocation: http://{host}{to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            let _ = sock.write_all(head.as_bytes()).await;
                            let _ = sock.flush().await;
                            return;
                        }
                        let (status, body, declared) = match reply {
                            None => ("404 Not Found", b"not found".to_vec(), None),
                            Some(Reply::Ok(b)) => ("200 OK", b, None),
                            Some(Reply::Short { body, declared }) => {
                                ("200 OK", body, Some(declared))
                            }
                            Some(Reply::Redirect(_)) => unreachable!("answered above"),
                            Some(Reply::Silent) => {
                                // Bounded: the test's client gives up long before.
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                        };
                        let head = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            declared.unwrap_or(body.len())
                        );
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(&body).await;
                        let _ = sock.flush().await;
                    });
                }
            });
        });
        Server { addr, routes, hits }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `url` (an https URL of the table) at its mirror path.
    fn set(&self, url: &str, reply: Reply) {
        let path = format!("/{}", url.strip_prefix("https://").unwrap());
        self.routes.lock().unwrap().insert(path, reply);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// A gzip'd tarball of `(name, bytes)` regular files, names written as given.
fn targz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in files {
        append_raw(&mut b, name, data, tar::EntryType::Regular, None);
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// Appends an entry whose name (and link target) bytes are written as given, bypassing the tar
/// crate's own refusal of `..` and absolute paths: an attacker's archive does not use it.
fn append_raw<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    kind: tar::EntryType,
    link: Option<&str>,
) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_mode(0o755);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// An entry of a hostile tarball: name, type, link target.
type EvilEntry = (&'static str, tar::EntryType, Option<&'static str>);

fn evil_targz(entries: &[EvilEntry], member: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, kind, link) in entries {
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"#!/bin/sh\necho pwned\n"
        } else {
            b""
        };
        append_raw(&mut b, name, data, *kind, *link);
    }
    append_raw(
        &mut b,
        member,
        b"#!/bin/sh\necho helm\n",
        tar::EntryType::Regular,
        None,
    );
    b.into_inner().unwrap().finish().unwrap()
}

struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
    table: Table,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            server: Server::start(),
            dir: tempfile::tempdir().unwrap(),
            table: Table::committed().unwrap(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn installer(&self, committed: &str) -> Installer {
        Installer {
            table: self.table.clone(),
            committed: Lock::parse(committed, "tools.lock (committed)").unwrap(),
            user_lock: self.cache().join("tools.lock"),
            cache: self.cache(),
            base_url: Some(self.server.base()),
            limits: Limits {
                connect: Duration::from_secs(5),
                total: Duration::from_secs(2),
                max_bytes: 1 << 20,
            },
        }
    }

    fn req(&self, tool: &str) -> Request {
        Request {
            tool: tool.into(),
            version: self.table.version(tool).unwrap_or("v1.36.4").into(),
            platform: LINUX,
        }
    }

    fn artifact(&self, tool: &str) -> meshproof::toolchain::table::Artifact {
        let r = self.req(tool);
        self.table.artifact(tool, &r.version, LINUX).unwrap()
    }

    /// Serves helm's tarball with `member` content and its published `.sha256sum`.
    fn serve_helm(&self, tarball: &[u8], published_sha: &str) -> String {
        let a = self.artifact("helm");
        self.server.set(&a.url, Reply::Ok(tarball.to_vec()));
        self.server.set(
            &a.checksum.url,
            Reply::Ok(format!("{published_sha}  {}\n", a.file_name).into_bytes()),
        );
        a.url
    }

    /// Serves kind's raw binary `bin` and its published `.sha256sum`; returns the artifact.
    fn serve_kind(&self, bin: &[u8]) -> meshproof::toolchain::table::Artifact {
        let a = self.artifact("kind");
        self.server.set(&a.url, Reply::Ok(bin.to_vec()));
        self.server.set(
            &a.checksum.url,
            Reply::Ok(format!("{}  kind-linux-amd64\n", sha(bin)).into_bytes()),
        );
        a
    }

    /// Every file under the temp dir (the cache and anything an escape would reach).
    fn files(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut v = Vec::new();
        walk(self.dir.path(), &mut v);
        v
    }
}

const HELM: &[u8] = b"#!/bin/sh\necho v3.19.0+gtest\n";

#[tokio::test]
async fn a_good_archive_is_installed_executable_and_its_checksum_recorded() {
    let f = Fixture::new();
    let tgz = targz(&[
        ("linux-amd64/LICENSE", b"Apache"),
        ("linux-amd64/helm", HELM),
    ]);
    f.serve_helm(&tgz, &sha(&tgz));
    let inst = f.installer("");
    let out = inst.install(&f.req("helm")).await.unwrap();
    let Outcome::Installed { path, verified_by } = out else {
        panic!("{out:?}")
    };
    assert_eq!(path, f.cache().join("tools/helm/v3.19.0/linux-amd64/helm"));
    assert_eq!(std::fs::read(&path).unwrap(), HELM);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let line = format!("helm v3.19.0 linux/amd64 {}", sha(&tgz));
    match verified_by {
        VerifiedBy::Published {
            lock_line,
            checksum_url,
        } => {
            assert_eq!(lock_line, line);
            assert!(checksum_url.ends_with("helm-v3.19.0-linux-amd64.tar.gz.sha256sum"));
        }
        other => panic!("{other:?}"),
    }
    let user = Lock::read(&f.cache().join("tools.lock")).unwrap();
    assert_eq!(user.get("helm", "v3.19.0", LINUX), Some(sha(&tgz).as_str()));
    // Only the executable and its install record: the LICENSE beside it in the tarball is not.
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".meshproof-install.json", "helm"]);

    // A second install finds it verified and downloads nothing.
    let hits = f.server.hits();
    let again = inst.install(&f.req("helm")).await.unwrap();
    assert_eq!(again, Outcome::AlreadyInstalled(path.clone()));
    assert_eq!(f.server.hits(), hits);

    // A binary changed on disk is not "installed": it is fetched and verified again.
    std::fs::write(&path, b"tampered").unwrap();
    let hits = f.server.hits();
    let third = inst.install(&f.req("helm")).await.unwrap();
    assert!(
        matches!(
            third,
            Outcome::Installed {
                verified_by: VerifiedBy::UserLock(_),
                ..
            }
        ),
        "{third:?}"
    );
    assert!(f.server.hits() > hits);
    assert_eq!(std::fs::read(&path).unwrap(), HELM);
}

/// GitHub answers a release download with a redirect to its storage host: the downloader
/// follows it (CONTRACTS.md TOOL-8), and a redirect loop is an error, not a hang.
#[tokio::test]
async fn a_redirected_download_is_followed_and_a_redirect_loop_is_an_error() {
    let f = Fixture::new();
    let bin = b"\x7fELF kind v0.33.0 via storage".to_vec();
    let a = f.serve_kind(&bin);
    f.server.set(
        &a.url,
        Reply::Redirect("/objects.storage.test/kind-linux-amd64".into()),
    );
    f.server.set(
        "https://objects.storage.test/kind-linux-amd64",
        Reply::Ok(bin.clone()),
    );
    let out = f.installer("").install(&f.req("kind")).await.unwrap();
    let Outcome::Installed { path, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(std::fs::read(path).unwrap(), bin);

    let g = Fixture::new();
    let a = g.serve_kind(&bin);
    let own = format!("/{}", a.url.strip_prefix("https://").unwrap());
    g.server.set(&a.url, Reply::Redirect(own));
    let err = g
        .installer("")
        .install(&g.req("kind"))
        .await
        .expect_err("a redirect loop");
    let err = format!("{err:#}");
    assert!(err.contains("kind") && err.contains("redirect"), "{err}");
    assert!(
        g.files().iter().all(|p| !p.ends_with("kind")),
        "{:?}",
        g.files()
    );
}

#[tokio::test]
async fn a_raw_binary_is_verified_against_its_sha256sum_file() {
    let f = Fixture::new();
    let bin = b"\x7fELF kind v0.33.0".to_vec();
    f.serve_kind(&bin);
    let out = f.installer("").install(&f.req("kind")).await.unwrap();
    let Outcome::Installed { path, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(std::fs::read(path).unwrap(), bin);
}

#[tokio::test]
async fn linkerd_is_verified_against_the_digest_github_records() {
    let f = Fixture::new();
    let bin = b"linkerd edge-26.8.3".to_vec();
    let a = f.artifact("linkerd");
    f.server.set(&a.url, Reply::Ok(bin.clone()));
    let release = format!(
        r#"{{"tag_name":"edge-26.8.3","assets":[{{"name":"{}","digest":"sha256:{}"}}]}}"#,
        a.file_name,
        sha(&bin)
    );
    f.server
        .set(&a.checksum.url, Reply::Ok(release.into_bytes()));
    let out = f.installer("").install(&f.req("linkerd")).await.unwrap();
    assert!(matches!(out, Outcome::Installed { .. }), "{out:?}");
}

#[tokio::test]
async fn a_wrong_checksum_is_an_error_and_nothing_is_installed() {
    let f = Fixture::new();
    let tgz = targz(&[("linux-amd64/helm", HELM)]);
    let url = f.serve_helm(&tgz, &"0".repeat(64));
    let e = f.installer("").install(&f.req("helm")).await.unwrap_err();
    let ToolchainError::Mismatch {
        tool,
        url: u,
        expected,
        got,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (tool.as_str(), expected.as_str(), got.as_str()),
        ("helm", "0".repeat(64).as_str(), sha(&tgz).as_str())
    );
    assert!(u.ends_with(url.strip_prefix("https://").unwrap()), "{u}");
    let msg = e.to_string();
    assert!(
        msg.contains("helm") && msg.contains(&sha(&tgz)) && msg.contains("checksum mismatch"),
        "{msg}"
    );
    assert!(f.files().is_empty(), "{:?}", f.files());
}

#[tokio::test]
async fn a_checksum_file_that_lacks_the_artifact_is_an_error() {
    let f = Fixture::new();
    let tgz = targz(&[("linux-amd64/helm", HELM)]);
    let a = f.artifact("helm");
    f.server.set(&a.url, Reply::Ok(tgz.clone()));
    f.server.set(
        &a.checksum.url,
        Reply::Ok(format!("{}  helm-v3.19.0-darwin-arm64.tar.gz\n", sha(&tgz)).into_bytes()),
    );
    let e = f.installer("").install(&f.req("helm")).await.unwrap_err();
    assert!(matches!(e, ToolchainError::NotListed { .. }), "{e}");
    assert!(
        e.to_string().contains("helm-v3.19.0-linux-amd64.tar.gz"),
        "{e}"
    );
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_truncated_download_is_an_error() {
    let f = Fixture::new();
    let tgz = targz(&[("linux-amd64/helm", HELM)]);
    let a = f.artifact("helm");
    f.server.set(
        &a.url,
        Reply::Short {
            body: tgz[..tgz.len() / 2].to_vec(),
            declared: tgz.len(),
        },
    );
    f.server.set(
        &a.checksum.url,
        Reply::Ok(format!("{}  {}\n", sha(&tgz), a.file_name).into_bytes()),
    );
    let e = f.installer("").install(&f.req("helm")).await.unwrap_err();
    assert!(
        matches!(e, ToolchainError::Truncated { expected, .. } if expected == tgz.len() as u64),
        "{e}"
    );
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_missing_release_is_a_404_error() {
    let f = Fixture::new();
    let e = f.installer("").install(&f.req("helm")).await.unwrap_err();
    assert!(
        matches!(e, ToolchainError::Status { status: 404, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("not found"), "{e}");
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_error() {
    let f = Fixture::new();
    f.server.set(&f.artifact("helm").url, Reply::Silent);
    let e = f.installer("").install(&f.req("helm")).await.unwrap_err();
    assert!(matches!(e, ToolchainError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn tarballs_that_escape_their_directory_are_refused_and_write_nothing() {
    let cases: Vec<(&str, Vec<EvilEntry>)> = vec![
        ("`..`", vec![("../escape", tar::EntryType::Regular, None)]),
        (
            "deep `..`",
            vec![("linux-amd64/../../escape", tar::EntryType::Regular, None)],
        ),
        (
            "an absolute path",
            vec![("/tmp/meshproof-abs-escape", tar::EntryType::Regular, None)],
        ),
        (
            "a symlink out",
            vec![(
                "linux-amd64/out",
                tar::EntryType::Symlink,
                Some("../../etc/passwd"),
            )],
        ),
        (
            "an absolute symlink",
            vec![("out", tar::EntryType::Symlink, Some("/etc/passwd"))],
        ),
    ];
    for (what, entries) in cases {
        let f = Fixture::new();
        let tgz = evil_targz(&entries, "linux-amd64/helm");
        f.serve_helm(&tgz, &sha(&tgz));
        let e = f.installer("").install(&f.req("helm")).await.unwrap_err();
        assert!(
            matches!(&e, ToolchainError::BadArchive { message, .. } if message.contains("refused")),
            "{what}: {e}"
        );
        assert!(f.files().is_empty(), "{what}: {:?}", f.files());
        assert!(!f.dir.path().parent().unwrap().join("escape").exists());
        assert!(!Path::new("/tmp/meshproof-abs-escape").exists());
        // Nothing recorded either: a refused archive is not a verified install.
        assert!(!f.cache().join("tools.lock").exists(), "{what}");
    }
    // The member itself a symlink: refused, even pointing inside.
    let f = Fixture::new();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    append_raw(
        &mut b,
        "linux-amd64/real",
        HELM,
        tar::EntryType::Regular,
        None,
    );
    append_raw(
        &mut b,
        "linux-amd64/helm",
        b"",
        tar::EntryType::Symlink,
        Some("real"),
    );
    let tgz = b.into_inner().unwrap().finish().unwrap();
    f.serve_helm(&tgz, &sha(&tgz));
    let e = f.installer("").install(&f.req("helm")).await.unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // A tarball without the member.
    let f = Fixture::new();
    let tgz = targz(&[("helm", HELM)]);
    f.serve_helm(&tgz, &sha(&tgz));
    let e = f.installer("").install(&f.req("helm")).await.unwrap_err();
    assert!(e.to_string().contains("no linux-amd64/helm"), "{e}");
}

#[tokio::test]
async fn a_committed_lock_mismatch_is_an_error_even_when_the_published_checksum_agrees() {
    let f = Fixture::new();
    let tgz = targz(&[("linux-amd64/helm", HELM)]);
    f.serve_helm(&tgz, &sha(&tgz));
    let locked = "1".repeat(64);
    let inst = f.installer(&format!("helm v3.19.0 linux/amd64 {locked}\n"));
    let e = inst.install(&f.req("helm")).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ToolchainError::Mismatch { .. }), "{msg}");
    assert!(
        msg.contains("committed tools.lock") && msg.contains(&locked) && msg.contains(&sha(&tgz)),
        "{msg}"
    );
    assert!(f.files().is_empty());
    // And the committed line, when it matches, verifies without asking for the checksum file.
    let f = Fixture::new();
    let a = f.artifact("helm");
    f.server.set(&a.url, Reply::Ok(tgz.clone()));
    let inst = f.installer(&format!("helm v3.19.0 linux/amd64 {}\n", sha(&tgz)));
    let out = inst.install(&f.req("helm")).await.unwrap();
    assert!(
        matches!(
            out,
            Outcome::Installed {
                verified_by: VerifiedBy::CommittedLock,
                ..
            }
        ),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_second_install_of_changed_bytes_fails_against_the_recorded_checksum() {
    let f = Fixture::new();
    let first = targz(&[("linux-amd64/helm", HELM)]);
    f.serve_helm(&first, &sha(&first));
    let inst = f.installer("");
    let Outcome::Installed { path, .. } = inst.install(&f.req("helm")).await.unwrap() else {
        panic!()
    };
    // Upstream (or a mirror) now serves other bytes, with a checksum file that agrees with them.
    let second = targz(&[("linux-amd64/helm", b"#!/bin/sh\necho other\n")]);
    f.serve_helm(&second, &sha(&second));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    let e = inst.install(&f.req("helm")).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ToolchainError::Mismatch { .. }), "{msg}");
    assert!(
        msg.contains(&sha(&first)) && msg.contains(&sha(&second)) && msg.contains("tools.lock"),
        "{msg}"
    );
    assert!(!path.exists());
    // A committed lock that disagrees with the per-user one is an error too, not a choice.
    let inst = f.installer(&format!("helm v3.19.0 linux/amd64 {}\n", sha(&second)));
    let e = inst.install(&f.req("helm")).await.unwrap_err();
    assert!(matches!(e, ToolchainError::LocksDisagree { .. }), "{e}");
}

/// The command line: `tools install --only kind` through the mirror seam prints the line to add
/// to tools.lock, and `tools path` then prints the directory.
#[test]
fn the_cli_installs_prints_the_lock_line_and_the_path() {
    let f = Fixture::new();
    let bin = b"kind from the cli test".to_vec();
    f.serve_kind(&bin);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_meshproof"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("XDG_CACHE_HOME", f.dir.path().join("xdg"))
            .env("MESHPROOF_TOOLS_BASE_URL", f.server.base())
            .output()
            .unwrap()
    };
    let sel = ["--only", "kind", "--os", "linux", "--arch", "amd64"];
    let out = run(&[&["tools", "install"][..], &sel].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("\nkind v0.33.0 linux/amd64 {}\n", sha(&bin))),
        "{stdout}"
    );
    let dir = f
        .dir
        .path()
        .join("xdg/meshproof/tools/kind/v0.33.0/linux-amd64");
    assert_eq!(std::fs::read(dir.join("kind")).unwrap(), bin);
    let out = run(&[&["tools", "path"][..], &sel].concat());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dir.display().to_string()
    );
    // An unknown tool is a usage error.
    let out = run(&["tools", "install", "--only", "kubecolor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such tool"));
    // A failed download is exit 1 naming the tool.
    let out = run(&[
        "tools", "install", "--only", "helm", "--os", "linux", "--arch", "amd64",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("helm v3.19.0 linux/amd64: "));
}

/// `MESHPROOF_INSTALL_TOOLS=1 cargo test --test e2e`: the harness installs the selected cell's
/// pinned tools before anything else, and a failed install stops the run (exit 101) naming the
/// tool and the download, rather than going on to report trials ignored.
#[test]
fn the_e2e_harness_installs_on_demand_and_stops_when_it_cannot() {
    let f = Fixture::new();
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["test", "-q", "--test", "e2e", "--", "linkerd[k8s=1.36]"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // This test's crate variables must not reach the nested cargo (as in tests/report_ci.rs).
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&k.as_str())
        {
            cmd.env_remove(&k);
        }
    }
    let out = cmd
        .env("MESHPROOF_INSTALL_TOOLS", "1")
        .env("XDG_CACHE_HOME", f.dir.path().join("xdg"))
        .env("MESHPROOF_TOOLS_BASE_URL", f.server.base())
        .env_remove("MESHPROOF_REQUIRE_CLUSTER")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(
        stderr.contains("e2e: error: MESHPROOF_INSTALL_TOOLS=1: "),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert!(f.server.hits() >= 1, "the harness asked the mirror");
    assert!(!f.dir.path().join("xdg/meshproof/tools").exists());
}
