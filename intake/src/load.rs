//! Simulated phones: replay a campaign against an intake the way reporters'
//! phones send it, and count what came back.
//!
//! Each simulated device holds its own token and sends its reporter's
//! messages in order, alone or as NDJSON batches. A message answered 408,
//! 429, 5xx or not answered at all is sent again, with the same bytes,
//! after the `Retry-After` the intake asked for or an exponential backoff
//! with jitter, whichever is longer — what a phone should do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gridstat_schemas::GeneratedMessage;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;

use crate::dedup::Receipt;

/// The messages one device sends, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    /// The reporter (or handler) id of its messages.
    pub reporter_id: String,
    /// The grids its messages are for (its area).
    pub grids: Vec<String>,
    /// Its messages, as positions in the campaign, in sending order.
    pub messages: Vec<usize>,
}

/// Split a campaign over devices: one per reporter or case handler, each
/// with the grids it reports on. A message whose author cannot be read
/// (not JSON, say) goes to a device covering its grid: it is sent with a
/// valid token and rejected for what it is.
pub fn plan_devices(messages: &[GeneratedMessage]) -> Vec<DevicePlan> {
    let mut by_author: BTreeMap<String, (BTreeSet<String>, Vec<usize>)> = BTreeMap::new();
    let mut orphans = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match author(&m.bytes) {
            Some(who) => {
                let entry = by_author.entry(who).or_default();
                entry.0.insert(m.key.clone());
                entry.1.push(i);
            }
            None => orphans.push(i),
        }
    }
    let mut plans: Vec<DevicePlan> = by_author
        .into_iter()
        .map(|(reporter_id, (grids, messages))| DevicePlan {
            reporter_id,
            grids: grids.into_iter().collect(),
            messages,
        })
        .collect();
    let mut covering: HashMap<&str, usize> = HashMap::new();
    for (d, plan) in plans.iter().enumerate() {
        for g in &plan.grids {
            covering.entry(g.as_str()).or_insert(d);
        }
    }
    let placed: Vec<(usize, usize)> = orphans
        .into_iter()
        .map(|i| {
            (
                covering.get(messages[i].key.as_str()).copied().unwrap_or(0),
                i,
            )
        })
        .collect();
    if plans.is_empty() && !placed.is_empty() {
        plans.push(DevicePlan {
            reporter_id: "load-orphans".into(),
            grids: vec![messages[placed[0].1].key.clone()],
            messages: Vec::new(),
        });
    }
    for (d, i) in placed {
        plans[d].messages.push(i);
    }
    for plan in &mut plans {
        plan.messages.sort_unstable();
    }
    plans
}

fn author(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("reporter_id")
        .or_else(|| v.get("handler_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A device ready to send: its token and its messages.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// The device token.
    pub token: String,
    /// Its messages, in order.
    pub messages: Vec<Arc<[u8]>>,
}

/// How the simulated devices behave.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The intake's base URL (`http://127.0.0.1:8080`).
    pub url: String,
    /// Devices sending at the same time.
    pub concurrency: usize,
    /// Messages per request: 1 uses `/v1/submissions`, more uses
    /// `/v1/submissions/batch`.
    pub batch_size: usize,
    /// First retry delay; doubled per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// A message still not settled after this long is given up.
    pub give_up_after: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            concurrency: 16,
            batch_size: 1,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            give_up_after: Duration::from_secs(300),
        }
    }
}

/// What the run achieved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Messages sent (each counted once, however often retried).
    pub sent: u64,
    /// Written now (201).
    pub accepted: u64,
    /// Answered with an earlier receipt (200).
    pub replayed: u64,
    /// Rejected for good, by error class.
    pub rejected: BTreeMap<String, u64>,
    /// Requests sent again after 408, 429, 5xx or no answer.
    pub retries: u64,
    /// Messages given up after `give_up_after`.
    pub gave_up: u64,
    /// Every receipt (accepted and replayed).
    pub receipts: Vec<Receipt>,
    /// Statuses of every answer, retried ones included.
    pub statuses: BTreeMap<u16, u64>,
}

/// Answer to one message: final, or to be sent again.
enum Answer {
    Final(StatusCode, Value),
    Retry(Option<Duration>),
}

#[derive(Debug, Default)]
struct Shared {
    report: Mutex<LoadReport>,
    settled: AtomicU64,
}

/// Run every device, `opts.concurrency` at a time; `progress` is called
/// with the number of messages settled so far.
pub async fn run(
    client: reqwest::Client,
    devices: Vec<SimDevice>,
    opts: LoadOptions,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> LoadReport {
    let queue = Arc::new(Mutex::new(
        devices.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let shared = Arc::new(Shared::default());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency.max(1) {
        let (queue, shared, client, opts, progress) = (
            Arc::clone(&queue),
            Arc::clone(&shared),
            client.clone(),
            opts.clone(),
            Arc::clone(&progress),
        );
        workers.spawn(async move {
            loop {
                let next = queue.lock().expect("load queue").pop();
                let Some((index, device)) = next else { break };
                let phone = Phone {
                    client: &client,
                    opts: &opts,
                    shared: &shared,
                    progress: &*progress,
                    rng: index as u64 ^ 0x9E37_79B9_7F4A_7C15,
                };
                phone.send_all(&device).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let report = shared.report.lock().expect("load report").clone();
    report
}

struct Phone<'a> {
    client: &'a reqwest::Client,
    opts: &'a LoadOptions,
    shared: &'a Shared,
    progress: &'a (dyn Fn(u64) + Send + Sync),
    rng: u64,
}

impl Phone<'_> {
    async fn send_all(mut self, device: &SimDevice) {
        for chunk in device.messages.chunks(self.opts.batch_size.max(1)) {
            let started = Instant::now();
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                if attempt > 0 {
                    self.note_retry();
                }
                let answers = if self.opts.batch_size <= 1 {
                    vec![self.send_one(&device.token, &chunk[pending[0]]).await]
                } else {
                    let lines: Vec<&[u8]> = pending.iter().map(|&i| &*chunk[i]).collect();
                    self.send_batch(&device.token, &lines).await
                };
                let mut wait: Option<Duration> = None;
                let mut still = Vec::new();
                for (&i, answer) in pending.iter().zip(answers) {
                    match answer {
                        Answer::Final(status, body) => self.settle(status, &body),
                        Answer::Retry(after) => {
                            wait = wait.max(after.or(Some(Duration::ZERO)));
                            still.push(i);
                        }
                    }
                }
                pending = still;
                if pending.is_empty() {
                    break;
                }
                if started.elapsed() > self.opts.give_up_after {
                    let mut report = self.shared.report.lock().expect("load report");
                    report.gave_up += pending.len() as u64;
                    report.sent += pending.len() as u64;
                    drop(report);
                    self.advance(pending.len() as u64);
                    break;
                }
                let backoff = self.backoff(attempt);
                tokio::time::sleep(backoff.max(wait.unwrap_or_default())).await;
                attempt += 1;
            }
        }
    }

    async fn send_one(&self, token: &str, message: &[u8]) -> Answer {
        let url = format!("{}/v1/submissions", self.opts.url);
        let sent = self
            .client
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(message.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(_) => return Answer::Retry(None),
        };
        let status = response.status();
        self.count_status(status);
        let after = retry_after(&response);
        let body = json_value(response).await;
        classify(status, body, after)
    }

    async fn send_batch(&self, token: &str, lines: &[&[u8]]) -> Vec<Answer> {
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        let url = format!("{}/v1/submissions/batch", self.opts.url);
        let sent = self
            .client
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await;
        let retry_all = |after| (0..lines.len()).map(|_| Answer::Retry(after)).collect();
        let response = match sent {
            Ok(r) => r,
            Err(_) => return retry_all(None),
        };
        let status = response.status();
        self.count_status(status);
        let after = retry_after(&response);
        let body = json_value(response).await;
        if status != StatusCode::OK {
            return match classify(status, body, after) {
                Answer::Final(s, b) => (0..lines.len())
                    .map(|_| Answer::Final(s, b.clone()))
                    .collect(),
                Answer::Retry(a) => retry_all(a),
            };
        }
        // Lines without a result (blank ones) do not occur: every line sent has content.
        let results = body.as_array().cloned().unwrap_or_default();
        if results.len() != lines.len() {
            return retry_all(after);
        }
        results
            .into_iter()
            .map(|r| {
                let status = r["status"]
                    .as_u64()
                    .and_then(|s| StatusCode::from_u16(s as u16).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let inner = r
                    .get("receipt")
                    .or_else(|| r.get("error"))
                    .cloned()
                    .unwrap_or(Value::Null);
                classify(status, inner, after)
            })
            .collect()
    }

    fn settle(&self, status: StatusCode, body: &Value) {
        let mut report = self.shared.report.lock().expect("load report");
        report.sent += 1;
        match status {
            StatusCode::CREATED | StatusCode::OK => {
                if status == StatusCode::CREATED {
                    report.accepted += 1;
                } else {
                    report.replayed += 1;
                }
                if let Ok(receipt) = serde_json::from_value::<Receipt>(body.clone()) {
                    report.receipts.push(receipt);
                }
            }
            _ => {
                let class = body["error_class"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string();
                *report.rejected.entry(class).or_default() += 1;
            }
        }
        drop(report);
        self.advance(1);
    }

    fn advance(&self, n: u64) {
        let done = self.shared.settled.fetch_add(n, Ordering::Relaxed) + n;
        (self.progress)(done);
    }

    fn note_retry(&self) {
        self.shared.report.lock().expect("load report").retries += 1;
    }

    fn count_status(&self, status: StatusCode) {
        *self
            .shared
            .report
            .lock()
            .expect("load report")
            .statuses
            .entry(status.as_u16())
            .or_default() += 1;
    }

    /// Exponential backoff with full jitter (xorshift; no need for more).
    fn backoff(&mut self, attempt: u32) -> Duration {
        let cap = self
            .opts
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.opts.backoff_max);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = (self.rng % 1000) as f64 / 1000.0;
        cap.mul_f64(0.5 + fraction / 2.0)
    }
}

fn classify(status: StatusCode, body: Value, after: Option<Duration>) -> Answer {
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Answer::Retry(after)
    } else {
        Answer::Final(status, body)
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A body as JSON, `Null` when it is not.
async fn json_value(response: reqwest::Response) -> Value {
    match response.bytes().await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridstat_schemas::{GenOptions, Generator, Registry};

    #[test]
    fn every_message_has_one_device_and_devices_cover_their_grids() {
        let registry = Registry::jiangmen();
        let opts = GenOptions {
            days: 2,
            scale: 0.002,
            invalid_rate: 0.05,
            ..GenOptions::default()
        };
        let messages: Vec<_> = Generator::new(&registry, opts).collect();
        let plans = plan_devices(&messages);
        let mut seen: Vec<usize> = plans.iter().flat_map(|p| p.messages.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..messages.len()).collect::<Vec<_>>());
        for plan in &plans {
            assert!(plan.messages.windows(2).all(|w| w[0] < w[1]), "in order");
            for &i in &plan.messages {
                if author(&messages[i].bytes).is_some() {
                    assert!(plan.grids.contains(&messages[i].key));
                }
            }
        }
    }
}
