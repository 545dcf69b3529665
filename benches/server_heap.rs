//! The server with a counting global allocator, to measure memory per idle connection as
//! heap in use rather than RSS (docs/scale.md): configured like `teleconsult` (TOML via
//! `--config`, `TELECONSULT_*` variables, `--demo`), it serves and prints, every `--every`
//! seconds, the bytes the process has allocated and not freed, the number of live
//! allocations, and the open signaling connections. Drive it with `signaling_load --mode idle`.
//!
//! ```sh
//! cargo bench --bench server_heap --no-run   # prints the binary's path
//! TELECONSULT_BIND=127.0.0.1:18080 ... $BIN --demo --every 5
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let every: u64 = args
        .iter()
        .position(|a| a == "--every")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let file = args.iter().position(|a| a == "--config").and_then(|i| args.get(i + 1)).map(std::path::PathBuf::from);
    let mut config = teleconsult::config::Config::load(file.as_deref(), std::env::vars())?;
    config.demo |= args.iter().any(|a| a == "--demo");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let app = teleconsult::app::Application::build(config).await?;
        let state = app.state();
        println!("listening on http://{}", app.local_addr());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
            loop {
                tick.tick().await;
                let conns = state.signaling.stats.connections.load(Ordering::Relaxed);
                println!(
                    "heap: {} bytes in {} allocations; {conns} signaling connections",
                    LIVE_BYTES.load(Ordering::Relaxed),
                    LIVE_BLOCKS.load(Ordering::Relaxed)
                );
            }
        });
        app.run_until(teleconsult::app::shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
