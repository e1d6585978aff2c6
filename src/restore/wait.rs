//! Polling an observation until it decides, under a deadline.

use crate::restore::ops::OpsError;
use std::future::Future;
use std::time::Duration;

/// One observation's result.
#[derive(Debug)]
pub enum Poll<T> {
    /// Decided: stop polling.
    Done(T),
    /// Not yet; the text says what is still missing (reported if the wait times out).
    Pending(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {} waiting for {what}; last observation: {last}", humantime::format_duration(*.timeout))]
    TimedOut {
        what: String,
        timeout: Duration,
        last: String,
    },
}

/// Calls `observe` every `interval` until it returns `Done`, for at most `timeout`. A failed
/// observation (API server briefly unreachable while a cluster comes up) counts as pending.
pub async fn until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut observe: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, OpsError>>,
{
    let mut last = "nothing observed yet".to_string();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, observe()).await {
            Ok(Ok(Poll::Done(v))) => return Ok(v),
            Ok(Ok(Poll::Pending(why))) => last = why,
            Ok(Err(e)) => last = format!("error: {e}"),
            Err(_) => {}
        }
        if tokio::time::Instant::now() + interval > deadline {
            return Err(WaitError::TimedOut {
                what: what.into(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn done_after_some_polls() {
        let mut n = 0;
        let v = until(
            "x",
            Duration::from_secs(2),
            Duration::from_millis(5),
            || {
                n += 1;
                let k = n;
                async move {
                    Ok(if k >= 3 {
                        Poll::Done(k)
                    } else {
                        Poll::Pending(format!("k={k}"))
                    })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_observation() {
        let e = until::<(), _, _>(
            "the thing",
            Duration::from_millis(50),
            Duration::from_millis(10),
            || async { Ok(Poll::Pending("still 0/1".into())) },
        )
        .await
        .unwrap_err();
        let WaitError::TimedOut { last, .. } = &e;
        assert_eq!(last, "still 0/1");
        assert!(e.to_string().contains("the thing"));
    }

    #[tokio::test]
    async fn a_hanging_observation_is_cut_by_the_deadline() {
        let started = std::time::Instant::now();
        let e = until::<(), _, _>(
            "hang",
            Duration::from_millis(100),
            Duration::from_millis(10),
            futures::future::pending::<Result<Poll<()>, OpsError>>,
        )
        .await;
        assert!(e.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
