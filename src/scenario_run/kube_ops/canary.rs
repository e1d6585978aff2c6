//! The canary check's cluster side: the sequential test fed by requests through the gateway
//! port-forward.

use super::KubeTrial;
use crate::check::Verdict;
use crate::scenario::CanaryCheck;
use crate::scenario_run::checks::canary as canary_check;
use serde_json::Value;

impl KubeTrial {
    pub(super) async fn canary(&mut self, c: &CanaryCheck) -> Result<Verdict<Value>, String> {
        let base = self.gateway_base().await?;
        let url = format!("{base}/function/{}", c.function);
        let config =
            canary_check::engine_config(c, &format!("{}/function/{}", "gateway", c.function))?;
        let sampler = crate::check::canary::HttpSampler::new(
            &url,
            Default::default(),
            None,
            canary_check::classifier(&config),
            config.request_timeout,
        )
        .map_err(|e| e.to_string())?;
        Ok(canary_check::run_canary_check(c, &config, || {
            let s = sampler.clone();
            async move { s.sample().await }
        })
        .await)
    }
}
