//! The `deny` check's order of events, over a [`DenyDriver`] that does the probing.
//!
//! 1. **Negative control.** Every probe runs *before* the policy exists and must show its
//!    `before` outcome (usually allowed). A probe that is already denied proves nothing about
//!    the policy — the path may be broken, or another trial's policy may still be there — so
//!    the check is an **error**, and the policy is never applied.
//! 2. The policy is applied.
//! 3. Each probe is polled until it shows its `after` outcome or the settle timeout passes;
//!    a probe that never changes **fails** with its last observation (an undecided last
//!    observation — timeout, 5xx, DNS — is an **error**: the check cannot tell).
//! 4. The OpenFaaS pods must still be Ready: a policy that also cut the kubelet's probes
//!    "denies" by breaking the workloads, which **fails**.

use crate::check::http::Classification;
use crate::check::{CheckName, Outcome, Verdict};
use crate::scenario::template::Vars;
use crate::scenario::{Allowance, DenyCheck, ProbeFrom};
use serde::Serialize;
use std::time::{Duration, Instant};

/// A probe with its URL rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedProbe {
    pub name: String,
    #[serde(serialize_with = "ser_from")]
    pub from: ProbeFrom,
    pub url: String,
    pub before: Allowance,
    pub after: Allowance,
}

fn ser_from<S: serde::Serializer>(f: &ProbeFrom, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match f {
        ProbeFrom::Probe => "probe",
        ProbeFrom::Outside => "outside",
    })
}

/// Renders every expectation's URL.
pub fn render_probes(d: &DenyCheck, vars: &Vars) -> Result<Vec<RenderedProbe>, String> {
    d.expectations
        .iter()
        .map(|e| {
            Ok(RenderedProbe {
                name: e.name.clone(),
                from: e.from,
                url: e
                    .url
                    .render(vars)
                    .map_err(|err| format!("probe {}: {err}", e.name))?,
                before: e.before,
                after: e.after,
            })
        })
        .collect()
}

/// One probe attempt: how it was classified, and what was seen (curl exit code and status, or
/// the live observation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub classification: Classification,
    pub detail: String,
}

impl Observed {
    fn allowance(&self) -> Option<Allowance> {
        match self.classification {
            Classification::Allowed { .. } => Some(Allowance::Allowed),
            Classification::Denied(_) => Some(Allowance::Denied),
            Classification::Undecided { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match &self.classification {
            Classification::Allowed { status } => {
                format!("allowed (HTTP {status}; {})", self.detail)
            }
            Classification::Denied(d) => format!("denied ({d:?}; {})", self.detail),
            Classification::Undecided { why } => format!("undecided ({why}; {})", self.detail),
        }
    }
}

/// What the deny check needs from the cluster.
#[allow(async_fn_in_trait)]
pub trait DenyDriver {
    /// One attempt of `probe` (never fails: problems are undecided observations).
    async fn probe(&mut self, probe: &RenderedProbe) -> Observed;
    async fn apply_policy(&mut self) -> Result<(), String>;
    /// `Ok` when every pod of the OpenFaaS namespaces is Ready.
    async fn workloads_ready(&mut self) -> Result<(), String>;
}

/// How patient the check is.
#[derive(Debug, Clone, Copy)]
pub struct DenyTiming {
    /// How long each probe may take to reach its `after` outcome once the policy is applied.
    pub settle: Duration,
    /// Pause between attempts.
    pub poll: Duration,
    /// Attempts of a before-probe while its observation is undecided.
    pub before_attempts: u32,
    /// How long after the policy the pods' readiness is judged: a pod turns NotReady only after
    /// `periodSeconds × failureThreshold` failed probes (30 s with the defaults the OpenFaaS
    /// chart keeps), so judging it the moment the probes flip would miss a policy that cut them.
    pub ready_hold: Duration,
}

/// [`DenyTiming::ready_hold`] in a run: the default readiness period × threshold, plus slack.
pub const READY_HOLD: Duration = Duration::from_secs(40);

impl DenyTiming {
    pub fn for_check(d: &DenyCheck) -> DenyTiming {
        DenyTiming {
            settle: d.timeout,
            poll: Duration::from_millis(500),
            before_attempts: 3,
            ready_hold: READY_HOLD,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeEvidence {
    #[serde(flatten)]
    pub probe: RenderedProbe,
    pub observed_before: Option<Observed>,
    pub observed_after: Option<Observed>,
    pub after_attempts: u32,
    pub after_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DenyEvidence {
    pub probes: Vec<ProbeEvidence>,
    pub policy_applied: bool,
    /// Why workloads were not Ready after the policy, if they were not.
    pub workloads_not_ready: Option<String>,
}

fn word(a: Allowance) -> &'static str {
    match a {
        Allowance::Allowed => "allowed",
        Allowance::Denied => "denied",
    }
}

fn from_word(f: ProbeFrom) -> &'static str {
    match f {
        ProbeFrom::Probe => "the probe pod",
        ProbeFrom::Outside => "outside",
    }
}

/// Runs the deny check (see the module docs for the order and the verdict rules).
pub async fn run_deny<D: DenyDriver>(
    driver: &mut D,
    probes: &[RenderedProbe],
    timing: DenyTiming,
) -> Verdict<DenyEvidence> {
    let mut ev = DenyEvidence {
        probes: probes
            .iter()
            .map(|p| ProbeEvidence {
                probe: p.clone(),
                observed_before: None,
                observed_after: None,
                after_attempts: 0,
                after_seconds: None,
            })
            .collect(),
        policy_applied: false,
        workloads_not_ready: None,
    };
    // 1. Negative control: before the policy.
    let mut control_errors = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let mut obs = driver.probe(p).await;
        let mut attempts = 1;
        while obs.allowance().is_none() && attempts < timing.before_attempts.max(1) {
            tokio::time::sleep(timing.poll).await;
            obs = driver.probe(p).await;
            attempts += 1;
        }
        match obs.allowance() {
            Some(a) if a == p.before => {}
            Some(_) => control_errors.push(format!(
                "the deny check proves nothing: {} ({} from {}) was already {} before the policy existed (expected {})",
                p.name,
                p.url,
                from_word(p.from),
                obs.describe(),
                word(p.before)
            )),
            None => control_errors.push(format!(
                "the deny check proves nothing: {} ({} from {}) could not be decided before the policy: {}",
                p.name,
                p.url,
                from_word(p.from),
                obs.describe()
            )),
        }
        ev.probes[i].observed_before = Some(obs);
    }
    if !control_errors.is_empty() {
        return Verdict::new(CheckName::Http, Outcome::Error, control_errors, ev);
    }
    // 2. The policy.
    let policy_at = Instant::now();
    if let Err(e) = driver.apply_policy().await {
        return Verdict::new(
            CheckName::Http,
            Outcome::Error,
            vec![format!("applying the policy failed: {e}")],
            ev,
        );
    }
    ev.policy_applied = true;
    // 3. Until each probe flips.
    let mut outcome = Outcome::Pass;
    let mut reasons = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let start = Instant::now();
        let mut attempts = 0;
        let last = loop {
            let obs = driver.probe(p).await;
            attempts += 1;
            if obs.allowance() == Some(p.after) || start.elapsed() >= timing.settle {
                break obs;
            }
            tokio::time::sleep(timing.poll).await;
        };
        ev.probes[i].after_attempts = attempts;
        ev.probes[i].after_seconds = Some(start.elapsed().as_secs_f64());
        match last.allowance() {
            Some(a) if a == p.after => {}
            Some(_) => {
                outcome = outcome.worst(Outcome::Fail);
                reasons.push(format!(
                    "{} ({} from {}): expected {} after the policy, still {} after {} (last of {attempts} attempts)",
                    p.name,
                    p.url,
                    from_word(p.from),
                    word(p.after),
                    last.describe(),
                    humantime::format_duration(timing.settle)
                ));
            }
            None => {
                outcome = outcome.worst(Outcome::Error);
                reasons.push(format!(
                    "{} ({} from {}): expected {} after the policy, but the last of {attempts} attempts was {}",
                    p.name,
                    p.url,
                    from_word(p.from),
                    word(p.after),
                    last.describe()
                ));
            }
        }
        ev.probes[i].observed_after = Some(last);
    }
    // 4. The workloads survived the policy — judged once a probe cut by it would have made a
    // pod NotReady.
    let judge_at = policy_at + timing.ready_hold;
    let now = Instant::now();
    if judge_at > now {
        tokio::time::sleep(judge_at - now).await;
    }
    if let Err(e) = driver.workloads_ready().await {
        outcome = outcome.worst(Outcome::Fail);
        reasons.push(format!("after the policy, OpenFaaS pods are not Ready (did the policy cut kubelet probes?): {e}"));
        ev.workloads_not_ready = Some(e);
    }
    if outcome == Outcome::Pass {
        reasons.push(format!(
            "all {} probes showed their before outcome without the policy and their after outcome with it; OpenFaaS pods stayed Ready",
            probes.len()
        ));
    }
    Verdict::new(CheckName::Http, outcome, reasons, ev)
}
