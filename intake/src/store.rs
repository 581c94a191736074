//! The device table in object storage, and the live view every intake
//! replica keeps of it.
//!
//! The table is one JSON object (`devices.json`) in a local directory or an
//! S3 bucket: a bucket lets every replica read the same table, and an
//! administrator change it from anywhere. Changes are read-modify-write
//! with a conditional put where the store supports it (S3 `If-Match`): a
//! change made from a stale read is refused and made again on the fresh
//! table. A local file has no such check and is replaced atomically.
//!
//! Each replica re-reads the table every `reload_interval` (10 s by
//! default). If it cannot for longer than three intervals, it refuses
//! every submission with 503 rather than trust a table that may miss a
//! revocation: a revoked token stops working on every replica within
//! 30 s at most.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::devices::{Authorized, DeviceIndex, DeviceTable};
use crate::error::{Error, Result};
use gridstat_schemas::Registry;

/// How often a replica re-reads the device table by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// A replica that could not re-read the table for this many intervals
/// refuses submissions.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// Where the device table lives.
#[derive(Debug, Clone)]
pub struct DeviceStore {
    store: Arc<dyn ObjectStore>,
    path: Path,
    location: String,
}

impl DeviceStore {
    /// The table at `path` in `store`; `location` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, location: impl Into<String>) -> Self {
        Self {
            store,
            path,
            location: location.into(),
        }
    }

    /// Where the table is, as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The table and its version; an absent table is empty.
    pub async fn load(&self) -> Result<(DeviceTable, Option<UpdateVersion>)> {
        match self.store.get(&self.path).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|source| self.error("reading", source))?;
                Ok((
                    DeviceTable::from_json(&bytes, &self.location)?,
                    Some(version),
                ))
            }
            Err(object_store::Error::NotFound { .. }) => Ok((DeviceTable::default(), None)),
            Err(source) => Err(self.error("reading", source)),
        }
    }

    /// Apply `change` to the stored table and write it back. On S3 the
    /// write succeeds only if nobody changed the table meanwhile (else it
    /// is read and changed again); a local file is replaced atomically.
    pub async fn update<R>(
        &self,
        mut change: impl FnMut(&mut DeviceTable) -> Result<R>,
    ) -> Result<R> {
        const ATTEMPTS: u32 = 10;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Another writer won: let it finish, a little longer each time.
                tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
            }
            let (mut table, version) = self.load().await?;
            let out = change(&mut table)?;
            let payload = PutPayload::from(table.to_json());
            let mode = match version {
                None => PutMode::Create,
                Some(v) => PutMode::Update(v),
            };
            let put = self
                .store
                .put_opts(&self.path, payload.clone(), PutOptions::from(mode))
                .await;
            match put {
                Ok(_) => return Ok(out),
                Err(object_store::Error::Precondition { .. })
                | Err(object_store::Error::AlreadyExists { .. }) => continue,
                // A local directory has no conditional update: replace the
                // file (object_store writes a temporary file and renames it).
                Err(object_store::Error::NotImplemented { .. }) => {
                    self.store
                        .put(&self.path, payload)
                        .await
                        .map_err(|source| self.error("writing", source))?;
                    return Ok(out);
                }
                Err(source) => return Err(self.error("writing", source)),
            }
        }
        Err(Error::DeviceTableBusy {
            location: self.location.clone(),
            attempts: ATTEMPTS,
        })
    }

    fn error(&self, context: &'static str, source: object_store::Error) -> Error {
        Error::DeviceStore {
            location: self.location.clone(),
            context,
            source,
        }
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// Not the token of an active device (unknown or revoked).
    Unknown,
    /// The device table could not be re-read for too long.
    Stale,
}

/// A replica's current view of the device table.
#[derive(Debug)]
pub struct DeviceAuth {
    index: RwLock<Arc<DeviceIndex>>,
    loaded: RwLock<Instant>,
    stale_after: Duration,
}

impl DeviceAuth {
    /// A view of `index`, refused once not refreshed for `stale_after`.
    pub fn new(index: DeviceIndex, stale_after: Duration) -> Self {
        Self {
            index: RwLock::new(Arc::new(index)),
            loaded: RwLock::new(Instant::now()),
            stale_after,
        }
    }

    /// The device holding `token`.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Arc<Authorized>, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        if self.is_stale() {
            return Err(AuthError::Stale);
        }
        let index = Arc::clone(&self.index.read().expect("auth lock"));
        index.authenticate(token).ok_or(AuthError::Unknown)
    }

    /// Whether the table has not been re-read for too long.
    pub fn is_stale(&self) -> bool {
        self.loaded.read().expect("auth lock").elapsed() > self.stale_after
    }

    /// Replace the view with a freshly read table.
    pub fn replace(&self, index: DeviceIndex) {
        *self.index.write().expect("auth lock") = Arc::new(index);
        self.touch();
    }

    /// Record that the table was read and had not changed.
    pub fn touch(&self) {
        *self.loaded.write().expect("auth lock") = Instant::now();
    }

    /// Active devices in the view.
    pub fn active(&self) -> usize {
        self.index.read().expect("auth lock").len()
    }
}

/// Re-read the table every `interval` until `shutdown` resolves; a table
/// whose version has not changed is not parsed again.
pub async fn reload_loop(
    store: DeviceStore,
    registry: Arc<Registry>,
    auth: Arc<DeviceAuth>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut seen = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match reload_once(&store, &registry, &auth, &mut seen).await {
            Ok(true) => tracing::info!(devices = auth.active(), "Reloaded the device table."),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(error = %error, location = store.location(), "Could not re-read the device table; keeping the last one.")
            }
        }
    }
}

/// The version of the table last read: e-tag and version, `None` when
/// there was no table.
type Seen = Option<(Option<String>, Option<String>)>;

/// One reload; true when the table changed.
async fn reload_once(
    store: &DeviceStore,
    registry: &Registry,
    auth: &DeviceAuth,
    seen: &mut Option<Seen>,
) -> Result<bool> {
    let head = match store.store.head(&store.path).await {
        Ok(meta) => Some((meta.e_tag, meta.version)),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(source) => return Err(store.error("reading", source)),
    };
    if seen.as_ref() == Some(&head) {
        auth.touch();
        return Ok(false);
    }
    let (table, version) = store.load().await?;
    auth.replace(DeviceIndex::build(&table, registry));
    *seen = Some(version.map(|v| (v.e_tag, v.version)));
    Ok(true)
}

/// Load the table once and build the live view (stale after
/// [`STALE_AFTER_INTERVALS`] × `interval` without a successful re-read).
pub async fn initial_auth(
    store: &DeviceStore,
    registry: &Registry,
    interval: Duration,
) -> Result<Arc<DeviceAuth>> {
    let (table, _) = store.load().await?;
    Ok(Arc::new(DeviceAuth::new(
        DeviceIndex::build(&table, registry),
        interval * STALE_AFTER_INTERVALS,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Area;

    fn at() -> chrono::DateTime<chrono::FixedOffset> {
        gridstat_schemas::time::local_midnight(
            chrono::NaiveDate::from_ymd_opt(2022, 11, 25).unwrap(),
        )
    }

    #[test]
    fn a_revocation_reaches_every_replica_within_30_s_by_default() {
        assert_eq!(DEFAULT_RELOAD_INTERVAL, Duration::from_secs(10));
        assert!(DEFAULT_RELOAD_INTERVAL * STALE_AFTER_INTERVALS <= Duration::from_secs(30));
    }

    #[tokio::test]
    async fn updates_and_reloads_through_the_store() {
        let registry = Arc::new(Registry::jiangmen());
        let dir = tempfile::tempdir().unwrap();
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let store = DeviceStore::new(Arc::new(fs), Path::from("devices.json"), "devices.json");
        let auth = initial_auth(&store, &registry, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(auth.active(), 0);
        let county = registry.counties[0].code.clone();
        let (device, token) = store
            .update(|t| t.add("rp-1", Area::County(county.clone()), &registry, at()))
            .await
            .unwrap();
        let mut seen = None;
        assert!(reload_once(&store, &registry, &auth, &mut seen)
            .await
            .unwrap());
        assert!(!reload_once(&store, &registry, &auth, &mut seen)
            .await
            .unwrap());
        assert_eq!(
            auth.authenticate(Some(token.expose())).unwrap().device_id,
            device.id
        );
        store
            .update(|t| t.revoke(&device.id, at()).map(|_| ()))
            .await
            .unwrap();
        assert!(reload_once(&store, &registry, &auth, &mut seen)
            .await
            .unwrap());
        assert_eq!(
            auth.authenticate(Some(token.expose())),
            Err(AuthError::Unknown)
        );
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
    }

    #[test]
    fn a_view_not_refreshed_in_time_refuses() {
        let auth = DeviceAuth::new(DeviceIndex::default(), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(auth.authenticate(Some("gst_x")), Err(AuthError::Stale));
    }
}
