//! The HTTP contract against a memory sink: every refusal with its status
//! and class, and nothing written for any of them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridstat_intake::devices::Area;
use gridstat_intake::kafka::SinkError;
use gridstat_intake::{IntakeOptions, MemorySink};
use gridstat_schemas::generate::{Expect, GenOptions, Generator};
use gridstat_schemas::{ErrorClass, GeneratedMessage, Registry};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{fast_opts, post, Served};

fn campaign(invalid_rate: f64) -> Vec<GeneratedMessage> {
    let opts = GenOptions {
        days: 2,
        scale: 0.003,
        invalid_rate,
        duplicate_rate: 0.0,
        ..GenOptions::default()
    };
    Generator::new(&Registry::jiangmen(), opts).collect()
}

/// A valid visit and its reporter.
fn valid_visit() -> (Vec<u8>, Value) {
    let m = campaign(0.0)
        .into_iter()
        .find(|m| {
            m.expect == Expect::Valid && m.bytes.starts_with(b"{\"schema\":\"gridstat.visit/1\"")
        })
        .unwrap();
    let v: Value = serde_json::from_slice(&m.bytes).unwrap();
    (m.bytes, v)
}

fn county_of(registry: &Registry, grid: &str) -> String {
    let g = registry.grid(grid).unwrap();
    registry.counties[g.county].code.clone()
}

async fn device_for(served: &Served, v: &Value) -> (gridstat_intake::devices::Device, String) {
    let grid = v["grid_id"].as_str().unwrap();
    let county = county_of(&served.registry, grid);
    served
        .add_device(v["reporter_id"].as_str().unwrap(), Area::County(county))
        .await
}

#[tokio::test]
async fn bad_messages_of_every_input_class_are_refused_and_nothing_is_written() {
    let sink = Arc::new(MemorySink::default());
    let served = Served::start(sink.clone(), fast_opts()).await;
    let client = reqwest::Client::new();
    // Any active token passes authentication; validation comes before the
    // device's area is checked.
    let (_, token) = served
        .add_device(
            "rp-any",
            Area::County(served.registry.counties[0].code.clone()),
        )
        .await;
    let mut seen = BTreeSet::new();
    for m in campaign(0.3) {
        let Expect::Invalid(class) = m.expect else {
            continue;
        };
        let (status, body, _) =
            post(&client, &served.url("/v1/submissions"), &token, m.bytes).await;
        let want = if class == ErrorClass::TooLarge {
            413
        } else {
            422
        };
        assert_eq!(status, want, "{class}: {body}");
        assert_eq!(body["error_class"], class.as_str(), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        if !matches!(
            class,
            ErrorClass::InvalidUtf8 | ErrorClass::MalformedJson | ErrorClass::TooLarge
        ) {
            assert!(
                body["field"].as_str().is_some(),
                "{class} names its field: {body}"
            );
        }
        seen.insert(class);
    }
    let all: BTreeSet<_> = ErrorClass::OF_INPUT.iter().copied().collect();
    assert_eq!(seen, all, "every input class was tried");
    assert!(sink.written().is_empty(), "nothing reached the sink");
}

#[tokio::test]
async fn a_grid_outside_the_area_or_another_reporter_is_forbidden() {
    let sink = Arc::new(MemorySink::default());
    let served = Served::start(sink.clone(), fast_opts()).await;
    let client = reqwest::Client::new();
    let (bytes, v) = valid_visit();
    let reporter = v["reporter_id"].as_str().unwrap();
    let grid = v["grid_id"].as_str().unwrap();
    let other_grid = served
        .registry
        .grids
        .iter()
        .find(|g| g.id != grid)
        .unwrap()
        .id
        .clone();
    let (_, token) = served
        .add_device(reporter, Area::Grids(vec![other_grid]))
        .await;
    let (status, body, _) = post(
        &client,
        &served.url("/v1/submissions"),
        &token,
        bytes.clone(),
    )
    .await;
    assert_eq!(
        (status, body["error_class"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert_eq!(body["field"], "grid_id");
    let county = county_of(&served.registry, grid);
    let (_, token) = served
        .add_device("rp-someone-else", Area::County(county))
        .await;
    let (status, body, _) = post(&client, &served.url("/v1/submissions"), &token, bytes).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (403, Some("reporter_id")),
        "{body}"
    );
    assert!(sink.written().is_empty());
}

#[tokio::test]
async fn missing_unknown_and_revoked_tokens_are_unauthorized() {
    let sink = Arc::new(MemorySink::default());
    let served = Served::start(sink.clone(), fast_opts()).await;
    let client = reqwest::Client::new();
    let (bytes, v) = valid_visit();
    let r = client
        .post(served.url("/v1/submissions"))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let (status, _, _) = post(
        &client,
        &served.url("/v1/submissions"),
        "gst_0123",
        bytes.clone(),
    )
    .await;
    assert_eq!(status, 401);

    let (device, token) = device_for(&served, &v).await;
    let (status, body, _) = post(
        &client,
        &served.url("/v1/submissions"),
        &token,
        bytes.clone(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let revoked_at = Instant::now();
    served
        .devices
        .update(|t| {
            t.revoke(&device.id, chrono::Utc::now().fixed_offset())
                .map(|_| ())
        })
        .await
        .unwrap();
    loop {
        let (status, _, _) = post(
            &client,
            &served.url("/v1/submissions"),
            &token,
            bytes.clone(),
        )
        .await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "a replay until the revocation is seen");
        assert!(
            revoked_at.elapsed() < Duration::from_secs(30),
            "revoked within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // With a 200 ms reload interval it takes well under a second.
    assert!(
        revoked_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        revoked_at.elapsed()
    );
}

#[tokio::test]
async fn oversized_bodies_and_batches_are_too_large() {
    let sink = Arc::new(MemorySink::default());
    let opts = IntakeOptions {
        max_batch_bytes: 64 * 1024,
        max_batch_lines: 3,
        ..fast_opts()
    };
    let served = Served::start(sink.clone(), opts).await;
    let client = reqwest::Client::new();
    let (bytes, v) = valid_visit();
    let (_, token) = device_for(&served, &v).await;
    let big = vec![b' '; 16 * 1024 + 1];
    let (status, body, _) = post(&client, &served.url("/v1/submissions"), &token, big).await;
    assert_eq!(
        (status, body["error_class"].as_str()),
        (413, Some("too_large")),
        "{body}"
    );
    let big = vec![b'\n'; 64 * 1024 + 1];
    let (status, _, _) = post(&client, &served.url("/v1/submissions/batch"), &token, big).await;
    assert_eq!(status, 413);
    let mut four = Vec::new();
    for _ in 0..4 {
        four.extend_from_slice(&bytes);
        four.push(b'\n');
    }
    let (status, body, _) = post(&client, &served.url("/v1/submissions/batch"), &token, four).await;
    assert_eq!(
        (status, body["error_class"].as_str()),
        (413, Some("too_many_lines")),
        "{body}"
    );

    // A chunked body (no Content-Length) is cut off at the limit as it is read.
    let mut sock = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    let head = format!(
        "POST /v1/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..5 {
        let chunk = vec![b' '; 4096];
        let _ = sock
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = sock.write_all(&chunk).await;
        let _ = sock.write_all(b"\r\n").await;
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(sink.written().is_empty());
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_a_408() {
    let sink = Arc::new(MemorySink::default());
    let opts = IntakeOptions {
        body_timeout: Duration::from_millis(300),
        ..fast_opts()
    };
    let served = Served::start(sink, opts).await;
    let (_, v) = valid_visit();
    let (_, token) = device_for(&served, &v).await;
    let mut sock = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    let head = format!(
        "POST /v1/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let started = Instant::now();
    sock.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn same_id_same_bytes_replays_other_bytes_conflict() {
    let sink = Arc::new(MemorySink::default());
    let served = Served::start(sink.clone(), fast_opts()).await;
    let client = reqwest::Client::new();
    let (bytes, v) = valid_visit();
    let (_, token) = device_for(&served, &v).await;
    let url = served.url("/v1/submissions");
    let (status, first, _) = post(&client, &url, &token, bytes.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["submission_id"], v["submission_id"]);
    assert_eq!(first["replayed"], false);
    let (status, again, _) = post(&client, &url, &token, bytes.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(again["offset"], first["offset"]);
    assert_eq!(again["replayed"], true);
    let mut changed = v.clone();
    changed["target_id"] = "hh-another".into();
    let (status, body, _) =
        post(&client, &url, &token, serde_json::to_vec(&changed).unwrap()).await;
    assert_eq!(
        (status, body["error_class"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert_eq!(body["field"], "submission_id");
    let hex = |b: &[u8]| {
        let d = ring::digest::digest(&ring::digest::SHA256, b);
        d.as_ref()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    assert_eq!(body["original_sha256"], hex(&bytes));
    assert_eq!(
        body["submitted_sha256"],
        hex(&serde_json::to_vec(&changed).unwrap())
    );
    assert_eq!(sink.written().len(), 1);
}

#[tokio::test]
async fn concurrent_duplicates_are_written_once() {
    let sink = Arc::new(MemorySink::default());
    sink.delay_by(Duration::from_millis(300));
    let served = Served::start(sink.clone(), fast_opts()).await;
    let client = reqwest::Client::new();
    let (bytes, v) = valid_visit();
    let (_, token) = device_for(&served, &v).await;
    let url = served.url("/v1/submissions");
    let answers =
        futures::future::join_all((0..20).map(|_| post(&client, &url, &token, bytes.clone())))
            .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        19,
        "{statuses:?}"
    );
    assert!(answers
        .iter()
        .all(|a| a.1["offset"] == answers[0].1["offset"]));
    assert_eq!(sink.written().len(), 1);
}

#[tokio::test]
async fn a_batch_answers_every_line_in_order() {
    let sink = Arc::new(MemorySink::default());
    let served = Served::start(sink.clone(), fast_opts()).await;
    let client = reqwest::Client::new();
    let (bytes, v) = valid_visit();
    let (_, token) = device_for(&served, &v).await;
    let mut bad = v.clone();
    bad["submission_id"] = "other".into();
    bad["reporter_role"] = "mayor".into();
    let mut body = Vec::new();
    for line in [
        bytes.clone(),
        serde_json::to_vec(&bad).unwrap(),
        Vec::new(),
        bytes.clone(),
    ] {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    let (status, results, _) =
        post(&client, &served.url("/v1/submissions/batch"), &token, body).await;
    assert_eq!(status, 200, "{results}");
    let results = results.as_array().unwrap();
    let got: Vec<(u64, u64)> = results
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, [(1, 201), (2, 422), (4, 200)]);
    assert_eq!(results[1]["error"]["error_class"], "bad_enum");
    assert_eq!(results[1]["error"]["field"], "reporter_role");
    assert_eq!(
        results[2]["receipt"]["offset"],
        results[0]["receipt"]["offset"]
    );
    assert_eq!(sink.written().len(), 1);
}

#[tokio::test]
async fn overload_and_outages_answer_with_retry_after_and_write_nothing() {
    let sink = Arc::new(MemorySink::default());
    let (bytes, v) = valid_visit();
    // Room for one message's bytes in flight, not two.
    let opts = IntakeOptions {
        max_inflight_bytes: bytes.len() * 3 / 2,
        ..fast_opts()
    };
    sink.delay_by(Duration::from_millis(500));
    let served = Served::start(sink.clone(), opts).await;
    let client = reqwest::Client::new();
    let (_, token) = device_for(&served, &v).await;
    let url = served.url("/v1/submissions");
    let mut other = v.clone();
    other["submission_id"] = "second".into();
    let (a, b) = tokio::join!(post(&client, &url, &token, bytes.clone()), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post(&client, &url, &token, serde_json::to_vec(&other).unwrap()).await
    });
    assert_eq!(a.0, 201);
    assert_eq!(
        (b.0, b.1["error_class"].as_str()),
        (429, Some("overloaded")),
        "{}",
        b.1
    );
    assert_eq!(b.2["retry-after"], "1");

    sink.fail_with(Some(SinkError::Unavailable("broker down".into())));
    let (status, body, headers) =
        post(&client, &url, &token, serde_json::to_vec(&other).unwrap()).await;
    assert_eq!(
        (status, body["error_class"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert_eq!(headers["retry-after"], "5");
    sink.fail_with(Some(SinkError::QueueFull));
    let (status, _, headers) =
        post(&client, &url, &token, serde_json::to_vec(&other).unwrap()).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(sink.written().len(), 1, "only the first was written");
    sink.fail_with(None);
    let (status, _, _) = post(&client, &url, &token, serde_json::to_vec(&other).unwrap()).await;
    assert_eq!(status, 201, "the retry is written");
}

#[tokio::test]
async fn health_metrics_and_unknown_paths() {
    let sink = Arc::new(MemorySink::default());
    let served = Served::start(sink.clone(), fast_opts()).await;
    let client = reqwest::Client::new();
    let r = client.get(served.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    sink.fail_with(Some(SinkError::Unavailable("down".into())));
    let r = client.get(served.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let (status, _, _) = post(&client, &served.url("/v1/submissions"), "nope", "{}").await;
    assert_eq!(status, 401);
    let text = client
        .get(served.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("gridstat_intake_requests_total{route=\"submit\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(text.contains("gridstat_intake_broker_up 0"), "{text}");
    let r = client.get(served.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn slow_or_idle_connections_are_closed_after_the_header_timeout() {
    let opts = IntakeOptions {
        header_timeout: Duration::from_millis(300),
        ..fast_opts()
    };
    let served = Served::start(Arc::new(MemorySink::default()), opts).await;
    // Headers that never end.
    let mut sock = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "closed within the header timeout");
    // A kept-alive connection that sends nothing more.
    let mut sock = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "an idle kept-alive connection is closed too");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}
