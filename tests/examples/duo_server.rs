//! The Duo-protocol test server as a process, for `scripts/screenshots.sh
//! --duo`: prints `API_HOST CA_FILE KEY_FILE` on one line, then serves until
//! killed. The user `LOGIN` is new to Duo; the phone activates on the third
//! poll and approves the push on the fourth.
//!
//! Usage: duo_server WORK_DIR LOGIN
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use rampart_tests::duo::{DuoServer, Preauth, UserScript};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(login)) = (args.next(), args.next()) else {
        eprintln!("usage: duo_server WORK_DIR LOGIN");
        std::process::exit(2);
    };
    let server = DuoServer::start();
    let key = server.write_secret_key_file(std::path::Path::new(&dir));
    let mut script = UserScript::new(Preauth::Enroll { exists: false });
    script.enroll_statuses = vec!["waiting", "waiting", "success"];
    script.push_results = vec![
        ("waiting", "pushed"),
        ("waiting", "pushed"),
        ("waiting", "pushed"),
        ("allow", "allow"),
    ];
    server.add_user(&login, script);
    println!(
        "{} {} {}",
        server.api_host(),
        server.ca_file().display(),
        key.display()
    );
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}
