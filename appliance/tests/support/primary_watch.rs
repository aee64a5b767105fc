//! Polls `GET /primary` on several nodes at once, each on its own task, and
//! finds overlaps: two different nodes answering 200 in intervals (request
//! sent to answer received) that intersect. A router trusts that answer, so
//! an overlap is a moment when two routers could send writes to two
//! primaries. Used by the process tests and by the VM scenarios.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Sample {
    pub node: String,
    pub sent: Instant,
    pub answered: Instant,
    /// None: no answer within the client's timeout, or no connection.
    pub status: Option<u16>,
}

pub struct PrimaryWatch {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub started: Instant,
}

impl PrimaryWatch {
    /// `targets`: (node name, full URL of its /primary). Each is asked
    /// every `every`; an answer slower than `timeout` counts as none, as a
    /// router's health check would count it.
    pub fn start(targets: Vec<(String, String)>, every: Duration, timeout: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .build()
            .expect("http client");
        let tasks = targets
            .into_iter()
            .map(|(node, url)| {
                let (stop, samples, http) = (stop.clone(), samples.clone(), http.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let status = http
                            .get(&url)
                            .send()
                            .await
                            .ok()
                            .map(|r| r.status().as_u16());
                        let answered = Instant::now();
                        samples.lock().unwrap().push(Sample {
                            node: node.clone(),
                            sent,
                            answered,
                            status,
                        });
                        tokio::time::sleep(every.saturating_sub(answered - sent)).await;
                    }
                })
            })
            .collect();
        PrimaryWatch {
            stop,
            samples,
            tasks,
            started: Instant::now(),
        }
    }

    /// Every sample so far, in the order they were answered.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let mut s = self.samples.lock().unwrap().clone();
        s.sort_by_key(|x| x.sent);
        s
    }
}

/// Pairs of 200 answers from different nodes whose intervals intersect.
pub fn overlaps(samples: &[Sample]) -> Vec<(Sample, Sample)> {
    let mut ok: Vec<&Sample> = samples.iter().filter(|s| s.status == Some(200)).collect();
    ok.sort_by_key(|s| s.sent);
    let mut found = Vec::new();
    for (i, a) in ok.iter().enumerate() {
        for b in &ok[i + 1..] {
            if b.sent > a.answered {
                break;
            }
            if b.node != a.node {
                found.push(((*a).clone(), (*b).clone()));
            }
        }
    }
    found
}

/// One line: how many answers each node gave, and of those how many 200.
pub fn summary(samples: &[Sample]) -> String {
    let mut nodes: Vec<&str> = samples.iter().map(|s| s.node.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    nodes
        .iter()
        .map(|n| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.node == *n).collect();
            let ok = mine.iter().filter(|s| s.status == Some(200)).count();
            let none = mine.iter().filter(|s| s.status.is_none()).count();
            format!("{n}: {} polls, {ok}× 200, {none} unanswered", mine.len())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first overlap, readable, with times relative to `t0`.
pub fn describe_overlap(o: &(Sample, Sample), t0: Instant) -> String {
    let rel = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
    format!(
        "{} answered 200 for a request at +{:.3}..+{:.3}s while {} answered 200 for one at +{:.3}..+{:.3}s",
        o.0.node,
        rel(o.0.sent),
        rel(o.0.answered),
        o.1.node,
        rel(o.1.sent),
        rel(o.1.answered)
    )
}
