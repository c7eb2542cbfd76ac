//! The library half of `keel data profile` and `keel drift`, as a small
//! binary for benchmarks (`bench/quality.sh` uses it when no release build
//! of the full `keel` binary is at hand):
//!
//! ```text
//! cargo run --release -p keel-data --example quality -- data profile FILE
//! cargo run --release -p keel-data --example quality -- drift --reference A --current B
//! ```
//!
//! Both print the JSON report, as `keel … --json` does.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--json").collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["data", "profile", file] => println!("{}", keel_data::profile(Path::new(file))?.to_json()),
        ["drift", "--reference", r, "--current", c] => {
            let opts = keel_data::DriftOptions::evidently_defaults();
            println!(
                "{}",
                keel_data::drift_files(Path::new(r), Path::new(c), &opts)?.to_json()
            );
        }
        _ => {
            return Err(
                "usage: quality data profile FILE | quality drift --reference A --current B".into(),
            )
        }
    }
    Ok(())
}
