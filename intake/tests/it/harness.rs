//! An intake served in-process on a free port, with its device table in a
//! temporary directory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gridstat_intake::devices::{Area, Device};
use gridstat_intake::store::{self, DeviceAuth, DeviceStore};
use gridstat_intake::{Intake, IntakeOptions, SubmissionSink};
use gridstat_schemas::Registry;
use object_store::path::Path;
use tokio::sync::watch;

pub struct Served {
    pub addr: SocketAddr,
    pub devices: DeviceStore,
    pub auth: Arc<DeviceAuth>,
    pub registry: Arc<Registry>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Served {
    pub async fn start(sink: Arc<dyn SubmissionSink>, opts: IntakeOptions) -> Served {
        let registry = Arc::new(Registry::jiangmen());
        let dir = tempfile::tempdir().unwrap();
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let devices = DeviceStore::new(Arc::new(fs), Path::from("devices.json"), "devices.json");
        let auth = store::initial_auth(&devices, &registry, opts.device_reload_interval)
            .await
            .unwrap();
        let (stop, rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(store::reload_loop(
            devices.clone(),
            Arc::clone(&registry),
            Arc::clone(&auth),
            opts.device_reload_interval,
            stopped(rx.clone()),
        ));
        let intake = Intake::new(Arc::clone(&registry), opts, Arc::clone(&auth), sink);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(gridstat_intake::server::serve(
            listener,
            intake,
            stopped(rx),
        ));
        Served {
            addr,
            devices,
            auth,
            registry,
            stop,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Add a device and wait until the intake's view has it.
    pub async fn add_device(&self, reporter: &str, area: Area) -> (Device, String) {
        let now = chrono::Utc::now().fixed_offset();
        let registry = Arc::clone(&self.registry);
        let (device, token) = self
            .devices
            .update(|t| t.add(reporter, area.clone(), &registry, now))
            .await
            .unwrap();
        let token = token.expose().to_string();
        self.wait_for(|| self.auth.authenticate(Some(&token)).is_ok())
            .await;
        (device, token)
    }

    pub async fn wait_for_async<F: std::future::Future<Output = bool>>(
        &self,
        mut ok: impl FnMut() -> F,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while !ok().await {
            assert!(std::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for(&self, mut ok: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while !ok() {
            assert!(std::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Options for tests: a fast device reload.
pub fn fast_opts() -> IntakeOptions {
    IntakeOptions {
        device_reload_interval: Duration::from_millis(200),
        ..IntakeOptions::default()
    }
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let r = client
        .post(url)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json, headers)
}
