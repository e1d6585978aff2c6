//! The tls check's cluster side: the cluster CA read from its Secret, and the ingress reached
//! on the host's https port.

use super::KubeTrial;
use crate::check::tls::TlsVersion;
use crate::check::Verdict;
use crate::kubeops::call::call;
use crate::scenario::template::Vars;
use crate::scenario::{MinProtocol, TlsCheck};
use crate::scenario_run::checks::tls as tls_check;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::Value;
use std::time::Duration;

impl KubeTrial {
    pub(super) async fn tls(
        &mut self,
        t: &TlsCheck,
        vars: &Vars,
    ) -> Result<Verdict<Value>, String> {
        let host = t.host.render(vars).map_err(|e| e.to_string())?;
        let port: u16 = vars
            .get("ingress.httpsPort")
            .and_then(|p| p.parse().ok())
            .ok_or("the ingress https port is not set")?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &t.ca_secret.namespace);
        let what = format!("secret {}/{}", t.ca_secret.namespace, t.ca_secret.name);
        let s = call(&what, secrets.get(&t.ca_secret.name))
            .await
            .map_err(|e| e.to_string())?;
        let ca = s
            .data
            .unwrap_or_default()
            .get(&t.ca_secret.key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .ok_or_else(|| format!("{what} has no key {}", t.ca_secret.key))?;
        let input = tls_check::TlsTrialInput {
            host,
            port,
            path: t.path.clone(),
            connect_ip: "127.0.0.1".into(),
            ca_pem: ca,
            min_days: t.min_days,
            min_protocol: match t.min_protocol {
                MinProtocol::Tls12 => TlsVersion::Tls12,
                MinProtocol::Tls13 => TlsVersion::Tls13,
            },
            // The OpenFaaS gateway's health endpoint, through the ingress route: a
            // certificate served in front of a route that points nowhere must not pass.
            expect_status: Some(200),
            timeout: t.timeout,
            retry_pause: Duration::from_secs(5),
        };
        crate::private_fs::private_dir(&self.cfg.work_dir)
            .map_err(|e| format!("{}: {e}", self.cfg.work_dir.display()))?;
        Ok(tls_check::run_tls_check(&input, &self.cfg.work_dir)
            .await
            .erase())
    }
}
