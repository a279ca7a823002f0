//! Status round-trip latency over the real socket.
//!
//! `cargo bench -p rampart-agent --bench status_latency` prints criterion's
//! estimate for one client, then p50/p99/max for 1 and 200 concurrent clients
//! (each a separate OS thread with its own connection, as separate processes
//! would be). The agent runs in-process on its production runtime shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// A Unix-socket client; on Windows the Wine tests exercise the named pipe.
#[cfg(unix)]
mod unix_bench {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    use criterion::Criterion;
    use rampart_agent::paths::AgentPaths;
    use rampart_agent::{AgentConfig, start};
    use rampart_shared::status::AgentMode;

    struct Conn {
        reader: BufReader<UnixStream>,
        writer: UnixStream,
        line: String,
    }

    impl Conn {
        fn open(socket: &Path) -> Self {
            let stream = UnixStream::connect(socket).unwrap();
            let mut conn = Self {
                writer: stream.try_clone().unwrap(),
                reader: BufReader::new(stream),
                line: String::new(),
            };
            conn.round_trip(
                b"{\"id\":0,\"request\":{\"type\":\"hello\",\"protocol\":1,\"client\":\"bench\"}}\n",
            );
            conn
        }

        fn round_trip(&mut self, frame: &[u8]) -> usize {
            self.writer.write_all(frame).unwrap();
            self.line.clear();
            self.reader.read_line(&mut self.line).unwrap()
        }

        fn status(&mut self) {
            let n = self.round_trip(b"{\"id\":1,\"request\":{\"type\":\"status\"}}\n");
            assert!(n > 100 && self.line.contains("\"reply\""), "{}", self.line);
        }
    }

    fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        (at(0.50), at(0.99), at(1.0))
    }

    /// `clients` connections, each making `per_client` status requests at once.
    fn concurrent(socket: &Path, clients: usize, per_client: usize) -> Vec<Duration> {
        let barrier = Arc::new(Barrier::new(clients));
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let socket: PathBuf = socket.to_owned();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut conn = Conn::open(&socket);
                    barrier.wait();
                    (0..per_client)
                        .map(|_| {
                            let t = Instant::now();
                            conn.status();
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    }

    pub fn main() {
        let dir = tempfile::Builder::new()
            .prefix("rampart-bench-")
            .tempdir_in("/tmp")
            .unwrap();
        // A loopback-only policy: the benchmark must not query public NTP servers.
        let config_dir = dir.path().join("config");
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::write(
            config_dir.join("agent.json"),
            r#"{"device_id": "bench", "allow_unsigned_local_policy": true}"#,
        )
        .unwrap();
        std::fs::write(
            config_dir.join("policy.json"),
            r#"{"schema": 1, "serial": 1, "mfa": {"required": true},
                "clock": {"ntp_servers": ["127.0.0.1:9"]},
                "links": {"offline_guide_url": "https://127.0.0.1:9/guide", "support_url": "https://127.0.0.1:9/support"}}"#,
        )
        .unwrap();
        let paths = AgentPaths {
            config_dir,
            state_dir: dir.path().join("state"),
            log_dir: dir.path().join("logs"),
            socket: dir.path().join("agent.sock"),
        };
        // The same runtime shape as `rampart-agent run`.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let agent = runtime
            .block_on(start(AgentConfig::new(AgentMode::Dev, paths)))
            .unwrap();
        let socket = agent.socket().to_owned();

        let mut criterion = Criterion::default().configure_from_args();
        let mut conn = Conn::open(&socket);
        criterion.bench_function("status round trip, 1 client", |b| b.iter(|| conn.status()));
        criterion.final_summary();

        for (clients, per_client) in [(1, 5000), (200, 50)] {
            let samples = concurrent(&socket, clients, per_client);
            let n = samples.len();
            let (p50, p99, max) = percentiles(samples);
            println!(
                "status round trip, {clients:>3} concurrent client(s), {n} requests: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3,
            );
        }
        runtime.block_on(agent.stop()).unwrap();
    }
}

fn main() {
    #[cfg(unix)]
    unix_bench::main();
    #[cfg(not(unix))]
    eprintln!("status_latency measures the Unix socket; run it on Linux or macOS");
}
