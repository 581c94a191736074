//! One submission's way through the intake: decode and validate (as ingest
//! does), check it against the device, claim its id, queue it to Kafka and
//! wait for the delivery report.
//!
//! The steps up to queueing run synchronously, line after line, so that a
//! batch's messages for one grid are queued — and so written — in order.
//! Waiting for delivery runs in a task of its own: a phone that hangs up
//! does not cancel a write, and its resend gets the receipt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use chrono::Utc;
use futures::future::BoxFuture;
use futures::FutureExt;
use gridstat_schemas::{decode_placed, DecodeOptions, Registry, Submission};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::config::IntakeOptions;
use crate::dedup::{content_hash, Claim, FlightGuard, Idempotency, Receipt};
use crate::devices::Authorized;
use crate::kafka::{Outgoing, SinkError, SubmissionSink};
use crate::metrics::IntakeMetrics;
use crate::store::DeviceAuth;

/// A submission or request that is not accepted, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// HTTP status.
    pub status: StatusCode,
    /// Error class: one of docs/schema.md's for a bad message, else
    /// `unauthorized`, `forbidden`, `conflict`, `too_large`, `too_many_lines`,
    /// `overloaded`, `unavailable`, `body_timeout`, `bad_request`.
    pub class: &'static str,
    /// The field at fault, when there is one.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
    /// When to retry (429 and 503).
    pub retry_after: Option<Duration>,
    /// More fields of the error body (the hashes of a 409).
    pub detail: Option<Value>,
}

impl Rejection {
    /// A rejection without field, retry time or detail.
    pub fn new(status: StatusCode, class: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            class,
            field: None,
            message: message.into(),
            retry_after: None,
            detail: None,
        }
    }

    fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    fn retry(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The JSON error body: `{error_class, field, message, …}`.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "error_class": self.class,
            "field": self.field,
            "message": self.message,
        });
        if let (Some(Value::Object(extra)), Some(obj)) = (&self.detail, body.as_object_mut()) {
            obj.extend(extra.clone());
        }
        body
    }
}

/// What became of one submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Written now (201).
    Accepted(Receipt),
    /// Written before; the original receipt (200).
    Replayed(Receipt),
    /// Not written.
    Rejected(Rejection),
}

impl Outcome {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Accepted(_) => StatusCode::CREATED,
            Outcome::Replayed(_) => StatusCode::OK,
            Outcome::Rejected(r) => r.status,
        }
    }

    /// The metrics class.
    pub fn class(&self) -> &'static str {
        match self {
            Outcome::Accepted(_) => "accepted",
            Outcome::Replayed(_) => "replayed",
            Outcome::Rejected(r) => r.class,
        }
    }

    /// The JSON body: the receipt (with `replayed`) or the error.
    pub fn body(&self) -> Value {
        match self {
            Outcome::Accepted(r) | Outcome::Replayed(r) => {
                let mut v = serde_json::to_value(r).expect("a receipt serializes");
                v["replayed"] = Value::Bool(matches!(self, Outcome::Replayed(_)));
                v
            }
            Outcome::Rejected(r) => r.body(),
        }
    }
}

/// A submission decided at once, or one waiting for Kafka.
enum Step {
    Done(Outcome),
    Pending(BoxFuture<'static, Outcome>),
}

/// The intake: its resources, limits and state, shared by every request.
#[derive(Debug)]
pub struct Intake {
    pub(crate) registry: Arc<Registry>,
    pub(crate) opts: IntakeOptions,
    pub(crate) auth: Arc<DeviceAuth>,
    pub(crate) sink: Arc<dyn SubmissionSink>,
    pub(crate) dedup: Arc<Idempotency>,
    pub(crate) metrics: IntakeMetrics,
    pub(crate) budget: Arc<Semaphore>,
}

impl Intake {
    /// An intake writing to `sink`, authorising against `auth`.
    pub fn new(
        registry: Arc<Registry>,
        opts: IntakeOptions,
        auth: Arc<DeviceAuth>,
        sink: Arc<dyn SubmissionSink>,
    ) -> Arc<Self> {
        let budget = Arc::new(Semaphore::new(
            opts.max_inflight_bytes.min(Semaphore::MAX_PERMITS),
        ));
        Arc::new(Self {
            registry,
            dedup: Idempotency::new(opts.dedup_capacity, opts.dedup_ttl),
            opts,
            auth,
            sink,
            metrics: IntakeMetrics::default(),
            budget,
        })
    }

    /// The options it runs with.
    pub fn options(&self) -> &IntakeOptions {
        &self.opts
    }

    /// Its metrics.
    pub fn metrics(&self) -> &IntakeMetrics {
        &self.metrics
    }

    /// One message (the body of `POST /v1/submissions`).
    /// Whitespace around the message is not part of it: a body with a
    /// trailing newline is the same submission as the line in a batch.
    pub async fn submit(self: &Arc<Self>, device: &Authorized, body: Bytes) -> Outcome {
        let decode = self.decode_options();
        let message = body.slice_ref(body.trim_ascii());
        match self.start(device, &message, &decode) {
            Step::Done(outcome) => outcome,
            Step::Pending(wait) => join_detached(vec![wait]).await.remove(0),
        }
    }

    /// NDJSON lines (the body of `POST /v1/submissions/batch`): the outcome
    /// of every non-blank line with its 1-based line number, in order.
    pub async fn submit_batch(
        self: &Arc<Self>,
        device: &Authorized,
        body: Bytes,
    ) -> Result<Vec<(usize, Outcome)>, Rejection> {
        let lines: Vec<(usize, Bytes)> = body
            .split(|b| *b == b'\n')
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim_ascii()))
            .filter(|(_, line)| !line.is_empty())
            .map(|(n, line)| (n, body.slice_ref(line)))
            .collect();
        if lines.len() > self.opts.max_batch_lines {
            return Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_lines",
                format!(
                    "{} lines, over the limit of {} per batch: send the rest in another batch",
                    lines.len(),
                    self.opts.max_batch_lines
                ),
            ));
        }
        let decode = self.decode_options();
        let mut numbers = Vec::with_capacity(lines.len());
        let mut slots: Vec<Option<Outcome>> = Vec::with_capacity(lines.len());
        let mut pending = Vec::new();
        for (n, line) in &lines {
            numbers.push(*n);
            match self.start(device, line, &decode) {
                Step::Done(outcome) => slots.push(Some(outcome)),
                Step::Pending(wait) => {
                    pending.push((slots.len(), wait));
                    slots.push(None);
                }
            }
        }
        let (at, waits): (Vec<usize>, Vec<_>) = pending.into_iter().unzip();
        for (i, outcome) in at.into_iter().zip(join_detached(waits).await) {
            slots[i] = Some(outcome);
        }
        Ok(numbers
            .into_iter()
            .zip(slots.into_iter().map(|o| o.expect("every line settled")))
            .collect())
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            now: Some(Utc::now().with_timezone(&gridstat_schemas::time::shanghai())),
            ..self.opts.decode.clone()
        }
    }

    /// Decide what can be decided now; queue the message if it is new.
    fn start(self: &Arc<Self>, device: &Authorized, bytes: &[u8], decode: &DecodeOptions) -> Step {
        let placed = match decode_placed(bytes, &self.registry, decode, None) {
            Ok(placed) => placed,
            Err(e) => {
                let mut r = Rejection::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.class().as_str(),
                    e.to_string(),
                );
                r.field = e.field().map(str::to_string);
                return Step::Done(Outcome::Rejected(r));
            }
        };
        let submission = &placed.submission;
        if let Err(r) = authorize(device, submission, &self.registry, placed.grid) {
            return Step::Done(Outcome::Rejected(r));
        }
        let id = submission.submission_id();
        let hash = content_hash(bytes);
        let guard = match self.dedup.claim(id, hash) {
            Claim::Replay(receipt) => return Step::Done(Outcome::Replayed(receipt)),
            Claim::Conflict(original) => {
                return Step::Done(Outcome::Rejected(conflict(id, &hash, &original)))
            }
            Claim::Wait(waiter) => {
                let retry = self.opts.retry_after_unavailable;
                return Step::Pending(
                    async move {
                        match waiter.outcome().await {
                            Some(receipt) => Outcome::Replayed(receipt),
                            None => Outcome::Rejected(unavailable(
                                "the first copy of this submission was not written; send it again",
                                retry,
                            )),
                        }
                    }
                    .boxed(),
                );
            }
            Claim::New(guard) => guard,
        };
        self.produce(guard, submission, bytes)
    }

    /// Queue a claimed submission; the pending step settles the claim
    /// with the receipt once Kafka confirms, or drops it (nothing written).
    fn produce(
        self: &Arc<Self>,
        guard: FlightGuard,
        submission: &Submission<'_>,
        bytes: &[u8],
    ) -> Step {
        if let Err(why) = self.sink.health() {
            return Step::Done(Outcome::Rejected(unavailable(
                &format!("Kafka is unreachable ({why}); send it again later"),
                self.opts.retry_after_unavailable,
            )));
        }
        let topic = match submission {
            Submission::Visit(_) => &self.opts.visits_topic,
            Submission::Case(_) => &self.opts.cases_topic,
        };
        let queued = self.sink.enqueue(Outgoing {
            topic,
            key: submission.grid_id(),
            payload: bytes,
            timestamp_ms: Utc::now().timestamp_millis(),
        });
        let delivery = match queued {
            Ok(delivery) => delivery,
            Err(SinkError::QueueFull) => {
                let r = Rejection::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "overloaded",
                    "the intake's queue to Kafka is full; send it again later",
                );
                return Step::Done(Outcome::Rejected(r.retry(self.opts.retry_after_overloaded)));
            }
            Err(e) => {
                let r = unavailable(&e.to_string(), self.opts.retry_after_unavailable);
                return Step::Done(Outcome::Rejected(r));
            }
        };
        let this = Arc::clone(self);
        let (topic, id) = (topic.clone(), submission.submission_id().to_string());
        let queued_at = Instant::now();
        Step::Pending(
            async move {
                match delivery.await {
                    Ok(d) => {
                        this.metrics.produced(queued_at.elapsed());
                        let receipt = Receipt {
                            submission_id: id,
                            topic,
                            partition: d.partition,
                            offset: d.offset,
                        };
                        guard.complete(&receipt);
                        Outcome::Accepted(receipt)
                    }
                    Err(e) => {
                        drop(guard);
                        tracing::warn!(error = %e, "A submission was not written.");
                        let r = unavailable(&e.to_string(), this.opts.retry_after_unavailable);
                        Outcome::Rejected(r)
                    }
                }
            }
            .boxed(),
        )
    }
}

/// Wait for every future in a task of its own, so that dropping the
/// caller (a client that hung up) does not cancel them.
async fn join_detached(waits: Vec<BoxFuture<'static, Outcome>>) -> Vec<Outcome> {
    if waits.is_empty() {
        return Vec::new();
    }
    let n = waits.len();
    match tokio::spawn(futures::future::join_all(waits)).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(error = %e, "A delivery task failed.");
            let r = Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the intake failed; send it again",
            );
            vec![Outcome::Rejected(r); n]
        }
    }
}

fn unavailable(message: &str, retry: Duration) -> Rejection {
    Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).retry(retry)
}

fn conflict(id: &str, submitted: &[u8; 32], original: &[u8; 32]) -> Rejection {
    let mut r = Rejection::new(
        StatusCode::CONFLICT,
        "conflict",
        format!(
            "submission_id {id:?} was already submitted with other content; a new submission needs a new id, a resend the same bytes"
        ),
    )
    .field("submission_id");
    r.detail = Some(json!({
        "submitted_sha256": hex::encode(submitted),
        "original_sha256": hex::encode(original),
    }));
    r
}

/// The device may submit this: its reporter, a grid in its area.
fn authorize(
    device: &Authorized,
    submission: &Submission<'_>,
    registry: &Registry,
    grid: usize,
) -> Result<(), Rejection> {
    let (field, reporter) = match submission {
        Submission::Visit(v) => ("reporter_id", &*v.reporter_id),
        Submission::Case(c) => ("handler_id", &*c.handler_id),
    };
    if reporter != device.reporter_id {
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this device submits for reporter {:?} only",
                device.reporter_id
            ),
        )
        .field(field));
    }
    if !device.covers(registry, grid) {
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this device may not submit for this grid: it is outside the device's area",
        )
        .field("grid_id"));
    }
    Ok(())
}
