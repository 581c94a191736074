//! The intake's Prometheus metrics (`/metrics`, OpenMetrics text).
//!
//! | metric | meaning |
//! | --- | --- |
//! | `gridstat_intake_requests_total{route,status}` | HTTP requests by route and status |
//! | `gridstat_intake_submissions_total{status,class}` | submissions (batch lines included) by status and class (`accepted`, `replayed`, an error class of docs/schema.md, `unauthorized`, `forbidden`, `conflict`, `overloaded`, `unavailable`, …) |
//! | `gridstat_intake_produce_seconds` | histogram: queueing to delivery report, for messages written |
//! | `gridstat_intake_inflight_requests` | requests being handled |
//! | `gridstat_intake_inflight_bytes` | body bytes held by requests being handled (bounded by `--max-inflight-bytes`) |
//! | `gridstat_intake_broker_up` | 1 when the last metadata probe reached Kafka |
//! | `gridstat_intake_devices_active` | active devices in this replica's view of the device table |
//! | `gridstat_intake_idempotency_ids` | submission ids remembered for resends |

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SubmissionLabels {
    status: u16,
    class: &'static str,
}

/// Every metric of one intake process.
#[derive(Debug)]
pub struct IntakeMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    submissions: Family<SubmissionLabels, Counter>,
    produce: Histogram,
    inflight_requests: Gauge,
    inflight_bytes: Gauge,
    broker_up: Gauge,
    devices_active: Gauge,
    idempotency_ids: Gauge,
}

impl Default for IntakeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gridstat_intake");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let submissions = Family::<SubmissionLabels, Counter>::default();
        registry.register(
            "submissions",
            "Submissions (batch lines included) by status and class",
            submissions.clone(),
        );
        // 1 ms to about 33 s.
        let produce = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "produce_seconds",
            "Time from queueing a message to its delivery report",
            produce.clone(),
        );
        let inflight_requests = Gauge::default();
        registry.register(
            "inflight_requests",
            "Requests being handled",
            inflight_requests.clone(),
        );
        let inflight_bytes = Gauge::default();
        registry.register(
            "inflight_bytes",
            "Body bytes held by requests being handled",
            inflight_bytes.clone(),
        );
        let broker_up = Gauge::default();
        registry.register(
            "broker_up",
            "1 when the last probe reached Kafka",
            broker_up.clone(),
        );
        let devices_active = Gauge::default();
        registry.register(
            "devices_active",
            "Active devices in this replica's view of the device table",
            devices_active.clone(),
        );
        let idempotency_ids = Gauge::default();
        registry.register(
            "idempotency_ids",
            "Submission ids remembered for resends",
            idempotency_ids.clone(),
        );
        Self {
            registry,
            requests,
            submissions,
            produce,
            inflight_requests,
            inflight_bytes,
            broker_up,
            devices_active,
            idempotency_ids,
        }
    }
}

impl IntakeMetrics {
    /// One request answered.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// One submission answered.
    pub fn submission(&self, status: u16, class: &'static str) {
        self.submissions
            .get_or_create(&SubmissionLabels { status, class })
            .inc();
    }

    /// One message written, `elapsed` after it was queued.
    pub fn produced(&self, elapsed: Duration) {
        self.produce.observe(elapsed.as_secs_f64());
    }

    /// A request started (+1) or ended (−1), holding `bytes` of budget.
    pub fn inflight(&self, delta: i64, bytes: i64) {
        self.inflight_requests.inc_by(delta);
        self.inflight_bytes.inc_by(bytes);
    }

    /// The gauges sampled when scraped.
    pub fn set_state(&self, broker_up: bool, devices: usize, ids: usize) {
        self.broker_up.set(i64::from(broker_up));
        self.devices_active.set(devices as i64);
        self.idempotency_ids.set(ids as i64);
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let m = IntakeMetrics::default();
        m.request("submit", 201);
        m.submission(422, "bad_enum");
        m.produced(Duration::from_millis(3));
        m.inflight(1, 100);
        m.set_state(true, 3, 5);
        let text = m.render();
        for line in [
            "gridstat_intake_requests_total{route=\"submit\",status=\"201\"} 1",
            "gridstat_intake_submissions_total{status=\"422\",class=\"bad_enum\"} 1",
            "gridstat_intake_produce_seconds_count 1",
            "gridstat_intake_inflight_bytes 100",
            "gridstat_intake_broker_up 1",
            "gridstat_intake_devices_active 3",
            "gridstat_intake_idempotency_ids 5",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
