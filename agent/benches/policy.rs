//! `make bench` (policy): applying a town-level policy document with a 20,000-plate watch list (parse,
//! validate, merge, compile the index) and matching plate reads against it, exact and with one misread
//! character.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use chrono::Utc;
use edge_agent::control::{Level, Policy};
use edge_agent::rules::{RuleSet, WatchIndex};
use testkit::synthetic::{median, plate};

const PLATES: usize = 20_000;

fn main() {
    let plates: Vec<String> = (0..PLATES).map(plate).collect();
    let entries: Vec<String> = plates.iter().map(|p| format!("{{\"plate\":\"{p}\",\"until\":\"2099-01-01T00:00:00Z\",\"reason\":\"布控\"}}")).collect();
    let doc = format!(
        r#"{{"schema":"edge-agent/policy/v1","version":1,"issued_at":"2026-11-29T08:00:00Z","issued_by":"town","rules":[{{"id":"wanted","kind":"watch_list","entries":[{}],"tolerance":1}}]}}"#,
        entries.join(",")
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[storage]\nstate_dir = \"{}\"\n[site]\ncity = \"a\"\ndistrict = \"b\"\ntown = \"c\"\nvillage = \"d\"\ncheckpoint = \"e\"\n[[cameras]]\nid = \"gate\"\nurl = \"rtsp://10.0.0.5/s\"\n",
        dir.path().display()
    );
    let local = edge_config::parse_str(&text).unwrap();
    println!("policy: a town document with a {PLATES}-plate watch list ({} KB)", doc.len() / 1024);

    let mut apply_ms = Vec::new();
    let mut compile_ms = Vec::new();
    for version in 1..=5u64 {
        let bytes = doc.replacen("\"version\":1", &format!("\"version\":{version}"), 1).into_bytes();
        let mut policy = Policy::load(local.clone());
        let started = Instant::now();
        let decision = policy.offer(Level::Town, &bytes);
        let offered = started.elapsed();
        let (config, provenance) = policy.effective();
        let started = Instant::now();
        let set = RuleSet::compile_with(&config.rules, &provenance);
        compile_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        apply_ms.push((offered.as_secs_f64()) * 1000.0);
        assert!(matches!(decision, edge_agent::control::Decision::Apply(..)));
        assert!(!set.is_empty());
    }
    let (apply, compile) = (median(apply_ms), median(compile_ms));
    println!("  offer (parse, verify, validate, merge, persist)   {apply:8.1} ms");
    println!("  compile the rule set and its index                {compile:8.1} ms");
    println!("  applied in                                        {:8.1} ms (median of 5)", apply + compile);

    let listed: Vec<edge_agent::rules::Listed> = plates.iter().map(|p| edge_agent::rules::Listed { plate: p.clone(), until: None, reason: None }).collect();
    let index = WatchIndex::new(listed, 1);
    let now = Utc::now();
    let misread = |p: &str| {
        let mut c: Vec<char> = p.chars().collect();
        c[4] = if c[4] == '8' { 'B' } else { '8' };
        c.into_iter().collect::<String>()
    };
    let reads: Vec<(String, &str)> = (0..10_000)
        .map(|i| match i % 3 {
            0 => (plates[i * 7 % PLATES].clone(), "exact"),
            1 => (misread(&plates[i * 11 % PLATES]), "one misread"),
            _ => (plate(PLATES + i), "not listed"),
        })
        .collect();
    for kind in ["exact", "one misread", "not listed"] {
        let these: Vec<&String> = reads.iter().filter(|(_, k)| *k == kind).map(|(r, _)| r).collect();
        let started = Instant::now();
        let mut hits = 0;
        for _ in 0..10 {
            for r in &these {
                hits += usize::from(index.find(r, 1, now).is_some());
            }
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / (10 * these.len()) as f64;
        println!("  match a read, {kind:<12}                      {us:8.2} µs ({} of {} matched)", hits / 10, these.len());
    }
}
