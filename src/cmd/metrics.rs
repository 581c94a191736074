//! `--metrics-addr`: Prometheus text at /metrics, liveness at /healthz,
//! over HTTP/1.1 (hyper).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gridstat_ingest::IngestMetrics;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::CONTENT_TYPE;
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
                    let response = respond(&req, &metrics);
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
fn respond<B>(req: &Request<B>, metrics: &IngestMetrics) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" if read => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" if read => (StatusCode::OK, TEXT, "ok\n".to_string()),
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
