//! `junit.xml`: the run as CI systems read it.
//!
//! Shape (valid against the Jenkins xunit-plugin `junit-10.xsd`, the schema most CI JUnit
//! readers accept): one `<testsuite>` per environment, one `<testcase classname="<env>"
//! name="<scenario>">` per trial, with `<failure>` (verdict reasons), `<error>` (no verdict) or
//! `<skipped>` (ignored, with the reason). XML is produced by quick-xml, which escapes markup;
//! what XML 1.0 cannot carry at all (most control characters) is replaced here by a visible
//! `\u{…}` escape, since a CI reader rejects the whole file over one stray ESC byte.

use super::event::TrialOutcome;
use super::model::{Counts, EnvironmentRecord, Report, TrialRecord};
use super::ReportError;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event as XmlEvent};
use quick_xml::Writer;

/// Whether XML 1.0 allows `c` in a document (the `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Text XML 1.0 can carry: forbidden characters become a visible `\u{1b}`.
pub fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if xml_char(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

/// An attribute value: XML-safe, and on one line (parsers turn newlines and tabs in attribute
/// values into spaces anyway; doing it here keeps what is written equal to what is read).
pub fn xml_attr(s: &str) -> String {
    xml_text(s).replace(['\r', '\n', '\t'], " ")
}

fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

type W = Writer<Vec<u8>>;

fn xml_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Xml(e.to_string())
}

fn start(w: &mut W, name: &str, attrs: &[(&str, String)], empty: bool) -> Result<(), ReportError> {
    let mut el = BytesStart::new(name);
    for (k, v) in attrs {
        el.push_attribute((*k, xml_attr(v).as_str()));
    }
    w.write_event(if empty {
        XmlEvent::Empty(el)
    } else {
        XmlEvent::Start(el)
    })
    .map_err(xml_err)
}

fn end(w: &mut W, name: &str) -> Result<(), ReportError> {
    w.write_event(XmlEvent::End(BytesEnd::new(name)))
        .map_err(xml_err)
}

fn text(w: &mut W, t: &str) -> Result<(), ReportError> {
    w.write_event(XmlEvent::Text(BytesText::new(&xml_text(t))))
        .map_err(xml_err)
}

/// Renders the report as JUnit XML. The report is expected to be redacted already.
pub fn render(report: &Report) -> Result<String, ReportError> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(XmlEvent::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(xml_err)?;
    let all = report.summary.counts;
    // A failed teardown is one more errored case (`teardown`) in its environment's suite: the
    // schema has no `<error>` on a `<testsuite>`, and CI readers count testcases.
    let torn = report
        .environments
        .iter()
        .filter(|e| e.teardown_error.is_some())
        .count() as u32
        // A run a signal stopped is one more errored case, in a suite of its own (`run`).
        + u32::from(report.interrupted.is_some());
    start(
        &mut w,
        "testsuites",
        &[
            ("name", format!("meshproof {}", report.run_id)),
            ("tests", (all.total() + torn).to_string()),
            ("failures", all.failed.to_string()),
            ("errors", (all.errored + torn).to_string()),
            ("time", secs(report.summary.duration_ms)),
        ],
        false,
    )?;
    for (i, env) in report.environments.iter().enumerate() {
        suite(&mut w, report, env, i)?;
    }
    if let Some(why) = &report.interrupted {
        interrupted(&mut w, report, why)?;
    }
    end(&mut w, "testsuites")?;
    let mut out = String::from_utf8(w.into_inner()).map_err(xml_err)?;
    out.push('\n');
    Ok(out)
}

fn suite(
    w: &mut W,
    report: &Report,
    env: &EnvironmentRecord,
    id: usize,
) -> Result<(), ReportError> {
    let mut c = Counts::default();
    let mut ms = 0u64;
    for t in &env.trials {
        c.add(&t.outcome);
        ms = ms.saturating_add(t.duration_ms);
    }
    let torn = u32::from(env.teardown_error.is_some());
    start(
        w,
        "testsuite",
        &[
            ("name", env.name.clone()),
            ("tests", (c.total() + torn).to_string()),
            ("failures", c.failed.to_string()),
            ("errors", (c.errored + torn).to_string()),
            ("skipped", c.ignored.to_string()),
            ("time", secs(ms)),
            ("timestamp", env.started_at.clone()),
            ("id", id.to_string()),
            ("package", env.suite.clone()),
        ],
        false,
    )?;
    start(w, "properties", &[], false)?;
    let f = &env.fingerprint;
    let props: [(&str, Option<&String>); 9] = [
        ("meshproof.version", Some(&report.meshproof.version)),
        (
            "meshproof.gitRevision",
            Some(&report.meshproof.git_revision),
        ),
        ("suite", Some(&env.suite)),
        ("kubernetes.nodeImage", f.kubernetes.node_image.as_ref()),
        (
            "kubernetes.serverVersion",
            f.kubernetes.server_version.as_ref(),
        ),
        ("mesh.name", f.mesh.name.as_ref()),
        ("mesh.version", f.mesh.version.as_ref()),
        ("openfaas.chartVersion", f.openfaas.chart_version.as_ref()),
        ("openfaas.edition", f.openfaas.edition.as_ref()),
    ];
    for (name, value) in props {
        let value = value.cloned().unwrap_or_else(|| "unknown".into());
        start(
            w,
            "property",
            &[("name", name.to_string()), ("value", value)],
            true,
        )?;
    }
    end(w, "properties")?;
    for t in &env.trials {
        case(w, env, t)?;
    }
    if let Some(e) = &env.teardown_error {
        let message = format!(
            "tearing down {} failed (a cluster may be left behind): {e}",
            env.name
        );
        error_case(w, &env.name, "teardown", "teardown", &message)?;
    }
    end(w, "testsuite")
}

/// The suite `run` with one errored case `interrupted`: the report is partial, and a CI reader
/// must see why rather than a shorter list of passes.
fn interrupted(w: &mut W, report: &Report, why: &str) -> Result<(), ReportError> {
    start(
        w,
        "testsuite",
        &[
            ("name", "run".to_string()),
            ("tests", "1".into()),
            ("failures", "0".into()),
            ("errors", "1".into()),
            ("skipped", "0".into()),
            ("time", secs(0)),
            ("timestamp", report.started_at.clone()),
            ("id", report.environments.len().to_string()),
            ("package", "meshproof".into()),
        ],
        false,
    )?;
    let message = format!(
        "the run was interrupted ({why}): this report is partial; trials that had not finished are errors and trials that had not started are missing"
    );
    error_case(w, "run", "interrupted", "interrupted", &message)?;
    end(w, "testsuite")
}

/// A case that is one `<error>` of `kind` with `message` (attribute and text): what the run
/// itself failed at, beside the trials (a teardown, an interruption).
fn error_case(
    w: &mut W,
    classname: &str,
    name: &str,
    kind: &str,
    message: &str,
) -> Result<(), ReportError> {
    let attrs = [
        ("classname", classname.to_string()),
        ("name", name.to_string()),
        ("time", secs(0)),
    ];
    start(w, "testcase", &attrs, false)?;
    start(
        w,
        "error",
        &[("message", message.to_string()), ("type", kind.to_string())],
        false,
    )?;
    text(w, message)?;
    end(w, "error")?;
    end(w, "testcase")
}

fn case(w: &mut W, env: &EnvironmentRecord, t: &TrialRecord) -> Result<(), ReportError> {
    let attrs = [
        ("classname", env.name.clone()),
        ("name", t.scenario.clone()),
        ("time", secs(t.duration_ms)),
    ];
    // The schema's order inside a testcase: skipped, error*, failure*, system-out*, system-err*.
    let body = |reasons: &[String]| reasons.iter().map(|r| format!("{r}\n")).collect::<String>();
    let mut out_lines: Vec<String> = Vec::new();
    for v in &t.verdicts {
        out_lines.push(format!("{} check: {}", v.check, v.outcome));
    }
    for c in &t.controls {
        out_lines.push(format!(
            "negative control {:?}: {} (expected {}, observed {})",
            c.name,
            if c.held { "held" } else { "DID NOT HOLD" },
            c.expected,
            c.observed
        ));
    }
    if let Some(a) = &t.artifacts {
        out_lines.push(format!("artifacts: {a}"));
    }
    start(w, "testcase", &attrs, false)?;
    match &t.outcome {
        TrialOutcome::Passed => {}
        TrialOutcome::Ignored { reason } => {
            start(w, "skipped", &[("message", reason.clone())], true)?;
        }
        TrialOutcome::Failed { reasons } => {
            start(
                w,
                "failure",
                &[("message", reasons.join("; ")), ("type", "failed".into())],
                false,
            )?;
            text(w, &body(reasons))?;
            end(w, "failure")?;
        }
        TrialOutcome::Errored { reasons } => {
            start(
                w,
                "error",
                &[("message", reasons.join("; ")), ("type", "errored".into())],
                false,
            )?;
            text(w, &body(reasons))?;
            end(w, "error")?;
        }
    }
    if !out_lines.is_empty() {
        start(w, "system-out", &[], false)?;
        text(w, &out_lines.join("\n"))?;
        end(w, "system-out")?;
    }
    end(w, "testcase")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(
            xml_text("a\u{1b}[31mb\u{0}c\td\u{FFFE}"),
            "a\\u{1b}[31mb\\u{0}c\td\\u{fffe}"
        );
        assert_eq!(xml_attr("one\ntwo\r\tthree"), "one two  three");
    }

    #[test]
    fn seconds_have_millisecond_precision() {
        assert_eq!(secs(0), "0.000");
        assert_eq!(secs(61_234), "61.234");
    }
}
