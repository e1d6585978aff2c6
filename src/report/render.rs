//! Human renderings of a `report.json`: the terminal summary table and the Markdown README a
//! certification submission carries.

use super::conformance::{ConformanceReport, Profile};
use super::integrity::Integrity;
use super::model::{Report, Status};
use super::progress::elapsed;
use super::revision;
use std::time::Duration;

/// The libtest filter that selects exactly one environment's trials: matrix environments end in
/// `]`, which delimits them (`istio[k8s=1.3]` is no prefix of `istio[k8s=1.34]`); a plain
/// environment name is followed by the `::` of its trial names.
pub fn libtest_filter(environment: &str) -> String {
    if environment.ends_with(']') {
        environment.to_string()
    } else {
        format!("{environment}::")
    }
}

/// Single-quotes for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command that reruns one environment.
pub fn reproduce_command(environment: &str) -> String {
    format!(
        "MESHPROOF_REQUIRE_CLUSTER=1 cargo test --test e2e -- {}",
        shell_quote(&libtest_filter(environment))
    )
}

fn ms(d: u64) -> String {
    elapsed(Duration::from_millis(d))
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        format!(
            "{}…",
            flat.chars().take(max.saturating_sub(1)).collect::<String>()
        )
    }
}

/// What the hash does not prove. Said wherever the hash is checked: a matching sha256 is easy to
/// mistake for a signature, but whoever edits the file can recompute it.
pub const NOT_ORIGIN: &str = "the sha256 proves integrity, not origin: it shows the report was not edited after it was written, but anyone can recompute it; who produced it is shown by a CI attestation (`gh attestation verify report.json --repo OWNER/REPO`)";

fn integrity_line(i: &Integrity) -> String {
    match i {
        Integrity::Intact { sha256 } => format!("integrity: ok (sha256 {sha256})"),
        Integrity::Mismatch { stored, computed } => format!(
            "integrity: MISMATCH — the report was edited after it was written (stored sha256 {stored}, content hashes to {computed})"
        ),
        Integrity::Unsealed { computed } => format!("integrity: NOT SEALED — the report carries no sha256 (content hashes to {computed})"),
    }
}

/// Text safe for a terminal: control characters (ESC sequences, newlines inside a name) are
/// shown as visible `\u{…}` escapes instead of being interpreted.
fn term(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Left-aligned columns separated by two spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| term(c)).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let fmt_row = |cells: Vec<String>| {
        let n = cells.len();
        let mut line = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            line.push_str(&c);
            if i + 1 < n {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        line.trim_end().to_string() + "\n"
    };
    let mut out = fmt_row(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&fmt_row(r.clone()));
    }
    out
}

/// The terminal summary: header, integrity, suites, trials.
pub fn summary_table(report: &Report, integrity: &Integrity) -> String {
    let out = format!(
        "meshproof {} (git {}) — run {}\nstarted {}, finished {}\n{}\nnote: {NOT_ORIGIN}\nresult: {}{}\n\n",
        report.meshproof.version,
        report.meshproof.git_revision,
        report.run_id,
        report.started_at,
        report.finished_at.as_deref().unwrap_or("(not finished)"),
        integrity_line(integrity),
        report.summary.status.as_str().to_uppercase(),
        report
            .interrupted
            .as_ref()
            .map(|why| format!(" (INTERRUPTED: {why}; this report is partial)"))
            .unwrap_or_default(),
    );
    let mut out = out.lines().map(|l| term(l) + "\n").collect::<String>();
    let suites: Vec<Vec<String>> = report
        .suites
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.status.as_str().into(),
                s.counts.passed.to_string(),
                s.counts.failed.to_string(),
                s.counts.errored.to_string(),
                s.counts.ignored.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["SUITE", "RESULT", "PASSED", "FAILED", "ERRORED", "IGNORED"],
        &suites,
    ));
    out.push('\n');
    let trials: Vec<Vec<String>> = report
        .trials()
        .map(|(_, t)| {
            vec![
                t.id.clone(),
                t.outcome.label().into(),
                ms(t.duration_ms),
                t.outcome
                    .reasons()
                    .first()
                    .map(|r| one_line(r, 100))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(&["TRIAL", "OUTCOME", "DURATION", "REASON"], &trials));
    out
}

/// Escapes text for a Markdown table cell: no column breaks, no line breaks, no raw HTML.
fn cell(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace(['\n', '\r'], "<br>")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn code(s: &str) -> String {
    // Backticks inside an inline code span would end it early.
    format!("`{}`", cell(&s.replace('`', "'")))
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(code).unwrap_or_else(|| "unknown".into())
}

/// The README of a certification submission.
pub fn markdown(report: &Report, integrity: &Integrity) -> String {
    let status = report.summary.status;
    let verdict = match status {
        Status::Success => "**success** — every trial passed",
        Status::Partial => {
            "**partial** — nothing failed, but some trials did not run; this is not a certification"
        }
        Status::Failure => "**failure** — at least one trial failed or could not reach a verdict",
    };
    let mut md = String::new();
    md.push_str("# meshproof conformance report\n\n");
    md.push_str(&format!("Result: {verdict}.\n\n"));
    if let Some(why) = &report.interrupted {
        md.push_str(&format!(
            "**The run was interrupted** ({}): this report is partial.\n\n",
            why
        ));
    }
    md.push_str("| | |\n|---|---|\n");
    md.push_str(&format!(
        "| meshproof | {} at {} |\n",
        code(&report.meshproof.version),
        code(&report.meshproof.git_revision)
    ));
    md.push_str(&format!("| Run | {} |\n", code(&report.run_id)));
    md.push_str(&format!(
        "| Started / finished | {} / {} |\n",
        cell(&report.started_at),
        cell(report.finished_at.as_deref().unwrap_or("not finished"))
    ));
    let c = report.summary.counts;
    md.push_str(&format!(
        "| Trials | {} passed, {} failed, {} errored, {} ignored |\n",
        c.passed, c.failed, c.errored, c.ignored
    ));
    md.push_str(&format!(
        "| Report integrity | {} — {} |\n\n",
        cell(integrity_line(integrity).trim_start_matches("integrity: ")),
        cell(NOT_ORIGIN)
    ));

    md.push_str("## Suites\n\n| Suite | Result | Passed | Failed | Errored | Ignored | Environments |\n|---|---|---|---|---|---|---|\n");
    for s in &report.suites {
        md.push_str(&format!(
            "| {} | **{}** | {} | {} | {} | {} | {} |\n",
            cell(&s.name),
            s.status.as_str(),
            s.counts.passed,
            s.counts.failed,
            s.counts.errored,
            s.counts.ignored,
            s.environments
                .iter()
                .map(|e| code(e))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    md.push_str("\n## Trials\n\n| Environment | Scenario | Outcome | Duration | Reason |\n|---|---|---|---|---|\n");
    for (env, t) in report.trials() {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            code(&env.name),
            cell(&t.scenario),
            t.outcome.label(),
            ms(t.duration_ms),
            cell(&t.outcome.reasons().join("; "))
        ));
    }

    md.push_str("\n## Environments\n");
    for env in &report.environments {
        let f = &env.fingerprint;
        md.push_str(&format!("\n### {}\n\n| | |\n|---|---|\n", code(&env.name)));
        md.push_str(&format!("| Suite | {} |\n", cell(&env.suite)));
        md.push_str(&format!(
            "| Kubernetes | {} requested, server {} ({}) |\n",
            opt(&f.kubernetes.requested_version),
            opt(&f.kubernetes.server_version),
            f.kubernetes
                .provider
                .as_deref()
                .map(cell)
                .unwrap_or_else(|| "unknown".into())
        ));
        md.push_str(&format!(
            "| Node image | {} |\n",
            opt(&f.kubernetes.node_image)
        ));
        md.push_str(&format!(
            "| Mesh | {} {} (installed: {}) |\n",
            opt(&f.mesh.name),
            opt(&f.mesh.version),
            opt(&f.mesh.installed_version)
        ));
        md.push_str(&format!(
            "| OpenFaaS | chart {}, edition {} |\n",
            opt(&f.openfaas.chart_version),
            opt(&f.openfaas.edition)
        ));
        for (k, v) in &f.components {
            md.push_str(&format!(
                "| Component {} | {} |\n",
                cell(k),
                v.as_deref()
                    .map(code)
                    .unwrap_or_else(|| "not installed".into())
            ));
        }
        for (role, i) in &f.images {
            let deployed = match (&i.deployed, i.pinned_by) {
                (Some(d), Some(crate::images::resolve::PinSource::Registry)) => format!(
                    "{} (resolved from {} at run start)",
                    code(d),
                    opt(&i.declared)
                ),
                (Some(d), _) => code(d),
                (None, _) => format!(
                    "{} (on a tag; no digest recorded: its environment never came up)",
                    opt(&i.declared)
                ),
            };
            md.push_str(&format!("| Image {} | {deployed} |\n", cell(role)));
        }
        md.push_str(&format!("| Images running | {} |\n", running_cell(f)));
        for (k, v) in &f.tools {
            md.push_str(&format!(
                "| Tool {} | {} |\n",
                cell(k),
                v.as_deref().map(code).unwrap_or_else(|| "not found".into())
            ));
        }
    }

    md.push_str("\n## Reproduce\n\nOn a machine with Docker, kind, helm and the suite's mesh CLI (`meshproof doctor` lists them), in a checkout of meshproof:\n\n```sh\n");
    let rev = revision::commit(&report.meshproof.git_revision);
    if rev != "unknown" {
        md.push_str(&format!("git checkout {rev}\n"));
    } else {
        md.push_str("# the run was not made from a git checkout: use meshproof ");
        md.push_str(&report.meshproof.version.replace('\n', " "));
        md.push('\n');
    }
    for env in &report.environments {
        md.push_str(&reproduce_command(&env.name));
        md.push('\n');
    }
    md.push_str("```\n");
    if report.meshproof.git_revision.ends_with("-dirty") {
        md.push_str("\nThe run was made from a checkout with uncommitted changes: the commit alone does not reproduce it.\n");
    }
    md.push_str("\n## Files\n\n- `report.json` — every verdict with its evidence, the negative controls, the environment fingerprints; its `sha256` covers the rest of the file (`meshproof report report.json` checks it)\n- `junit.xml` — the same trials for CI test-result viewers\n- `conformance-report.yaml` — the same results per conformance profile, shaped like a Gateway API `ConformanceReport`\n- `artifacts/` — per failing trial: cluster logs, events, pod statuses and logs, mesh diagnostics, packet captures\n");
    md
}

/// The report's "Images running" cell: how many ran, how many with a digest, the routes they
/// took, and the registries no local mirror served.
fn running_cell(f: &crate::report::fingerprint::Fingerprint) -> String {
    let Some(r) = &f.running else {
        return "not read (the environment never came up, or an existing cluster)".into();
    };
    let (routes, unmirrored) = f.running_routes();
    let mut text = format!(
        "{} after provisioning, {} with the runtime's digest",
        r.len(),
        r.iter().filter(|i| i.image_id.is_some()).count()
    );
    if !routes.is_empty() {
        let each: Vec<String> = routes.iter().map(|(k, n)| format!("{n} {k}")).collect();
        text.push_str(&format!("; routes: {}", each.join(", ")));
    }
    if !unmirrored.is_empty() {
        let regs: Vec<&str> = unmirrored.iter().map(String::as_str).collect();
        text.push_str(&format!(" (no local mirror for {})", regs.join(", ")));
    }
    text.push_str(" (`report.json`: `fingerprint.running`, `fingerprint.runningVia`)");
    text
}

/// The submission README's profiles section: each profile's result and counts, and what its
/// success claims, from the `conformance-report.yaml` handed in beside it.
pub fn profiles_markdown(c: &ConformanceReport) -> String {
    let i = &c.implementation;
    let mut md = String::from("\n## Conformance profiles\n\n");
    md.push_str(&format!(
        "`report/conformance-report.yaml` (shaped like a Gateway API `ConformanceReport`) reports the implementation {} {} by {} ({}; contact {}). A profile is `success` only when every trial of it passed; each trial counts towards the profile its scenario's check decides.\n\n",
        code(&i.project),
        code(&i.version),
        cell(&i.organization),
        cell(&i.url),
        cell(&i.contact.join(", "))
    ));
    md.push_str("| Profile | Result | Passed | Failed | Skipped | A success claims |\n|---|---|---|---|---|---|\n");
    for p in &c.profiles {
        let s = p.core.statistics;
        md.push_str(&format!(
            "| `{}` | **{}** | {} | {} | {} | {} |\n",
            p.name,
            p.core.result.as_str(),
            s.passed,
            s.failed,
            s.skipped,
            cell(p.name.claim())
        ));
    }
    let absent: Vec<String> = Profile::ALL
        .iter()
        .filter(|p| !c.profiles.iter().any(|r| r.name == **p))
        .map(|p| format!("`{p}`"))
        .collect();
    if !absent.is_empty() {
        md.push_str(&format!(
            "\nNot tested in this run, so not claimed: {}.\n",
            absent.join(", ")
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_one_environment() {
        assert_eq!(libtest_filter("istio[k8s=1.34]"), "istio[k8s=1.34]");
        assert_eq!(libtest_filter("istio"), "istio::");
        assert_eq!(
            reproduce_command("istio[k8s=1.34]"),
            "MESHPROOF_REQUIRE_CLUSTER=1 cargo test --test e2e -- 'istio[k8s=1.34]'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_running_images_cell_counts_routes_and_names_unmirrored_registries() {
        use crate::mirror::evidence::Route;
        use crate::report::fingerprint::Fingerprint;
        let ran = |image: &str, id: Option<&str>| crate::kubeops::running::RunningImage {
            image: image.into(),
            image_id: id.map(String::from),
            used_by: vec!["ns/c".into()],
        };
        let mut f = Fingerprint::default();
        assert!(running_cell(&f).starts_with("not read"));
        f.running = Some(vec![
            ran("docker.io/a/b:1", Some("docker.io/a/b@sha256:aa")),
            ran("quay.io/c/d:2", None),
        ]);
        assert_eq!(
            running_cell(&f),
            "2 after provisioning, 1 with the runtime's digest (`report.json`: `fingerprint.running`, `fingerprint.runningVia`)"
        );
        let f = f.with_routes(|i| {
            if i.repository() == "a/b" {
                Route::LocalMirror {
                    container: "m".into(),
                    evidence: "GET /v2/a/b/manifests/1 200".into(),
                }
            } else {
                Route::NoMirror
            }
        });
        let cell = running_cell(&f);
        assert!(
            cell.contains("; routes: 1 local-mirror, 1 no-mirror (no local mirror for quay.io)"),
            "{cell}"
        );
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc<script>"), "a\\|b<br>c&lt;script&gt;");
        assert_eq!(code("x`y"), "`x'y`");
    }
}
