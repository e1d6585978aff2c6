//! Probe pods (a `sleep infinity` pod with curl, in the namespace and service account a check
//! names) and curl exec'd in them, classified: the in-cluster clients of the deny probes and
//! of the strict-mTLS plaintext probe.

use super::KubeTrial;
use crate::check::http::{self, classify, Classification};
use crate::images::ImageRole;
use crate::kubeops::call::call;
use crate::kubeops::{exec, wait};
use crate::scenario::template::Vars;
use crate::scenario_run::checks::deny::Observed;
use crate::scenario_run::checks::POD_START;
use crate::scenario_run::tracker::Tracker;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use std::time::Duration;

/// Deadline of one exec'd curl (curl's own `--max-time` is 5 s).
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

impl KubeTrial {
    /// A `sleep infinity` pod with curl in `ns`, Ready; created objects are tracked. It joins
    /// the mesh the way the namespace says (sidecar injection, or ambient enrolment: no sidecar
    /// annotation is set either way); `labels` are added to the pod's own (an opt-out label).
    pub(super) async fn probe_pod(
        &mut self,
        ns: &str,
        sa: &str,
        image: &str,
        labels: &[(&str, &str)],
        tracker: &mut Tracker,
    ) -> Result<String, String> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        if call(&format!("serviceaccount {ns}/{sa}"), sas.get_opt(sa))
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            let doc = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}});
            self.apply_tracked(&doc.to_string(), tracker).await?;
        }
        let name = format!(
            "meshproof-probe-{}-{}",
            self.cfg.run_id.as_str().to_ascii_lowercase(),
            self.next_id()
        );
        let name: String = name
            .chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string();
        let mut doc = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": "meshproof-probe", "meshproof.dev/probe": name}},
            "spec": {
                "serviceAccountName": sa,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "probe", "image": image, "command": ["sleep", "infinity"]}]
            }
        });
        for (k, v) in labels {
            doc["metadata"]["labels"][*k] = serde_json::Value::String((*v).to_string());
        }
        self.apply_tracked(&doc.to_string(), tracker).await?;
        wait::pods_ready(
            &self.client,
            ns,
            &format!("meshproof.dev/probe={name}"),
            1,
            POD_START,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(name)
    }

    /// `curl` from a probe pod, classified.
    pub(super) async fn curl_from(&self, ns: &str, pod: &str, url: &str) -> Observed {
        // curl with the response head and a body prefix kept, so a 403 says who sent it.
        let argv = http::curl::command(url, 5);
        let cmd: Vec<&str> = argv.iter().map(String::as_str).collect();
        match exec::exec(&self.client, ns, pod, Some("probe"), &cmd, EXEC_TIMEOUT).await {
            Ok(out) => {
                let code = http::curl::status(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                match out.exit_code {
                    Some(exit) => Observed::new(
                        classify(&http::curl::observation(exit, &out.stdout)),
                        format!(
                            "curl exit {exit}, http_code {code:03}{}",
                            if stderr.is_empty() {
                                String::new()
                            } else {
                                format!(", {stderr}")
                            }
                        ),
                    ),
                    None => Observed::new(
                        Classification::Undecided {
                            why: "exec reported no exit status".into(),
                        },
                        out.failure.unwrap_or_default(),
                    ),
                }
            }
            Err(e) => Observed::undecided(format!("exec failed: {e}")),
        }
    }
}

/// The curl image for probe pods: the check's own, else the suite's `images.probe`.
pub(super) fn probe_image(own: Option<&str>, vars: &Vars) -> Result<String, String> {
    own.or_else(|| vars.get(ImageRole::Probe.var()))
        .map(str::to_string)
        .ok_or_else(|| "no probe image: the `images.probe` variable is not set".into())
}
