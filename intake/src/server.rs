//! The HTTP service (axum on hyper's HTTP/1 server).
//!
//! Limits, in the order a request meets them: open connections
//! (`max_connections`), the time to send headers (`header_timeout`), the
//! device token (401, or 503 while the device table is stale), the body
//! size from `Content-Length` (413), the in-flight byte budget (429: never
//! queued, so memory stays bounded), the body's size as read (413) and its
//! time (`body_timeout`, 408).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;

use crate::store::AuthError;
use crate::submit::{Intake, Outcome, Rejection};

/// Every route, as (method, path); the OpenAPI document lists each one.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/submissions"),
    ("POST", "/v1/submissions/batch"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/schemas/{file}"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
];

/// The OpenAPI 3.1 document of this service.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// How long running requests may take to finish at shutdown.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// The service's routes over `intake`.
pub fn router(intake: Arc<Intake>) -> Router {
    Router::new()
        .route("/v1/submissions", post(submit_one))
        .route("/v1/submissions/batch", post(submit_batch))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/schemas/{file}", get(schema_file))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(intake)
}

/// Serve `listener` until `shutdown` resolves, then let running requests
/// finish (up to 30 s).
pub async fn serve(listener: TcpListener, intake: Arc<Intake>, shutdown: impl Future<Output = ()>) {
    let opts = intake.options().clone();
    let app = router(intake);
    let connections = Arc::new(tokio::sync::Semaphore::new(opts.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = Arc::clone(&connections).acquire_owned() => p.expect("never closed"),
        };
        let sock = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => sock,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(opts.header_timeout)
            .serve_connection(TokioIo::new(sock), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "Connection ended.");
            }
            drop(permit);
        });
    }
    tracing::info!("Draining running requests.");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_LIMIT) => tracing::warn!("Requests still running after 30 s; stopping."),
    }
}

/// Which endpoint, for limits and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Single,
    Batch,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Single => "submit",
            Route::Batch => "batch",
        }
    }
}

async fn submit_one(State(intake): State<Arc<Intake>>, headers: HeaderMap, body: Body) -> Response {
    submission(intake, Route::Single, headers, body).await
}

async fn submit_batch(
    State(intake): State<Arc<Intake>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    submission(intake, Route::Batch, headers, body).await
}

/// Holds a request's share of the in-flight budget and counts it.
struct InFlight {
    intake: Arc<Intake>,
    bytes: i64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.intake.metrics.inflight(-1, -self.bytes);
    }
}

async fn submission(intake: Arc<Intake>, route: Route, headers: HeaderMap, body: Body) -> Response {
    let response = match admit_and_run(&intake, route, &headers, body).await {
        Ok(response) => response,
        Err(rejection) => {
            intake
                .metrics
                .submission(rejection.status.as_u16(), rejection.class);
            if rejection.status != StatusCode::UNAUTHORIZED {
                tracing::info!(
                    route = route.name(),
                    status = rejection.status.as_u16(),
                    class = rejection.class,
                    "Refused a request."
                );
            }
            error_response(&rejection)
        }
    };
    intake
        .metrics
        .request(route.name(), response.status().as_u16());
    response
}

/// Authenticate, check the size, take budget, read the body, submit.
async fn admit_and_run(
    intake: &Arc<Intake>,
    route: Route,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Rejection> {
    let opts = intake.options();
    let device = intake
        .auth
        .authenticate(bearer(headers))
        .map_err(|e| auth_rejection(e, opts.retry_after_unavailable))?;
    let limit = match route {
        Route::Single => opts.decode.max_message_bytes,
        Route::Batch => opts.max_batch_bytes,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared.filter(|len| *len > limit) {
        return Err(too_large(route, len, limit));
    }
    let _inflight = InFlight::reserve(intake, declared.unwrap_or(limit).max(1))?;
    let bytes = read_body(body, limit, opts.body_timeout, route).await?;
    Ok(match route {
        Route::Single => {
            let outcome = intake.submit(&device, bytes).await;
            note(intake, &device.device_id, &outcome);
            outcome_response(&outcome)
        }
        Route::Batch => {
            let outcomes = intake.submit_batch(&device, bytes).await?;
            batch_response(intake, &device.device_id, &outcomes)
        }
    })
}

fn auth_rejection(e: AuthError, retry: Duration) -> Rejection {
    match e {
        AuthError::Missing => {
            unauthorized("send the device token as `Authorization: Bearer gst_…`")
        }
        AuthError::Unknown => unauthorized("unknown or revoked device token"),
        AuthError::Stale => Rejection {
            retry_after: Some(retry),
            ..Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the intake cannot read its device table; send it again later",
            )
        },
    }
}

impl InFlight {
    /// Take `bytes` of the in-flight budget, or refuse at once (429).
    fn reserve(intake: &Arc<Intake>, bytes: usize) -> Result<Self, Rejection> {
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|n| Arc::clone(&intake.budget).try_acquire_many_owned(n).ok())
            .ok_or_else(|| Rejection {
                retry_after: Some(intake.options().retry_after_overloaded),
                ..Rejection::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "overloaded",
                    "the intake is holding as many bytes as it may; send it again later",
                )
            })?;
        intake.metrics.inflight(1, bytes as i64);
        Ok(Self {
            intake: Arc::clone(intake),
            bytes: bytes as i64,
            _permit: permit,
        })
    }
}

/// One result per line; `Retry-After` when a line may be retried.
fn batch_response(intake: &Intake, device: &str, outcomes: &[(usize, Outcome)]) -> Response {
    let mut retry: Option<Duration> = None;
    let lines: Vec<Value> = outcomes
        .iter()
        .map(|(line, outcome)| {
            note(intake, device, outcome);
            if let Outcome::Rejected(Rejection {
                retry_after: Some(after),
                ..
            }) = outcome
            {
                retry = Some(retry.map_or(*after, |r| r.max(*after)));
            }
            let key = match outcome {
                Outcome::Rejected(_) => "error",
                _ => "receipt",
            };
            serde_json::json!({ "line": line, "status": outcome.status().as_u16(), key: outcome.body() })
        })
        .collect();
    let mut response = json_response(StatusCode::OK, &Value::Array(lines));
    if let Some(after) = retry {
        set_retry_after(&mut response, after);
    }
    response
}

/// Count and log one submission's outcome (never its content).
fn note(intake: &Intake, device: &str, outcome: &Outcome) {
    let status = outcome.status().as_u16();
    intake.metrics.submission(status, outcome.class());
    match outcome {
        Outcome::Rejected(r) => {
            tracing::info!(
                device,
                status,
                class = r.class,
                field = r.field.as_deref(),
                "Rejected a submission."
            )
        }
        _ => tracing::debug!(device, status, "Accepted a submission."),
    }
}

async fn read_body(
    body: Body,
    limit: usize,
    timeout: Duration,
    route: Route,
) -> Result<Bytes, Rejection> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(Rejection::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {} s", timeout.as_secs()),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large(route, limit + 1, limit))
        }
        Ok(Err(e)) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("reading the body failed: {e}"),
        )),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(message: &str) -> Rejection {
    Rejection::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn too_large(route: Route, size: usize, limit: usize) -> Rejection {
    let (what, fix) = match route {
        Route::Single => (
            "message",
            "a message may be at most this size (docs/schema.md)",
        ),
        Route::Batch => ("batch", "send fewer lines per batch"),
    };
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the {what} is over the limit of {limit} bytes ({size} or more): {fix}"),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn set_retry_after(response: &mut Response, after: Duration) {
    let secs = after.as_secs().max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
}

fn error_response(r: &Rejection) -> Response {
    let mut response = json_response(r.status, &r.body());
    if let Some(after) = r.retry_after {
        set_retry_after(&mut response, after);
    }
    if r.status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn outcome_response(outcome: &Outcome) -> Response {
    match outcome {
        Outcome::Rejected(r) => error_response(r),
        _ => json_response(outcome.status(), &outcome.body()),
    }
}

async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn schema_file(Path(file): Path<String>) -> Response {
    match gridstat_schemas::json_schema::all()
        .into_iter()
        .find(|s| s.file == file)
    {
        Some(s) => json_response(StatusCode::OK, &s.schema),
        None => not_found().await,
    }
}

async fn healthz(State(intake): State<Arc<Intake>>) -> Response {
    let broker = intake.sink.health();
    let devices = !intake.auth.is_stale();
    let (status, text) = match (&broker, devices) {
        (Ok(()), true) => (StatusCode::OK, "ok\n".to_string()),
        // The listener faces phones: the cause (broker addresses, SASL
        // errors) goes to the log, not to whoever asks.
        (Err(why), _) => {
            tracing::warn!(error = %why, "Health check: Kafka unreachable.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "kafka unreachable\n".to_string(),
            )
        }
        (Ok(()), false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "device table stale\n".to_string(),
        ),
    };
    (status, text).into_response()
}

async fn metrics(State(intake): State<Arc<Intake>>) -> Response {
    intake.metrics.set_state(
        intake.sink.health().is_ok(),
        intake.auth.active(),
        intake.dedup.len(),
    );
    let mut response = intake.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "gridstat intake: POST /v1/submissions or /v1/submissions/batch; the API is described at /v1/openapi.json\n",
    )
        .into_response()
}
