//! The model API stand-in (`berth_tests::model_api`) as a process, for the app's E2E suite:
//! `model-api-standin anthropic|openai CA_FILE` writes its CA's PEM to CA_FILE, prints
//! `port N` and then one line per request it answers (`METHOD PATH step KEY-HEADER`), and
//! serves until its stdin closes.
#![allow(clippy::print_stdout)] // its stdout is its interface

use std::io::{BufRead, Write};

use berth_tests::{ModelApi, Vendor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (vendor, ca) = match args.as_slice() {
        [_, v, ca] if v == "anthropic" => (Vendor::Anthropic, ca),
        [_, v, ca] if v == "openai" => (Vendor::OpenAi, ca),
        _ => {
            eprintln!("usage: model-api-standin anthropic|openai CA_FILE");
            std::process::exit(2);
        }
    };
    let api = ModelApi::start(vendor);
    std::fs::write(ca, &api.ca_pem).expect("cannot write the CA file");
    println!("port {}", api.port);
    let _ = std::io::stdout().flush();
    {
        let seen = api.requests_handle();
        std::thread::spawn(move || {
            let mut shown = 0;
            loop {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let all = seen.lock().unwrap().clone();
                for r in &all[shown..] {
                    let key = r
                        .header("x-api-key")
                        .or(r.header("authorization"))
                        .unwrap_or("-");
                    println!("{} {} {:?} {key}", r.method, r.path, r.step);
                }
                shown = all.len();
                let _ = std::io::stdout().flush();
            }
        });
    }
    for _ in std::io::stdin().lock().lines() {}
}
