//! The `gridstat` binary, run as operators run it: one process per step,
//! timed from its start to its exit.
//!
//! It is the binary next to `gridstat-bench`, from the same target
//! directory and profile: `cargo build --release` builds it. The
//! benchmarks never build it themselves, so a stale one is timed as it is;
//! its path and build time are logged.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;

/// The `gridstat` binary, with the registry every run is given.
#[derive(Debug)]
pub(crate) struct Gridstat {
    exe: PathBuf,
    registry: Option<PathBuf>,
}

/// A run of `gridstat` that succeeded.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Wall time from start to exit.
    pub(crate) seconds: f64,
    /// What it printed on standard output.
    pub(crate) stdout: String,
}

impl Gridstat {
    /// The `gridstat` binary next to this one; every run is given
    /// `--registry DIR` when `registry` names one.
    pub(crate) fn next_to_this_binary(registry: Option<&Path>) -> anyhow::Result<Self> {
        let this = std::env::current_exe().context("finding the gridstat-bench binary")?;
        let exe = this.with_file_name(format!("gridstat{}", std::env::consts::EXE_SUFFIX));
        let built = std::fs::metadata(&exe)
            .and_then(|m| m.modified())
            .with_context(|| {
                format!(
                    "no gridstat binary at {}: this benchmark times it. Build it in the \
                     profile of gridstat-bench (`{}`) and run the benchmark again",
                    exe.display(),
                    build_command(&exe)
                )
            })?;
        let built = chrono::DateTime::<chrono::Local>::from(built).format("%Y-%m-%d %H:%M:%S");
        tracing::info!(binary = %exe.display(), %built, "Timing the gridstat binary.");
        Ok(Self {
            exe,
            registry: registry.map(Path::to_path_buf),
        })
    }

    /// A command running `gridstat` with warnings only on its log.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        if let Some(registry) = &self.registry {
            command.arg("--registry").arg(registry);
        }
        command.env("GRIDSTAT_LOG", "warn");
        command
    }

    /// Run `gridstat ARGS` to its exit; an error, with what it printed,
    /// unless it succeeded.
    pub(crate) fn run<S: AsRef<OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
    ) -> anyhow::Result<Finished> {
        let mut command = self.command();
        command.args(args);
        let started = Instant::now();
        let out = command
            .output()
            .with_context(|| format!("running {}", self.exe.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            out.status.success(),
            "{command:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Finished {
            seconds,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }
}

/// The command that builds the `gridstat` binary at `exe`, in the profile
/// whose directory (`target/<dir>/`) holds it.
fn build_command(exe: &Path) -> String {
    let dir = exe.parent().and_then(Path::file_name);
    match dir.and_then(|d| d.to_str()) {
        Some("release") => "cargo build --release".into(),
        Some("debug") => "cargo build".into(),
        Some(profile) => format!("cargo build --profile {profile}"),
        None => "cargo build --release".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_command_names_the_profile() {
        let build = |path: &str| build_command(Path::new(path));
        assert_eq!(build("/t/release/gridstat"), "cargo build --release");
        assert_eq!(build("/t/debug/gridstat"), "cargo build");
        assert_eq!(build("/t/bench/gridstat"), "cargo build --profile bench");
    }
}
