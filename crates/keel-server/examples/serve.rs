//! Serves the tracking API for a project directory, as `keel server` does,
//! without building the whole CLI (used by `bench/tracking.sh`).
//!
//!     serve PROJECT_DIR PORT

// The allocator `keel server` runs with, so the benchmark measures it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, port] = args.as_slice() else {
        eprintln!("usage: serve PROJECT_DIR PORT");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(dir);
    let overrides = keel_store::Overrides::default();
    if keel_store::Project::discover(dir).is_err() {
        keel_store::Project::init(dir, &overrides).expect("init project");
    }
    let store = keel_store::Store::open(dir, &overrides)
        .await
        .expect("open store");
    let addr = format!("127.0.0.1:{port}").parse().expect("port");
    let server = keel_server::spawn(store, addr, keel_server::Config::loopback())
        .await
        .expect("serve");
    eprintln!("serving on http://{}", server.addr);
    tokio::signal::ctrl_c().await.expect("ctrl-c");
    server.shutdown().await;
}
