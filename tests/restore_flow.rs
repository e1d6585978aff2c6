//! The whole restore flow against in-memory test doubles of the cluster and its lifecycle, with
//! the real pieces everywhere else: a real git repository served over smart HTTP by meshproof
//! (the cluster double fetches it with real `git`, as source-controller would), real sealing
//! through `kubeseal`'s command line (a script double), and `flux` command lines (a script
//! double that records them).
//!
//! The cluster double models what matters for the verdict: a SealedSecret unseals only in a
//! cluster whose controller *loaded* (at start) the key it was sealed for; Flux applies the
//! repository's files at the revision git serves; a function is available only once its secret
//! exists. Time is a fake clock the doubles advance, so RTOs are exact.

use base64::Engine;
use meshproof::check::restore::Phase;
use meshproof::check::Outcome;
use meshproof::process::Cmd;
use meshproof::restore::desired::FunctionFormat;
use meshproof::restore::flux::FluxSpec;
use meshproof::restore::keys::KEY_LABEL;
use meshproof::restore::seal::Controller;
use meshproof::restore::{
    self, Clock, ClusterOps, Lifecycle, OpsError, ResourceKind, RestoreSpec, Timeouts, Tools,
};
use meshproof::scenario::{Name, RestoreCheck};
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------- fake clock (double)

#[derive(Clone, Default)]
struct FakeClockDouble(Arc<Mutex<Duration>>);

impl FakeClockDouble {
    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClockDouble {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

// ---------------------------------------------------------------- CLI doubles

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n# TEST DOUBLE ({name})\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_string_lossy().into_owned()
}

/// `flux` double: appends its argv (one line) to `flux.log`, succeeds.
fn flux_double(dir: &Path) -> String {
    script(
        dir,
        "flux-double",
        &format!("echo \"$*\" >> '{}/flux.log'", dir.display()),
    )
}

/// `kubeseal` double. `--fetch-cert` prints the certificate in `cert-of-cluster.pem` (the
/// test writes the first cluster's there). Sealing "encrypts" as `DOUBLE-<cert id>-<rot13 of the
/// base64>`: useless as encryption, but bound to the certificate like real sealing, and free of
/// the plaintext (raw or base64), which meshproof checks.
fn kubeseal_double(dir: &Path) -> String {
    let body = format!(
        r#"DIR='{}'
echo "$*" >> "$DIR/kubeseal.log"
case "$1" in --fetch-cert) cat "$DIR/cert-of-cluster.pem"; exit 0;; esac
CERT=""
while [ $# -gt 0 ]; do [ "$1" = "--cert" ] && CERT="$2"; shift; done
IN=$(cat)
NAME=$(printf '%s\n' "$IN" | sed -n 's/^  name: //p')
NS=$(printf '%s\n' "$IN" | sed -n 's/^  namespace: //p')
TOK=$(printf '%s\n' "$IN" | sed -n 's/^  token: //p' | tr 'A-Za-z' 'N-ZA-Mn-za-m')
ID=$(sha256sum "$CERT" | cut -c1-16)
cat <<EOF
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: $NAME
  namespace: $NS
spec:
  encryptedData:
    token: DOUBLE-$ID-$TOK
EOF"#,
        dir.display()
    );
    script(dir, "kubeseal-double", &body)
}

fn cert_pem(cluster: u32) -> String {
    format!("-----BEGIN CERTIFICATE-----\nMIIDOUBLECERTIFICATEOFCLUSTER{cluster}\n-----END CERTIFICATE-----\n")
}

fn cert_id(pem: &str) -> String {
    hex::encode(sha2::Sha256::digest(pem.as_bytes()))[..16].to_string()
}

fn rot13(c: char) -> char {
    match c {
        'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
        'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
        _ => c,
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ---------------------------------------------------------------- cluster double

#[derive(Clone, Copy, Default)]
struct Behaviour {
    /// After the key restore the controller produces a different value (a broken restore).
    corrupt_after_restore: bool,
    /// The rebuilt cluster's controller already has the old key (the key survived somewhere).
    new_cluster_has_old_key: bool,
    /// `create` never finishes.
    create_hangs: bool,
    /// The first cluster's controller produces a different value from the start (a Secret that
    /// is not the one meshproof sealed).
    corrupt_from_the_start: bool,
    /// source-controller cannot reach the git server (a firewall on the kind bridge).
    git_unreachable: bool,
    /// On the rebuilt cluster, Flux clones and applies this many (fake) seconds after the
    /// sources are applied: the first observation afterwards pays for it.
    flux_apply_secs: u64,
    /// Each observation of the SealedSecrets takes this many (fake) seconds.
    observe_secs: u64,
    /// On the rebuilt cluster, a function whose pod started before its Secret existed stays
    /// unavailable until it is restarted (kubelet's mount retry backoff).
    mount_backoff: bool,
}

struct State {
    id: u32,
    destroyed: bool,
    behaviour: Behaviour,
    /// Key Secrets stored in the controller namespace.
    keys: Vec<Value>,
    /// Certificates of the keys the controller loaded when it (re)started.
    loaded: Vec<String>,
    restarted: bool,
    objects: BTreeMap<(String, String, String), Value>,
    events: Vec<Value>,
    /// Every plaintext value the controller produced (to scan reports for leaks).
    plaintexts: Vec<String>,
    clock: FakeClockDouble,
    /// Flux's apply still to come (`flux_apply_secs`): the source URL and Kustomization name.
    pending_flux: Option<(String, String)>,
    /// Functions waiting out the mount backoff (`mount_backoff`).
    stuck: std::collections::BTreeSet<String>,
    /// Functions restarted.
    restarted_functions: Vec<String>,
}

#[derive(Clone)]
struct ClusterDouble {
    state: Arc<Mutex<State>>,
    kubeconfig: PathBuf,
}

fn key_secret(cluster: u32, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {
            "name": name, "namespace": "kube-system", "labels": { KEY_LABEL: "active" },
            "uid": format!("uid-{cluster}"), "resourceVersion": "42", "creationTimestamp": "2026-11-21T20:00:00Z",
            "managedFields": [{ "manager": "controller" }],
        },
        "data": { "tls.crt": b64(&cert_pem(cluster)), "tls.key": b64(&format!("PRIVATE-KEY-OF-CLUSTER-{cluster}-DOUBLE")) },
    })
}

fn key_cert(k: &Value) -> String {
    let d = base64::engine::general_purpose::STANDARD
        .decode(k["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    String::from_utf8(d).unwrap()
}

impl ClusterDouble {
    fn new(id: u32, behaviour: Behaviour, clock: FakeClockDouble, dir: &Path) -> ClusterDouble {
        let kubeconfig = dir.join(format!("kubeconfig-{id}"));
        ClusterDouble {
            state: Arc::new(Mutex::new(State {
                id,
                destroyed: false,
                behaviour,
                keys: Vec::new(),
                loaded: Vec::new(),
                restarted: false,
                objects: BTreeMap::new(),
                events: Vec::new(),
                plaintexts: Vec::new(),
                clock,
                pending_flux: None,
                stuck: Default::default(),
                restarted_functions: Vec::new(),
            })),
            kubeconfig,
        }
    }

    /// What installing the sealed-secrets controller does: generate a key and load it.
    fn install_controller(&self) {
        let mut s = self.state.lock().unwrap();
        let id = s.id;
        s.keys
            .push(key_secret(id, &format!("sealed-secrets-key{id}")));
        s.loaded = s.keys.iter().map(key_cert).collect();
        if s.behaviour.new_cluster_has_old_key && id > 1 {
            s.loaded.push(cert_pem(1));
        }
    }

    /// Flux's delayed apply, paid by whoever observes the cluster first (`flux_apply_secs`).
    async fn settle_flux(&self) -> Result<(), OpsError> {
        let pending = {
            let mut s = self.alive()?;
            let p = s.pending_flux.take();
            if p.is_some() {
                let secs = s.behaviour.flux_apply_secs;
                s.clock.advance(Duration::from_secs(secs));
            }
            p
        };
        match pending {
            Some((url, kname)) => self.flux_sync(&url, &kname).await,
            None => Ok(()),
        }
    }

    /// What source-controller and kustomize-controller do with the sources.
    async fn flux_sync(&self, url: &str, kname: &str) -> Result<(), OpsError> {
        let (rev, objects) = flux_apply(url).await?;
        let mut s = self.alive()?;
        for o in objects {
            let kind = o["kind"].as_str().unwrap_or("").to_string();
            let ns = o["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            if kind == "SealedSecret" {
                process_sealed(&mut s, &o);
            } else {
                if kind == "Deployment" && s.behaviour.mount_backoff && s.id > 1 {
                    s.stuck.insert(name.clone());
                }
                s.objects.insert(key_of(&kind, &ns, &name), o);
            }
        }
        if let Some(k) = s
            .objects
            .get_mut(&key_of("Kustomization", "flux-system", kname))
        {
            k["metadata"]["generation"] = json!(1);
            k["status"] = json!({
                "observedGeneration": 1, "lastAppliedRevision": rev,
                "conditions": [{ "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded" }],
            });
        }
        Ok(())
    }

    fn alive(&self) -> Result<std::sync::MutexGuard<'_, State>, OpsError> {
        let s = self.state.lock().unwrap();
        if s.destroyed {
            return Err(OpsError(format!("cluster {} was destroyed", s.id)));
        }
        Ok(s)
    }
}

fn key_of(kind: &str, ns: &str, name: &str) -> (String, String, String) {
    (kind.into(), ns.into(), name.into())
}

/// The controller's unseal: DOUBLE-<cert id>-<rot13 of the base64>.
fn process_sealed(s: &mut State, ss: &Value) {
    let ns = ss["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = ss["metadata"]["name"].as_str().unwrap_or("").to_string();
    let tok = ss["spec"]["encryptedData"]["token"].as_str().unwrap_or("");
    let parts: Vec<&str> = tok.splitn(3, '-').collect();
    let can = parts.len() == 3 && s.loaded.iter().any(|c| cert_id(c) == parts[1]);
    let mut obj = ss.clone();
    obj["metadata"]["generation"] = json!(1);
    if can {
        let b64v: String = parts[2].chars().map(rot13).collect();
        let mut plain = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&b64v)
                .unwrap(),
        )
        .unwrap();
        if (s.behaviour.corrupt_after_restore && s.restarted) || s.behaviour.corrupt_from_the_start
        {
            plain.push_str("-corrupted");
        }
        s.plaintexts.push(plain.clone());
        s.objects.insert(
            key_of("Secret", &ns, &name),
            json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name, "namespace": ns }, "data": { "token": b64(&plain) } }),
        );
        obj["status"] = json!({ "observedGeneration": 1, "conditions": [{ "type": "Synced", "status": "True" }] });
    } else {
        // As v0.38.4 writes them: a message and no reason (SS-6), and the event (SS-7).
        obj["status"] = json!({ "observedGeneration": 1, "conditions": [{ "type": "Synced", "status": "False", "message": "no key could decrypt secret (token)" }] });
        s.events.push(json!({
            "type": "Warning", "reason": "ErrUnsealFailed", "message": "Failed to unseal: no key could decrypt secret (token)",
            "involvedObject": { "kind": "SealedSecret", "name": name, "namespace": ns },
        }));
    }
    s.objects.insert(key_of("SealedSecret", &ns, &name), obj);
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|d| <Value as serde::Deserialize>::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .collect()
}

/// What source-controller + kustomize-controller do: fetch `url` with real git, apply the
/// files listed in kustomization.yaml.
async fn flux_apply(url: &str) -> Result<(String, Vec<Value>), OpsError> {
    let dir = tempfile::tempdir().map_err(|e| OpsError(e.to_string()))?;
    let dest = dir.path().join("c");
    Cmd::new("git")
        .args(["clone", "--quiet", "--branch", "main", url])
        .arg(dest.as_os_str())
        .env("GIT_TERMINAL_PROMPT", "0")
        .timeout(Duration::from_secs(20))
        .run()
        .await
        .map_err(|e| OpsError(e.to_string()))?;
    let sha = Cmd::new("git")
        .args(["rev-parse", "HEAD"])
        .cwd(&dest)
        .run()
        .await
        .map_err(|e| OpsError(e.to_string()))?;
    let k: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dest.join("kustomization.yaml")).unwrap())
            .unwrap();
    let mut objects = Vec::new();
    for r in k["resources"].as_array().unwrap() {
        objects.extend(docs(
            &std::fs::read_to_string(dest.join(r.as_str().unwrap())).unwrap(),
        ));
    }
    Ok((format!("main@sha1:{}", sha.stdout_str().trim()), objects))
}

impl ClusterOps for ClusterDouble {
    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    async fn list(
        &self,
        kind: ResourceKind,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, OpsError> {
        self.settle_flux().await?;
        let s = self.alive()?;
        if kind == ResourceKind::SealedSecret {
            s.clock
                .advance(Duration::from_secs(s.behaviour.observe_secs));
        }
        Ok(match kind {
            ResourceKind::Secret
                if label_selector == Some(KEY_LABEL) && namespace == "kube-system" =>
            {
                s.keys.clone()
            }
            ResourceKind::Event => s
                .events
                .iter()
                .filter(|e| e["involvedObject"]["namespace"] == namespace)
                .cloned()
                .collect(),
            _ => s
                .objects
                .iter()
                .filter(|((k, ns, _), _)| k == kind.kind() && ns == namespace)
                .map(|(_, v)| v.clone())
                .filter(|v| match label_selector {
                    Some(l) => v["metadata"]["labels"].get(l).is_some(),
                    None => true,
                })
                .collect(),
        })
    }

    async fn get(
        &self,
        kind: ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, OpsError> {
        self.settle_flux().await?;
        let s = self.alive()?;
        let Some(mut v) = s
            .objects
            .get(&key_of(kind.kind(), namespace, name))
            .cloned()
        else {
            return Ok(None);
        };
        if kind == ResourceKind::Deployment {
            // Available only when every mounted secret exists.
            let sources = v
                .pointer("/spec/template/spec/volumes/0/projected/sources")
                .and_then(|x| x.as_array())
                .cloned();
            let ok = sources.unwrap_or_default().iter().all(|src| {
                let sn = src["secret"]["name"].as_str().unwrap_or("");
                s.objects.contains_key(&key_of("Secret", namespace, sn))
            });
            let ok = ok && !s.stuck.contains(name);
            let replicas = v["spec"]["replicas"].as_i64().unwrap_or(1);
            v["status"] = json!({ "availableReplicas": if ok { replicas } else { 0 } });
        }
        Ok(Some(v))
    }

    async fn apply(&self, yaml: &str) -> Result<(), OpsError> {
        let mut flux: Option<(String, String)> = None;
        {
            let mut s = self.alive()?;
            for d in docs(yaml) {
                let kind = d["kind"].as_str().unwrap_or("").to_string();
                let ns = d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let name = d["metadata"]["name"].as_str().unwrap_or("").to_string();
                match kind.as_str() {
                    "Secret" if d["metadata"]["labels"].get(KEY_LABEL).is_some() => {
                        assert!(
                            d["metadata"].get("uid").is_none(),
                            "restored keys must be stripped"
                        );
                        s.keys
                            .retain(|k| k["metadata"]["name"] != d["metadata"]["name"]);
                        s.keys.push(d);
                    }
                    "GitRepository" if s.behaviour.git_unreachable => {
                        let url = d["spec"]["url"].as_str().unwrap_or("").to_string();
                        let mut d = d;
                        d["status"] = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "GitOperationFailed",
                            "message": format!("failed to checkout and determine revision: unable to clone '{url}': dial tcp: i/o timeout")}]});
                        s.objects.insert(key_of(&kind, &ns, &name), d);
                    }
                    "GitRepository" => {
                        let url = d["spec"]["url"].as_str().unwrap_or("").to_string();
                        flux = Some((url, String::new()));
                        s.objects.insert(key_of(&kind, &ns, &name), d);
                    }
                    "Kustomization" => {
                        if let Some(f) = flux.as_mut() {
                            f.1 = name.clone();
                        }
                        s.objects.insert(key_of(&kind, &ns, &name), d);
                    }
                    _ => {
                        s.objects.insert(key_of(&kind, &ns, &name), d);
                    }
                }
            }
        }
        // Flux fetches and applies outside the lock (real git over HTTP), at once or, on a
        // rebuilt cluster with `flux_apply_secs`, when somebody next looks.
        if let Some((url, kname)) = flux {
            {
                let mut s = self.alive()?;
                if s.behaviour.flux_apply_secs > 0 && s.id > 1 {
                    s.pending_flux = Some((url, kname));
                    return Ok(());
                }
            }
            self.flux_sync(&url, &kname).await?;
        }
        Ok(())
    }

    async fn restart_deployment(&self, namespace: &str, name: &str) -> Result<(), OpsError> {
        let mut s = self.alive()?;
        if namespace == "openfaas-fn"
            && s.objects
                .contains_key(&key_of("Deployment", namespace, name))
        {
            s.clock.advance(Duration::from_secs(5));
            s.stuck.remove(name);
            s.restarted_functions.push(name.to_string());
            return Ok(());
        }
        if (namespace, name) != ("kube-system", "sealed-secrets-controller") {
            return Err(OpsError(format!("deployment {namespace}/{name} not found")));
        }
        s.clock.advance(Duration::from_secs(10));
        s.loaded = s.keys.iter().map(key_cert).collect();
        s.restarted = true;
        let sealed: Vec<Value> = s
            .objects
            .iter()
            .filter(|((k, _, _), _)| k == "SealedSecret")
            .map(|(_, v)| v.clone())
            .collect();
        for ss in sealed {
            process_sealed(&mut s, &ss);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- lifecycle double

struct LifecycleDouble {
    current: ClusterDouble,
    behaviour: Behaviour,
    clock: FakeClockDouble,
    dir: PathBuf,
    clusters: Vec<ClusterDouble>,
}

impl Lifecycle for LifecycleDouble {
    type Cluster = ClusterDouble;

    async fn destroy(&mut self) -> Result<(), OpsError> {
        self.clock.advance(Duration::from_secs(30));
        self.current.state.lock().unwrap().destroyed = true;
        Ok(())
    }

    /// A new cluster (60 s) and the stack on it (120 s).
    async fn rebuild(&mut self) -> Result<ClusterDouble, OpsError> {
        if self.behaviour.create_hangs {
            futures::future::pending::<()>().await;
        }
        self.clock.advance(Duration::from_secs(60));
        let id = self.current.state.lock().unwrap().id + 1;
        let c = ClusterDouble::new(id, self.behaviour, self.clock.clone(), &self.dir);
        self.current = c.clone();
        self.clusters.push(c.clone());
        self.clock.advance(Duration::from_secs(120));
        c.install_controller();
        Ok(c)
    }
}

// ---------------------------------------------------------------- harness

struct Run {
    verdict: meshproof::check::Verdict<meshproof::check::restore::RestoreEvidence>,
    dir: tempfile::TempDir,
    lifecycle: LifecycleDouble,
    first: ClusterDouble,
    workdir_after: Vec<String>,
}

fn spec(dir: &Path, max_recovery: Option<Duration>, control: Duration) -> RestoreSpec {
    RestoreSpec {
        check: RestoreCheck {
            functions: vec![Name::parse("env").unwrap()],
            sealed_secrets: vec![("openfaas-fn".into(), "meshproof-restore".into())],
            max_recovery,
        },
        image: "ghcr.io/openfaas/alpine:latest".into(),
        format: FunctionFormat::Deployment,
        controller: Controller::default(),
        flux: FluxSpec::new("v2.9.4"),
        serve_bind: "127.0.0.1:0".parse().unwrap(),
        serve_host: "127.0.0.1".into(),
        probe: None,
        timeouts: Timeouts {
            command: Duration::from_secs(20),
            prepare: Duration::from_secs(60),
            record: Duration::from_secs(10),
            destroy: Duration::from_secs(10),
            rebuild: Duration::from_millis(500),
            bootstrap: Duration::from_secs(10),
            control,
            control_hold: Duration::from_millis(100),
            key_restore: Duration::from_secs(10),
            reconcile: Duration::from_secs(10),
            restart: Duration::from_secs(10),
            verify: Duration::from_secs(10),
            poll: Duration::from_millis(20),
        },
        tools: Tools {
            git: "git".into(),
            kubeseal: kubeseal_double(dir),
            flux: flux_double(dir),
        },
    }
}

async fn run_with(behaviour: Behaviour, max_recovery: Option<Duration>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert-of-cluster.pem"), cert_pem(1)).unwrap();
    let clock = FakeClockDouble::default();
    let first = ClusterDouble::new(1, behaviour, clock.clone(), dir.path());
    first.install_controller();
    let spec = spec(dir.path(), max_recovery, Duration::from_secs(2));
    let mut lifecycle = LifecycleDouble {
        current: first.clone(),
        behaviour,
        clock: clock.clone(),
        dir: dir.path().into(),
        clusters: vec![],
    };
    let prepared = restore::prepare(&spec, &first).await.expect("prepare");
    let verdict = restore::run(&spec, &prepared, first.clone(), &mut lifecycle, &clock).await;
    let workdir_after = std::fs::read_dir(prepared.workdir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    Run {
        verdict,
        dir,
        lifecycle,
        first,
        workdir_after,
    }
}

fn assert_no_plaintext(run: &Run) {
    let json = run.verdict.to_json_string();
    let human = run.verdict.render_human();
    let mut values = run.first.state.lock().unwrap().plaintexts.clone();
    for c in &run.lifecycle.clusters {
        values.extend(c.state.lock().unwrap().plaintexts.clone());
    }
    assert!(!values.is_empty());
    for v in values {
        assert!(
            !json.contains(&v) && !human.contains(&v),
            "plaintext {v} in the verdict"
        );
        assert!(!json.contains(&b64(&v)), "base64 plaintext in the verdict");
    }
    for k in [
        "PRIVATE-KEY-OF-CLUSTER",
        &b64("PRIVATE-KEY-OF-CLUSTER-1-DOUBLE"),
    ] {
        assert!(!json.contains(k) && !human.contains(k));
    }
    let logs = std::fs::read_to_string(run.dir.path().join("kubeseal.log")).unwrap_or_default()
        + &std::fs::read_to_string(run.dir.path().join("flux.log")).unwrap_or_default();
    assert!(!logs.contains("PRIVATE-KEY"));
}

fn phase_seconds(
    v: &meshproof::check::Verdict<meshproof::check::restore::RestoreEvidence>,
    p: Phase,
) -> f64 {
    v.evidence
        .phases
        .iter()
        .find(|r| r.phase == p)
        .map(|r| r.seconds)
        .unwrap_or(-1.0)
}

// ---------------------------------------------------------------- the cases

#[tokio::test]
async fn everything_comes_back_and_the_rto_is_measured_by_phase() {
    let run = run_with(Behaviour::default(), Some(Duration::from_secs(1800))).await;
    let v = &run.verdict;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.render_human());
    let e = &v.evidence;
    // RTO from the start of destruction: destroy 30 + rebuild 60 + 120 + controller restart 10.
    assert_eq!(e.rto_seconds, Some(220.0));
    assert_eq!(phase_seconds(v, Phase::Rebuild), 180.0);
    assert_eq!(phase_seconds(v, Phase::BootstrapFlux), 0.0);
    assert_eq!(phase_seconds(v, Phase::KeyRestore), 10.0);
    assert_eq!(
        e.phases.iter().map(|p| p.phase).collect::<Vec<_>>(),
        [
            Phase::RecordInventory,
            Phase::BackupKeys,
            Phase::Destroy,
            Phase::Rebuild,
            Phase::BootstrapFlux,
            Phase::NegativeControl,
            Phase::KeyRestore,
            Phase::Reconcile,
            Phase::RestartFunctions,
            Phase::Verify
        ]
    );
    assert!(e.restarted_functions.is_empty(), "nothing was waiting");
    assert!(e
        .expected_revision
        .as_deref()
        .unwrap()
        .starts_with("main@sha1:"));
    assert_eq!(e.revision_before, e.expected_revision);
    assert_eq!(e.revision_after, e.expected_revision);
    assert!(matches!(
        e.control,
        Some(meshproof::check::restore::ControlJudgement::Held { .. })
    ));
    assert!(e.diff.as_ref().unwrap().is_identical());
    assert_eq!(e.keys_backed_up, ["sealed-secrets-key1"]);
    // The key backup is gone; the first cluster is destroyed; flux ran on both clusters.
    assert!(
        !run.workdir_after.iter().any(|f| f.contains("sealing-keys")),
        "{:?}",
        run.workdir_after
    );
    assert!(run.first.state.lock().unwrap().destroyed);
    let flux_log = std::fs::read_to_string(run.dir.path().join("flux.log")).unwrap();
    let installs: Vec<&str> = flux_log
        .lines()
        .filter(|l| l.starts_with("install"))
        .collect();
    assert_eq!(installs.len(), 2, "{flux_log}");
    assert!(
        installs[0].contains("kubeconfig-1") && installs[1].contains("kubeconfig-2"),
        "{flux_log}"
    );
    assert!(flux_log.lines().any(|l| l
        .starts_with("reconcile kustomization meshproof-restore --with-source")
        && l.contains("kubeconfig-2")));
    let kubeseal_log = std::fs::read_to_string(run.dir.path().join("kubeseal.log")).unwrap();
    assert!(kubeseal_log.lines().all(|l| l.contains(
        "--controller-name sealed-secrets-controller --controller-namespace kube-system"
    )));
    assert_no_plaintext(&run);
}

/// Flux's clone and apply happen inside the negative control, and a real recovery does them
/// too: only the deliberate part (from the first failed unseal to the end of the hold) is left
/// out of the RTO, and the timeline says when each thing happened (issue #14). With a fake
/// clock: Flux takes 45 s to apply on the rebuilt cluster, each observation 1 s.
#[tokio::test]
async fn the_rto_keeps_fluxs_work_inside_the_control_and_drops_only_the_deliberate_hold() {
    let run = run_with(
        Behaviour {
            flux_apply_secs: 45,
            observe_secs: 1,
            ..Behaviour::default()
        },
        Some(Duration::from_secs(1800)),
    )
    .await;
    let v = &run.verdict;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.render_human());
    let e = &v.evidence;
    let t = e.control_timeline.as_ref().expect("a timeline");
    // The first observation paid for Flux's apply (45 s) and itself (1 s).
    assert_eq!(t.first_failure_after, Some(46.0), "{t:?}");
    assert_eq!(t.held_after, Some(46.0), "{t:?}");
    assert_eq!(t.kustomization_ready_after, Some(46.0), "{t:?}");
    assert!(t.ended_after > 46.0, "the hold observed again: {t:?}");
    let control = phase_seconds(v, Phase::NegativeControl);
    assert_eq!(control, t.ended_after);
    let elapsed = e.elapsed_seconds.unwrap();
    let rto = e.rto_seconds.unwrap();
    assert_eq!(rto, elapsed - (t.ended_after - 46.0));
    // destroy 30 + rebuild 180 + Flux's apply and the first look 46 + controller restart 10
    // (+ the hold's own observations, which are deliberate).
    assert_eq!(rto, 30.0 + 180.0 + 46.0 + 10.0, "{e:?}");
    assert!(
        v.reasons[0].contains("Flux apply and failed unseals 46s")
            && v.reasons[0].contains("deliberate"),
        "{:?}",
        v.reasons
    );
}

/// A function whose pod started before its Secret existed waits out kubelet's mount backoff:
/// after the key restore meshproof restarts it instead of waiting (issue #14).
#[tokio::test]
async fn functions_waiting_for_their_secret_are_restarted_after_the_key_restore() {
    let run = run_with(
        Behaviour {
            mount_backoff: true,
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let v = &run.verdict;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.render_human());
    assert_eq!(v.evidence.restarted_functions, ["env"]);
    let rebuilt = run.lifecycle.clusters.last().unwrap();
    assert_eq!(rebuilt.state.lock().unwrap().restarted_functions, ["env"]);
    assert_eq!(phase_seconds(v, Phase::RestartFunctions), 5.0);
}

#[tokio::test]
async fn a_changed_secret_fails_the_check() {
    let run = run_with(
        Behaviour {
            corrupt_after_restore: true,
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let v = &run.verdict;
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.render_human());
    assert!(
        v.reasons
            .iter()
            .any(|r| r
                .contains("secret openfaas-fn/meshproof-restore: value of key \"token\" changed")),
        "{:?}",
        v.reasons
    );
    assert_no_plaintext(&run);
}

#[tokio::test]
async fn secrets_that_unseal_before_the_key_restore_make_the_check_an_error() {
    let run = run_with(
        Behaviour {
            new_cluster_has_old_key: true,
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let v = &run.verdict;
    assert_eq!(v.outcome, Outcome::Error, "{}", v.render_human());
    assert!(
        v.reasons[0].contains("the restore proves nothing: secrets unsealed without the old key"),
        "{:?}",
        v.reasons
    );
    // The flow stopped before restoring keys.
    assert!(!v
        .evidence
        .phases
        .iter()
        .any(|p| p.phase == Phase::KeyRestore));
    assert!(!run.workdir_after.iter().any(|f| f.contains("sealing-keys")));
}

#[tokio::test]
async fn a_phase_that_times_out_is_an_error() {
    let started = std::time::Instant::now();
    let run = run_with(
        Behaviour {
            create_hangs: true,
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let v = &run.verdict;
    assert_eq!(v.outcome, Outcome::Error, "{}", v.render_human());
    assert!(
        v.reasons[0].contains("phase rebuild (cluster and stack) failed: timed out after 500ms"),
        "{:?}",
        v.reasons
    );
    assert_eq!(
        v.evidence.failed_phase.as_ref().map(|f| f.0),
        Some(Phase::Rebuild)
    );
    assert!(v.evidence.rto_seconds.is_none());
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        !run.workdir_after.iter().any(|f| f.contains("sealing-keys")),
        "backup removed on the error path too"
    );
}

#[tokio::test]
async fn recovery_over_budget_fails() {
    let run = run_with(Behaviour::default(), Some(Duration::from_secs(100))).await;
    let v = &run.verdict;
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.render_human());
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("recovery took 3m 40s, over the budget of 1m 40s")),
        "{:?}",
        v.reasons
    );
}

/// The Kustomization only says its source is not ready; the wait shows the GitRepository's own
/// reason, which names the unreachable git server.
#[tokio::test]
async fn an_unreachable_git_server_is_named_in_the_prepare_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert-of-cluster.pem"), cert_pem(1)).unwrap();
    let behaviour = Behaviour {
        git_unreachable: true,
        ..Behaviour::default()
    };
    let first = ClusterDouble::new(1, behaviour, FakeClockDouble::default(), dir.path());
    first.install_controller();
    let mut spec = spec(dir.path(), None, Duration::from_secs(2));
    spec.timeouts.verify = Duration::from_millis(300);
    let err = restore::prepare(&spec, &first)
        .await
        .err()
        .expect("Flux never becomes ready")
        .to_string();
    assert!(err.contains("GitRepository flux-system/"), "{err}");
    assert!(
        err.contains("Ready=False (GitOperationFailed): failed to checkout"),
        "{err}"
    );
}

#[tokio::test]
async fn prepare_failure_is_an_error_verdict() {
    let dir = tempfile::tempdir().unwrap();
    // No certificate file: the kubeseal double's --fetch-cert prints nothing (not PEM).
    let clock = FakeClockDouble::default();
    let first = ClusterDouble::new(1, Behaviour::default(), clock.clone(), dir.path());
    let spec = spec(dir.path(), None, Duration::from_secs(1));
    let mut lifecycle = LifecycleDouble {
        current: first.clone(),
        behaviour: Behaviour::default(),
        clock: clock.clone(),
        dir: dir.path().into(),
        clusters: vec![],
    };
    let v = restore::execute(&spec, first, &mut lifecycle, &clock).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        v.reasons[0].starts_with("phase prepare failed"),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn a_backup_without_the_sealing_key_is_an_error_before_anything_is_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert-of-cluster.pem"), cert_pem(1)).unwrap();
    let clock = FakeClockDouble::default();
    let first = ClusterDouble::new(1, Behaviour::default(), clock.clone(), dir.path());
    first.install_controller();
    let spec = spec(dir.path(), None, Duration::from_secs(1));
    let mut lifecycle = LifecycleDouble {
        current: first.clone(),
        behaviour: Behaviour::default(),
        clock: clock.clone(),
        dir: dir.path().into(),
        clusters: vec![],
    };
    let prepared = restore::prepare(&spec, &first).await.unwrap();
    // The key was rotated away after sealing: the cluster now holds only an unrelated key.
    first.state.lock().unwrap().keys = vec![key_secret(9, "sealed-secrets-key9")];
    let v = restore::run(&spec, &prepared, first.clone(), &mut lifecycle, &clock).await;
    assert_eq!(v.outcome, Outcome::Error, "{}", v.render_human());
    assert!(
        v.reasons[0].contains(
            "phase back up sealing keys failed: none of the backed-up keys (sealed-secrets-key9)"
        ),
        "{:?}",
        v.reasons
    );
    assert!(
        !first.state.lock().unwrap().destroyed,
        "nothing may be destroyed without a usable backup"
    );
}

#[tokio::test]
async fn a_first_cluster_secret_that_is_not_the_sealed_one_is_an_error() {
    let run = run_with(
        Behaviour {
            corrupt_from_the_start: true,
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let v = &run.verdict;
    assert_eq!(v.outcome, Outcome::Error, "{}", v.render_human());
    assert!(
        v.reasons[0].contains("does not hold the values meshproof sealed into git"),
        "{:?}",
        v.reasons
    );
    assert!(!run.first.state.lock().unwrap().destroyed);
}
