//! With the `zstd-pool` feature (on by default), links the `gridstat`
//! binary so that zstd's context constructors and destructors go through
//! its context pool (`src/zstd_contexts.rs`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // The same condition as the module's `cfg`: GNU-style linkers (ld,
    // lld) know `--wrap`.
    let pool = std::env::var_os("CARGO_FEATURE_ZSTD_POOL").is_some();
    if pool && os == "linux" && env == "gnu" {
        for symbol in [
            "ZSTD_createCCtx",
            "ZSTD_freeCCtx",
            "ZSTD_createDCtx",
            "ZSTD_freeDCtx",
        ] {
            println!("cargo:rustc-link-arg-bins=-Wl,--wrap={symbol}");
        }
    }
}
