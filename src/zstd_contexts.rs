//! A process-wide pool of zstd contexts.
//!
//! parquet-rs builds a zstd compression *and* a decompression context for
//! every column chunk it reads or writes, and frees both when the chunk is
//! done: thousands per ingest, about two thousand per aggregate refresh.
//! Each new context asks the CPU for its features (`cpuid`, three times),
//! and in a virtual machine every `cpuid` traps to the hypervisor: about
//! 5 µs each on a 2-vCPU cloud VM, so context creation alone was 8 %
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
//!
//! The pool is the default-on `zstd-pool` feature of the binary. With
//! `GRIDSTAT_LOG=gridstat::zstd_contexts=debug`, a run ends by logging how
//! many contexts zstd created and how many the pool handed out again
//! ([`log_counts`]).
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
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

/// One kind of context: its idle ones, counts, and zstd's functions for it.
struct Pool<T> {
    idle: Mutex<Idle>,
    /// Contexts made by zstd's constructor.
    created: AtomicU64,
    /// Constructor calls answered with an idle context.
    reused: AtomicU64,
    create: unsafe extern "C" fn() -> *mut T,
    reset: unsafe extern "C" fn(*mut T, ZSTD_ResetDirective) -> usize,
    size: unsafe extern "C" fn(*const T) -> usize,
    free: unsafe extern "C" fn(*mut T) -> usize,
}

static CCTX: Pool<ZSTD_CCtx> = Pool {
    idle: Mutex::new(Idle {
        contexts: Vec::new(),
        bytes: 0,
    }),
    created: AtomicU64::new(0),
    reused: AtomicU64::new(0),
    create: __real_ZSTD_createCCtx,
    reset: zstd_sys::ZSTD_CCtx_reset,
    size: zstd_sys::ZSTD_sizeof_CCtx,
    free: __real_ZSTD_freeCCtx,
};

static DCTX: Pool<ZSTD_DCtx> = Pool {
    idle: Mutex::new(Idle {
        contexts: Vec::new(),
        bytes: 0,
    }),
    created: AtomicU64::new(0),
    reused: AtomicU64::new(0),
    create: __real_ZSTD_createDCtx,
    reset: zstd_sys::ZSTD_DCtx_reset,
    size: zstd_sys::ZSTD_sizeof_DCtx,
    free: __real_ZSTD_freeDCtx,
};

impl<T> Pool<T> {
    /// An idle context, or a new one.
    fn create(&self) -> *mut T {
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.contexts.pop().map(|(address, size)| {
                idle.bytes -= size;
                address
            })
        };
        match idle {
            Some(address) => {
                self.reused.fetch_add(1, Ordering::Relaxed);
                address as *mut T
            }
            None => {
                self.created.fetch_add(1, Ordering::Relaxed);
                // SAFETY: the real constructor takes no arguments.
                unsafe { (self.create)() }
            }
        }
    }

    /// Reset `context` and keep it, or free it when the pool is full.
    ///
    /// # Safety
    /// As zstd's destructor: `context` is null or a live context of this
    /// kind from its constructor, not used again by the caller.
    unsafe fn free(&self, context: *mut T) -> usize {
        if context.is_null() {
            return 0;
        }
        // SAFETY: `context` is a live context owned by this call.
        unsafe {
            let reset = (self.reset)(
                context,
                ZSTD_ResetDirective::ZSTD_reset_session_and_parameters,
            );
            if zstd_sys::ZSTD_isError(reset) == 0 && self.keep(context, (self.size)(context)) {
                return 0;
            }
            (self.free)(context)
        }
    }

    /// Whether the pool took `context` of `size` bytes.
    fn keep(&self, context: *mut T, size: usize) -> bool {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.contexts.len() < POOLED && idle.bytes + size <= POOLED_BYTES {
            idle.contexts.push((context as usize, size));
            idle.bytes += size;
            true
        } else {
            false
        }
    }
}

/// Log at debug level how many contexts of each kind zstd created and how
/// many the pool handed out again.
pub(crate) fn log_counts() {
    tracing::debug!(
        compression_created = CCTX.created.load(Ordering::Relaxed),
        compression_reused = CCTX.reused.load(Ordering::Relaxed),
        decompression_created = DCTX.created.load(Ordering::Relaxed),
        decompression_reused = DCTX.reused.load(Ordering::Relaxed),
        "Counted zstd contexts."
    );
}

extern "C" {
    fn __real_ZSTD_createCCtx() -> *mut ZSTD_CCtx;
    fn __real_ZSTD_freeCCtx(cctx: *mut ZSTD_CCtx) -> usize;
    fn __real_ZSTD_createDCtx() -> *mut ZSTD_DCtx;
    fn __real_ZSTD_freeDCtx(dctx: *mut ZSTD_DCtx) -> usize;
}

#[no_mangle]
extern "C" fn __wrap_ZSTD_createCCtx() -> *mut ZSTD_CCtx {
    CCTX.create()
}

/// # Safety
/// As `ZSTD_freeCCtx`.
#[no_mangle]
unsafe extern "C" fn __wrap_ZSTD_freeCCtx(cctx: *mut ZSTD_CCtx) -> usize {
    // SAFETY: the caller's, as `ZSTD_freeCCtx`'s.
    unsafe { CCTX.free(cctx) }
}

#[no_mangle]
extern "C" fn __wrap_ZSTD_createDCtx() -> *mut ZSTD_DCtx {
    DCTX.create()
}

/// # Safety
/// As `ZSTD_freeDCtx`.
#[no_mangle]
unsafe extern "C" fn __wrap_ZSTD_freeDCtx(dctx: *mut ZSTD_DCtx) -> usize {
    // SAFETY: the caller's, as `ZSTD_freeDCtx`'s.
    unsafe { DCTX.free(dctx) }
}
