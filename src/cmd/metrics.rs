//! `--metrics-addr`: metrics at /metrics, liveness at /healthz, over
//! HTTP/1.1 (hyper). /metrics answers in OpenMetrics to a scraper that
//! accepts it (Prometheus does), in Prometheus text to anyone else.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gridstat_ingest::metrics::{Exposition, Health};
use gridstat_ingest::IngestMetrics;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// A client that has not sent its request headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Bind `addr` and serve in the background; returns the bound address
/// (port 0 picks a free one).
pub(crate) async fn spawn(
    addr: SocketAddr,
    metrics: Arc<IngestMetrics>,
    stall_after: Duration,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "Serving metrics.");
    tokio::spawn(async move {
        loop {
            let sock = match listener.accept().await {
                Ok((sock, _)) => sock,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "Accepting a metrics connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = respond(&req, &metrics, stall_after);
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(sock), service);
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "Metrics connection ended.");
                }
            });
        }
    });
    Ok(bound)
}

/// The answer to one request: GET or HEAD of /metrics or /healthz.
/// `/healthz` is 503 while the worker is stalled: messages wait and no
/// segment was written for `stall_after` (a store it cannot write to, a
/// wedged consumer); a probe then restarts it.
fn respond<B>(
    req: &Request<B>,
    metrics: &IngestMetrics,
    stall_after: Duration,
) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" if read => {
            let format = exposition(req);
            (
                StatusCode::OK,
                format.content_type(),
                metrics.render(format),
            )
        }
        "/healthz" if read => match metrics.health(std::time::Instant::now(), stall_after) {
            Health::Healthy => (StatusCode::OK, TEXT, "ok\n".to_string()),
            Health::Stalled { idle, lag } => (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!(
                    "stalled: {lag} messages wait and no segment was written for {} s\n",
                    idle.as_secs()
                ),
            ),
            Health::Writing { for_ } => (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!(
                    "stalled: a segment write has not returned for {} s\n",
                    for_.as_secs()
                ),
            ),
        },
        "/metrics" | "/healthz" => (
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "use GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: /metrics or /healthz\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
    }
    response
}

/// OpenMetrics when the request's `Accept` names it, else Prometheus text.
fn exposition<B>(req: &Request<B>) -> Exposition {
    let accepts_openmetrics = req.headers().get_all(ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.contains("application/openmetrics-text"))
    });
    if accepts_openmetrics {
        Exposition::OpenMetrics
    } else {
        Exposition::PrometheusText
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Send `parts` one after another, 50 ms apart, and read the answer.
    async fn exchange(addr: SocketAddr, parts: &[&str]) -> String {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        for part in parts {
            sock.write_all(part.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut answer = String::new();
        sock.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn serves_metrics_and_health_over_http() {
        let addr = spawn(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(IngestMetrics::default()),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
        let close = "Connection: close\r\n\r\n";
        // A request that arrives in pieces, with a query string.
        let answer = exchange(
            addr,
            &["GET /met", "rics?x=1 HTTP/1.1\r\nHost: a\r\n", close],
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("version=0.0.4"), "{answer}");
        assert!(answer.contains("# TYPE gridstat_ingest_flush_seconds histogram"));
        assert!(answer.contains("\ngridstat_ingest_partitions_owned 0\n"));
        // What Prometheus asks for.
        let scrape = "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1\r\n";
        let answer = exchange(addr, &[scrape, close]).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{answer}"
        );
        assert!(answer.contains("# TYPE gridstat_ingest_records_in counter\n"));
        assert!(answer.ends_with("# EOF\n"), "{answer}");
        let answer = exchange(addr, &["GET /healthz HTTP/1.1\r\nHost: a\r\n", close]).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nok\n"));
        let answer = exchange(addr, &["HEAD /metrics HTTP/1.1\r\nHost: a\r\n", close]).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\n"));
        let answer = exchange(addr, &["POST /metrics HTTP/1.1\r\nHost: a\r\n", close]).await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("allow: get, head"),
            "{answer}"
        );
        let answer = exchange(addr, &["GET / HTTP/1.1\r\nHost: a\r\n", close]).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        // Two requests on one kept-alive connection.
        let twice = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
        let answer = exchange(
            addr,
            &[twice, "GET /healthz HTTP/1.1\r\nHost: a\r\n", close],
        )
        .await;
        assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    }
}
