//! A bare hyper server answering every request with a canned JSON body:
//! the ceiling for `bench/serve.sh` on this machine.
//!
//! With `--parse` it also reads the body and parses MLflow's
//! `{"inputs": [[numbers]]}` into `f32` rows with serde_json, answering one
//! canned prediction per row: the ceiling for any server that must read its
//! inputs (no model, no log, no metrics).
//!
//! `cargo run --release -p keel-serve --example canned -- 127.0.0.1:8090 [--parse]`

use std::convert::Infallible;
use std::pin::Pin;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(serde::Deserialize)]
struct Inputs {
    inputs: Vec<Vec<f32>>,
}

async fn read_body(mut body: Incoming) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Some(data) = frame.data_ref() {
            out.extend_from_slice(data);
        }
    }
    out
}

async fn answer(req: Request<Incoming>, parse: bool) -> Result<Response<String>, Infallible> {
    if !parse {
        return Ok(Response::new(String::from("{\"predictions\": [0]}")));
    }
    let body = read_body(req.into_body()).await;
    let rows = serde_json::from_slice::<Inputs>(&body).map_or(0, |i| i.inputs.len());
    let mut out = String::from("{\"predictions\": [");
    for k in 0..rows {
        out.push_str(if k == 0 { "0" } else { ",0" });
    }
    out.push_str("]}");
    Ok(Response::new(out))
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let parse = std::env::args().any(|a| a == "--parse");
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("canned server on http://{addr}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // As keel serve does.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(req, parse));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
