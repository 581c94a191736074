//! A process-wide pool of zstd contexts.
//!
//! parquet-rs builds a zstd compression *and* a decompression context for
//! every column chunk it reads or writes, and frees both when the chunk is
//! done: thousands per ingest, about two thousand per aggregate refresh.
//! Each new context asks the CPU for its features (`cpuid`, three times),
//! and in a virtual machine every `cpuid` traps to the hypervisor: about
//! 5 µs each on this project's machine, so context creation alone was 8 %
//! of a refresh's CPU (docs/BENCHMARKS.md). The binary is linked with
//! `--wrap` for the four constructor and destructor symbols (`build.rs`):
//! a freed context is reset to its freshly created state
//! (`ZSTD_reset_session_and_parameters`, which zstd documents for reuse)
//! and handed to the next constructor call instead of being freed.
//!
//! Only contexts made by `ZSTD_createCCtx`/`ZSTD_createDCtx` reach these
//! destructors in this program (no custom allocators, no static contexts).
//! A context that has compressed keeps its workspace (about a megabyte for
//! a Parquet page), so each kind's pool is bounded in bytes
//! ([`POOLED_BYTES`]) as well as in number ([`POOLED`]).
#![allow(unsafe_code)]

use std::sync::Mutex;

use zstd_sys::{ZSTD_CCtx, ZSTD_DCtx, ZSTD_ResetDirective};

/// Most contexts of each kind kept for reuse.
const POOLED: usize = 64;
/// Most bytes of idle contexts of each kind.
const POOLED_BYTES: usize = 32 << 20;

/// Idle contexts: their addresses (a raw pointer is not `Send`) and sizes,
/// and the sum of the sizes.
struct Idle {
    contexts: Vec<(usize, usize)>,
    bytes: usize,
}

static IDLE_CCTX: Mutex<Idle> = Mutex::new(Idle::new());
static IDLE_DCTX: Mutex<Idle> = Mutex::new(Idle::new());

impl Idle {
    const fn new() -> Self {
        Self {
            contexts: Vec::new(),
            bytes: 0,
        }
    }
}

fn take(pool: &Mutex<Idle>) -> Option<usize> {
    let mut idle = pool.lock().unwrap_or_else(|e| e.into_inner());
    let (address, size) = idle.contexts.pop()?;
    idle.bytes -= size;
    Some(address)
}

/// Whether the pool took the context of `size` bytes.
fn keep(pool: &Mutex<Idle>, address: usize, size: usize) -> bool {
    let mut idle = pool.lock().unwrap_or_else(|e| e.into_inner());
    if idle.contexts.len() < POOLED && idle.bytes + size <= POOLED_BYTES {
        idle.contexts.push((address, size));
        idle.bytes += size;
        true
    } else {
        false
    }
}

extern "C" {
    fn __real_ZSTD_createCCtx() -> *mut ZSTD_CCtx;
    fn __real_ZSTD_freeCCtx(cctx: *mut ZSTD_CCtx) -> usize;
    fn __real_ZSTD_createDCtx() -> *mut ZSTD_DCtx;
    fn __real_ZSTD_freeDCtx(dctx: *mut ZSTD_DCtx) -> usize;
}

#[no_mangle]
extern "C" fn __wrap_ZSTD_createCCtx() -> *mut ZSTD_CCtx {
    match take(&IDLE_CCTX) {
        Some(address) => address as *mut ZSTD_CCtx,
        // SAFETY: the real constructor takes no arguments.
        None => unsafe { __real_ZSTD_createCCtx() },
    }
}

/// # Safety
/// As `ZSTD_freeCCtx`: `cctx` is null or a live context from
/// `ZSTD_createCCtx`, not used again by the caller.
#[no_mangle]
unsafe extern "C" fn __wrap_ZSTD_freeCCtx(cctx: *mut ZSTD_CCtx) -> usize {
    if cctx.is_null() {
        return 0;
    }
    // SAFETY: `cctx` is a live context owned by this call.
    unsafe {
        let reset =
            zstd_sys::ZSTD_CCtx_reset(cctx, ZSTD_ResetDirective::ZSTD_reset_session_and_parameters);
        if zstd_sys::ZSTD_isError(reset) == 0
            && keep(&IDLE_CCTX, cctx as usize, zstd_sys::ZSTD_sizeof_CCtx(cctx))
        {
            return 0;
        }
        __real_ZSTD_freeCCtx(cctx)
    }
}

#[no_mangle]
extern "C" fn __wrap_ZSTD_createDCtx() -> *mut ZSTD_DCtx {
    match take(&IDLE_DCTX) {
        Some(address) => address as *mut ZSTD_DCtx,
        // SAFETY: the real constructor takes no arguments.
        None => unsafe { __real_ZSTD_createDCtx() },
    }
}

/// # Safety
/// As `ZSTD_freeDCtx`: `dctx` is null or a live context from
/// `ZSTD_createDCtx`, not used again by the caller.
#[no_mangle]
unsafe extern "C" fn __wrap_ZSTD_freeDCtx(dctx: *mut ZSTD_DCtx) -> usize {
    if dctx.is_null() {
        return 0;
    }
    // SAFETY: `dctx` is a live context owned by this call.
    unsafe {
        let reset =
            zstd_sys::ZSTD_DCtx_reset(dctx, ZSTD_ResetDirective::ZSTD_reset_session_and_parameters);
        if zstd_sys::ZSTD_isError(reset) == 0
            && keep(&IDLE_DCTX, dctx as usize, zstd_sys::ZSTD_sizeof_DCtx(dctx))
        {
            return 0;
        }
        __real_ZSTD_freeDCtx(dctx)
    }
}
