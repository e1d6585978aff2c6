//! HTTP sampling from this machine: one GET per sample with reqwest, classified by body or by
//! a response header. This is the only I/O in the canary engine.

use super::classify::{excerpt, Classifier, Sample, UnclassifiedKind};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// Bodies longer than this are cut before matching: the variant marker is expected near the
/// start, and an unbounded read would let a misbehaving server exhaust memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("--url `{url}` is not a valid http(s) URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("--header `{0}`: expected NAME:VALUE")]
    HeaderSyntax(String),
    #[error("--header `{spec}`: {reason}")]
    BadHeader { spec: String, reason: String },
    #[error("--classify-header `{name}` is not a valid header name")]
    BadClassifyHeader { name: String },
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// Parses `NAME:VALUE` (split on the first `:`, value trimmed).
pub fn parse_header(spec: &str) -> Result<(HeaderName, HeaderValue), SamplerError> {
    let (name, value) = spec
        .split_once(':')
        .ok_or_else(|| SamplerError::HeaderSyntax(spec.to_string()))?;
    let name =
        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| SamplerError::BadHeader {
            spec: spec.to_string(),
            reason: e.to_string(),
        })?;
    let value = HeaderValue::from_str(value.trim()).map_err(|e| SamplerError::BadHeader {
        spec: spec.to_string(),
        reason: e.to_string(),
    })?;
    Ok((name, value))
}

/// What the classifier is applied to.
#[derive(Debug, Clone)]
pub enum Subject {
    Body,
    Header(HeaderName),
}

/// Sends GET requests to one URL and classifies each response.
#[derive(Debug, Clone)]
pub struct HttpSampler {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    subject: Subject,
    classifier: Classifier,
}

impl HttpSampler {
    /// `timeout` bounds each whole request (connect, send, read).
    pub fn new(
        url: &str,
        headers: HeaderMap,
        classify_header: Option<&str>,
        classifier: Classifier,
        timeout: Duration,
    ) -> Result<HttpSampler, SamplerError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| SamplerError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(SamplerError::BadUrl {
                url: url.to_string(),
                reason: "scheme must be http or https, with a host".into(),
            });
        }
        let subject = match classify_header {
            None => Subject::Body,
            Some(n) => {
                Subject::Header(HeaderName::from_bytes(n.trim().as_bytes()).map_err(|_| {
                    SamplerError::BadClassifyHeader {
                        name: n.to_string(),
                    }
                })?)
            }
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| SamplerError::Client(e.to_string()))?;
        Ok(HttpSampler {
            client,
            url: parsed,
            headers,
            subject,
            classifier,
        })
    }

    /// Sends one request and classifies the response. Never fails: every problem becomes an
    /// unclassified sample with a detail.
    pub async fn sample(&self) -> Sample {
        let resp = match self
            .client
            .get(self.url.clone())
            .headers(self.headers.clone())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return transport(&e),
        };
        let status = resp.status();
        if let Subject::Header(name) = &self.subject {
            let value = resp
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if !status.is_success() {
                return Sample::unclassified(
                    UnclassifiedKind::HttpStatus,
                    format!("status {status}"),
                );
            }
            return match value {
                Some(v) => self.classifier.classify(&v),
                None => Sample::unclassified(
                    UnclassifiedKind::MissingHeader,
                    format!("no text header `{name}` in the response"),
                ),
            };
        }
        let body = match read_capped(resp).await {
            Ok(b) => b,
            Err(e) => return transport(&e),
        };
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Sample::unclassified(
                UnclassifiedKind::HttpStatus,
                format!("status {status}: {:?}", excerpt(&text)),
            );
        }
        self.classifier.classify(&text)
    }
}

fn transport(e: &reqwest::Error) -> Sample {
    let kind = if e.is_timeout() {
        UnclassifiedKind::Timeout
    } else {
        UnclassifiedKind::Transport
    };
    // The Display of reqwest errors omits the cause ("error sending request"); add the chain.
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    Sample::unclassified(kind, detail)
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_split_on_the_first_colon() {
        let (n, v) = parse_header("Host: a.example:8080").unwrap();
        assert_eq!(n.as_str(), "host");
        assert_eq!(v.to_str().unwrap(), "a.example:8080");
        assert!(matches!(
            parse_header("nocolon"),
            Err(SamplerError::HeaderSyntax(_))
        ));
        assert!(matches!(
            parse_header("bad name: x"),
            Err(SamplerError::BadHeader { .. })
        ));
    }
}
