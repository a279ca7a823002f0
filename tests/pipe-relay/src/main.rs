//! `rampart-pipe-relay \\.\pipe\NAME`: copies stdin to the named pipe and the
//! pipe to stdout until either side ends. The Wine end-to-end tests run on
//! Linux, where a Windows named pipe cannot be opened; this relay, run under
//! Wine, lets them speak the IPC protocol themselves (tests/tests/wine.rs),
//! so the agent is checked by a client that shares none of its code.
//!
//! It opens the pipe read-write the way tokio does (`GENERIC_WRITE`), which
//! the pipe's DACL would refuse an ordinary user on real Windows (it asks for
//! `FILE_CREATE_PIPE_INSTANCE`; the product's client asks only for
//! `winsec::ffi::PIPE_CLIENT_ACCESS`). Wine enforces no DACL, and the narrow
//! open needs `unsafe`, which only the agent's winsec module may use: the
//! relay is for Wine alone.
//!
//! Exit codes: 0 when a side ended, 2 when the pipe could not be opened
//! (the message names the OS error), 3 on a copy error.

#[cfg(windows)]
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::windows::named_pipe::ClientOptions;

    /// Every instance of the pipe is serving another client: wait and retry.
    const ERROR_PIPE_BUSY: i32 = 231;

    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: rampart-pipe-relay \\\\.\\pipe\\NAME");
        return ExitCode::from(2);
    };
    let mut attempts = 0;
    let pipe = loop {
        match ClientOptions::new().open(&name) {
            Ok(pipe) => break pipe,
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && attempts < 250 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                eprintln!("rampart-pipe-relay: cannot open {name}: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let (mut from_pipe, mut to_pipe) = tokio::io::split(pipe);
    let upstream = async {
        tokio::io::copy(&mut tokio::io::stdin(), &mut to_pipe).await?;
        to_pipe.flush().await
    };
    let downstream = async {
        let mut stdout = tokio::io::stdout();
        tokio::io::copy(&mut from_pipe, &mut stdout).await?;
        stdout.flush().await
    };
    // Named pipes have no half-close: whichever side ends first ends the relay.
    let ended = tokio::select! {
        r = upstream => r,
        r = downstream => r,
    };
    match ended {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart-pipe-relay: {e}");
            ExitCode::from(3)
        }
    }
}

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!("rampart-pipe-relay relays to Windows named pipes; build it for Windows");
    std::process::ExitCode::from(2)
}
