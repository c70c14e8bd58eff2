//! Benchmark: 1,000 concurrent SSE subscribers over loopback, each must receive every
//! event; reports commit-to-delivery latency percentiles per backend.
//!
//! Run: `cargo bench -p offerhub-daemon --bench sse_fanout` (env `BENCH_SUBSCRIBERS`,
//! default 1000; `BENCH_EVENTS`, default 200, one every 10 ms). "Commit" is the moment
//! the writer's `commit()` returned; "delivery" is when a subscriber parsed the event.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use offerhub::config::{Config, DatabaseUrl};
use offerhub::context::Context;
use offerhub::services::{keys, users};
use offerhub::store::Store;
use offerhub_testkit::{Backend, fresh_database_url};

type Seen = Arc<Mutex<Vec<(String, Instant)>>>;

async fn subscriber(
    port: u16,
    token: String,
    seen: Seen,
    want: usize,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let client = reqwest::Client::new();
    let resp = client
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/events?types=user.created"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("connect");
    assert_eq!(resp.status(), 200);
    let _ = ready.send(()).await;
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut got = 0;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(id) = block.lines().find_map(|l| l.strip_prefix("id:")) {
                seen.lock()
                    .unwrap()
                    .push((id.trim().to_string(), Instant::now()));
                got += 1;
            }
        }
        if got >= want {
            break;
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let subscribers: usize = std::env::var("BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let n_events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    println!("SSE fan-out: {subscribers} subscribers, {n_events} events (one per 10 ms)");
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "backend", "p50", "p90", "p99", "max", "delivered"
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let url = fresh_database_url(backend).await;
        let mut map = BTreeMap::new();
        map.insert("DATABASE_URL".to_string(), url.clone());
        map.insert("OFFERHUB_MASTER_KEY".to_string(), "m".repeat(40));
        map.insert(
            "OFFERHUB_RATE_LIMIT_PER_MINUTE".to_string(),
            "1000000".to_string(),
        );
        let config = Config::from_map(&map, Path::new("/tmp")).unwrap();
        let store = Store::connect(&DatabaseUrl::new(&url)).await.unwrap();
        store.migrate().await.unwrap();
        let token = keys::create(&store, &Context::operator(), "bench", &[keys::Scope::Read])
            .await
            .unwrap()
            .token
            .expose_secret()
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server_store = store.clone();
        tokio::spawn(
            async move { offerhub_daemon::serve_on(listener, server_store, config).await },
        );

        let seen: Seen = Arc::new(Mutex::new(Vec::with_capacity(subscribers * n_events)));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(subscribers);
        let mut tasks = Vec::new();
        for _ in 0..subscribers {
            tasks.push(tokio::spawn(subscriber(
                port,
                token.clone(),
                seen.clone(),
                n_events,
                ready_tx.clone(),
            )));
        }
        for _ in 0..subscribers {
            ready_rx.recv().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;

        let mut committed: HashMap<String, Instant> = HashMap::new();
        for i in 0..n_events {
            let (u, _) = users::create(
                &store,
                &Context::system(),
                &users::NoHooks,
                users::NewUser {
                    external_user_id: format!("sse-{i}"),
                    email: None,
                    user_type: users::UserType::Both,
                },
            )
            .await
            .unwrap();
            committed.insert(u.id, Instant::now());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(60),
            futures_util::future::join_all(tasks),
        )
        .await;
        // Map event ids to users through the outbox to pair receipts with commits.
        let evs = offerhub::events::after(&store, 0, 100_000).await.unwrap();
        let by_event: HashMap<String, Instant> = evs
            .into_iter()
            .filter_map(|e| committed.get(&e.resource_id).map(|t| (e.id, *t)))
            .collect();
        let seen = seen.lock().unwrap();
        let mut lat: Vec<Duration> = seen
            .iter()
            .filter_map(|(id, at)| by_event.get(id).map(|c| at.saturating_duration_since(*c)))
            .collect();
        lat.sort();
        let expected = subscribers * n_events;
        println!(
            "{:<10} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>7}/{}",
            format!("{backend:?}"),
            pct(&lat, 0.5).as_secs_f64() * 1e3,
            pct(&lat, 0.9).as_secs_f64() * 1e3,
            pct(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            lat.len(),
            expected
        );
    }
    std::process::exit(0);
}
