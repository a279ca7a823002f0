//! Prints the current 6-digit code for the enrollment being paired, as the
//! employee's phone would show it. For `scripts/screenshots.sh`, which drives
//! the real app and needs a real code to type.
//!
//! It asks the running agent (`$RAMPART_SOCKET`, else the default socket)
//! with `StartEnrollment`, which resumes a pairing under way and returns the
//! same secret; only the enrollment's owner may ask.

use rampart_agent::ipc::client::Client;
use rampart_agent::paths::default_client_socket;
use rampart_shared::ipc::{Request, Response};
use rampart_shared::mfa::MfaCommand;
use rampart_shared::totp::{self, Params, Secret};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let socket = default_client_socket();
    let mut client = Client::connect(&socket, "rampart-totp-now").await?;
    let response = client
        .request(Request::Mfa {
            command: MfaCommand::StartEnrollment,
            user: None,
        })
        .await?;
    let Response::Enrollment { view } = response else {
        anyhow::bail!("unexpected answer from the agent");
    };
    let pairing = view
        .pairing
        .ok_or_else(|| anyhow::anyhow!("no pairing under way (step {:?})", view.step))?;
    let secret = Secret::from_base32(&pairing.secret_grouped.replace(' ', ""))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    println!(
        "{}",
        totp::totp(&secret, i64::try_from(now)?, Params::PRODUCT)
    );
    Ok(())
}
