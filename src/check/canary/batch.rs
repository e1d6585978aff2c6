//! Sampling from inside a pod: a batch of requests made by curl in a meshed client pod, one
//! exec per batch, each response classified like [`super::HttpSampler`] classifies its own.
//!
//! Why a client pod: a mesh splits traffic at the *client's* proxy, for requests addressed to
//! the Service the route is attached to (an Istio VirtualService, a Gateway API HTTPRoute with a
//! Service parent). A request from this machine through a port-forward enters a pod past its
//! proxy, and OpenFaaS CE's gateway calls pod IPs, so neither is where a split can apply
//! (ledger OF-4, IS-8, LD-15). Why batches: one exec is an API round trip; a batch of a few
//! dozen requests keeps the cost per sample near curl's own. The sequential test reads the
//! samples one by one and stops when it decides; what is left of a batch is discarded, which
//! does not bias the test (the stopping rule never looks ahead).
//!
//! The script prints, for each request, curl's output (the body, then `\n<http_code>` from
//! `-w`) followed by a marker line `--meshproof-sample <curl exit code>--`.

use super::classify::{excerpt, Classifier, Sample, UnclassifiedKind};

/// The marker line after each response.
const MARKER: &str = "--meshproof-sample ";

/// `sh -c` script: `$1` requests, `$2` the URL, `$3` the per-request timeout in seconds.
pub const BATCH_SCRIPT: &str = r#"i=0
while [ "$i" -lt "$1" ]; do
  out=$(curl -sS --max-time "$3" -w '\n%{http_code}' "$2" 2>&1); rc=$?
  printf '%s\n--meshproof-sample %s--\n' "$out" "$rc"
  i=$((i+1))
done"#;

/// The exec argv for a batch of `n` requests to `url`.
pub fn command(url: &str, n: u32, timeout_secs: u32) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        BATCH_SCRIPT.into(),
        "meshproof-canary".into(),
        n.to_string(),
        url.into(),
        timeout_secs.to_string(),
    ]
}

/// The samples a batch's output holds, in order. A response whose marker is missing (the
/// exec was cut short) is dropped: it was never completely observed.
pub fn parse(stdout: &str, classifier: &Classifier) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for line in stdout.lines() {
        let Some(rc) = line.strip_prefix(MARKER).and_then(|r| r.strip_suffix("--")) else {
            block.push(line);
            continue;
        };
        samples.push(one(&block, rc, classifier));
        block.clear();
    }
    samples
}

fn one(block: &[&str], rc: &str, classifier: &Classifier) -> Sample {
    let (code, body) = match block.split_last() {
        Some((code, body)) => (code.trim(), body.join("\n")),
        None => ("", String::new()),
    };
    match rc.trim() {
        "0" => {}
        "28" => {
            return Sample::unclassified(
                UnclassifiedKind::Timeout,
                format!("curl exit 28: {}", excerpt(&body)),
            )
        }
        rc => {
            return Sample::unclassified(
                UnclassifiedKind::Transport,
                format!("curl exit {rc}: {}", excerpt(&body)),
            )
        }
    }
    match code.parse::<u16>() {
        Ok(s) if (200..300).contains(&s) => classifier.classify(&body),
        Ok(s) => Sample::unclassified(
            UnclassifiedKind::HttpStatus,
            format!("status {s}: {:?}", excerpt(&body)),
        ),
        Err(_) => Sample::unclassified(
            UnclassifiedKind::Transport,
            format!("no status code in curl's output ({code:?})"),
        ),
    }
}
