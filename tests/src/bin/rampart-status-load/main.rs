//! A load generator for the agent's `status` request, run as a process of
//! its own so that the figures include everything a real client pays (two
//! processes, the kernel's socket, the scheduler):
//!
//! ```text
//! rampart-status-load SOCKET --connections N --seconds D [--rate R] [--warmup W] [--label L] [--header]
//! ```
//!
//! - closed loop (no `--rate`): each of N connections sends its next request
//!   as soon as the previous answer arrives;
//! - open loop (`--rate R`): R requests a second in all, connection `i`
//!   sending at `start + (k*N + i)/R`. Like real clients, a connection never
//!   has two requests outstanding, so a slow answer delays the next send;
//!   latency is counted from the *scheduled* send time, so that delay is
//!   measured rather than hidden (coordinated omission), and such requests
//!   are counted as late.
//!
//! Prints one row: replies, achieved rate, errors, late sends, and p50, p90,
//! p99, p99.9 and max latency in ms over the requests scheduled after the
//! warm-up; in an open loop also `lag99`, the 99th percentile of how late
//! the client sent, and `ans99`, of the answer's time from the actual send
//! (the agent's share, without the client's lateness); and `steal %`, the
//! CPU time the machine's host took from it during the run (a VM's vCPU
//! waiting for the host stalls client and agent alike). Every answer must be a status reply to its own id (the first on
//! each connection is decoded in full with the shared frame types); anything
//! else is an error, and any error makes the exit status 1.
//! One thread drives every connection (epoll), so that on a small machine the
//! client takes as little CPU from the agent as it can. Linux only.

#[cfg(target_os = "linux")]
mod drive;
#[cfg(target_os = "linux")]
mod options;
#[cfg(target_os = "linux")]
mod report;

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(run());
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!(
        "rampart-status-load drives the agent's Unix socket with epoll and is not supported on this \
         platform; run it on Linux"
    );
    std::process::exit(2);
}

/// The exit status: 0, or 1 when any request failed or none was answered,
/// 2 for a bad command line.
#[cfg(target_os = "linux")]
fn run() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match options::parse(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("rampart-status-load: {e}\n{}", options::USAGE);
            return 2;
        }
    };
    drive::raise_file_limit(options.connections);
    let mut total = drive::Tally::default();
    let steal_before = report::cpu_times();
    if let Err(e) = drive::run(&options, &mut total) {
        total.error(format!("the client's event loop failed: {e}"));
    }
    report::print(&options, &mut total, steal_before);
    if let Some(e) = &total.first_error {
        eprintln!(
            "rampart-status-load: {} of the requests failed; the first: {e}",
            total.errors
        );
    }
    if total.errors > 0 || total.replies == 0 {
        if total.replies == 0 && total.errors == 0 {
            eprintln!("rampart-status-load: no answer at all; is an agent listening there?");
        }
        return 1;
    }
    0
}
