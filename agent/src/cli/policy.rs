//! `rampart-agent policy ...`: what is in force, and IT's tools to write and
//! sign policy. Keys and signatures are in the minisign format, so IT may use
//! the stock `minisign` tool instead for any step.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use rampart_shared::ipc::{Check, Request, Response};
use rampart_shared::platform::Os;
use rampart_shared::policy::{MAX_POLICY_BYTES, parse_policy};
use rampart_shared::status::AgentMode;
use serde_json::json;

use crate::fsutil;
use crate::ipc::client::{Client, ClientError};
use crate::paths::{AgentPaths, default_client_socket};
use crate::policy::RESET_REQUEST_FILE;
use crate::policy::fetch::MAX_SIGNATURE_BYTES;
use crate::policy::signing::{self, PasswordSource};
use crate::policy::verify::{PinnedKey, PinnedKeys};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force and where it came from.
    Show(ShowArgs),
    /// Make a signing key pair: PREFIX.pub (for the install config) and
    /// PREFIX.key (secret, mode 0600, not password-protected).
    Keygen(KeygenArgs),
    /// Sign a policy file: writes FILE.minisig (checks the policy first).
    Sign(SignArgs),
    /// Check FILE.minisig against a public key: exit 0 only if it is good.
    Verify(VerifyArgs),
    /// Check a policy file against the schema: every problem with its path.
    Lint(LintArgs),
    /// Put the built-in default policy back in force (administrators only).
    /// The last accepted policy is forgotten; the highest serial ever
    /// accepted stays the floor for any policy that comes later.
    Reset(ResetArgs),
}

#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// The agent of `run --dev` (your own) instead of the service.
    #[arg(long)]
    pub dev: bool,
    /// The agent's state directory, if it was started with `--state-dir`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The agent's socket (default: the mode's).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Print `{"source": ..., "policy": {...}}`.
    #[arg(long)]
    pub json: bool,
    /// The agent's socket (default: $RAMPART_SOCKET, your dev agent, or the service).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Path prefix: writes PREFIX.pub and PREFIX.key.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The policy document to sign.
    pub file: PathBuf,
    /// The secret key (from `policy keygen`, `minisign -G` or `minisign -G -W`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// A password-protected key's password, read from this file (one
    /// trailing newline is ignored). Without it: $RAMPART_SIGNING_PASSWORD,
    /// then the terminal.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The policy document; its signature is FILE.minisig unless --sig is given.
    pub file: PathBuf,
    /// The public key file (or a file holding just its base64 line).
    #[arg(long, value_name = "PUBFILE")]
    pub pubkey: PathBuf,
    /// The signature file.
    #[arg(long, value_name = "SIGFILE")]
    pub sig: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// The policy document to check.
    pub file: PathBuf,
}

pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Show(args) => show(args),
        PolicyCommand::Keygen(args) => keygen(&args),
        PolicyCommand::Sign(args) => sign(&args),
        PolicyCommand::Verify(args) => verify(&args),
        PolicyCommand::Lint(args) => lint(&args),
        PolicyCommand::Reset(args) => reset(&args),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read_text(path: &Path, max: usize) -> anyhow::Result<String> {
    let bytes = fsutil::read_capped(path, max as u64)?
        .with_context(|| format!("{} does not exist", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{} is not text", path.display()))
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let (pub_path, key_path) = (
        with_suffix(&args.out, ".pub"),
        with_suffix(&args.out, ".key"),
    );
    for path in [&pub_path, &key_path] {
        if path.exists() && !args.force {
            bail!("{} exists; pass --force to replace it", path.display());
        }
    }
    let pair =
        minisign::KeyPair::generate_unencrypted_keypair().context("cannot generate a key pair")?;
    let public = pair
        .pk
        .to_box()
        .context("cannot encode the public key")?
        .into_string();
    let secret = pair
        .sk
        .to_box(Some("rampart-agent secret key (not password-protected)"))
        .context("cannot encode the secret key")?
        .into_string();
    // write_atomic makes files 0600: right for the key; the public key is public.
    fsutil::write_atomic(&key_path, secret.as_bytes())?;
    fsutil::write_atomic(&pub_path, public.as_bytes())?;
    fsutil::set_mode(&pub_path, 0o644)
        .with_context(|| format!("cannot chmod {}", pub_path.display()))?;
    let base64 = pair.pk.to_base64();
    let id = PinnedKey::parse(&base64).map_err(anyhow::Error::msg)?.id();
    outln!(
        "Wrote {} (public key {id}) and {}.",
        pub_path.display(),
        key_path.display()
    )?;
    outln!("Add the public key to the install config's \"public_keys\": \"{base64}\"")?;
    eprintln!(
        "warning: {} is not password-protected: keep it offline or in a secrets vault, never on a policy server",
        key_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let document = fsutil::read_capped(&args.file, MAX_POLICY_BYTES as u64)?
        .with_context(|| format!("{} does not exist", args.file.display()))?;
    if let Err(e) = parse_policy(&document) {
        eprintln!(
            "{}: not signed, the agent would reject it:\n{e}",
            args.file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let key_text = read_text(&args.key, 64 * 1024)?;
    let (password, given_by) = password_source(args)?;
    let opened = signing::open_secret_key(&key_text, password)
        .with_context(|| format!("cannot sign with {}", args.key.display()))?;
    if let (false, Some(given_by)) = (opened.was_encrypted, given_by) {
        eprintln!(
            "note: {} is not password-protected; the password from {given_by} was not needed",
            args.key.display()
        );
    }
    let secret = opened.key;
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let trusted = format!(
        "timestamp:{}\tfile:{name}\thashed",
        chrono::Utc::now().timestamp()
    );
    let signature = minisign::sign(
        None,
        &secret,
        document.as_slice(),
        Some(&trusted),
        Some("signature from rampart-agent policy sign"),
    )
    .context("cannot sign")?
    .into_string();
    let sig_path = with_suffix(&args.file, ".minisig");
    fsutil::write_atomic(&sig_path, signature.as_bytes())?;
    fsutil::set_mode(&sig_path, 0o644)
        .with_context(|| format!("cannot chmod {}", sig_path.display()))?;
    outln!("Wrote {}", sig_path.display())?;
    Ok(ExitCode::SUCCESS)
}

/// The password for a protected key: `--password-file`, the environment, the
/// terminal if there is one. Returns where it came from, for the note when
/// the key needed none.
fn password_source(args: &SignArgs) -> anyhow::Result<(PasswordSource, Option<String>)> {
    if let Some(path) = &args.password_file {
        let text = read_text(path, 4096)
            .with_context(|| format!("cannot read the password file {}", path.display()))?;
        return Ok((
            PasswordSource::Given(signing::password_from_file_text(&text)),
            Some(path.display().to_string()),
        ));
    }
    match std::env::var(signing::PASSWORD_ENV) {
        Ok(password) => {
            return Ok((
                PasswordSource::Given(password),
                Some(format!("${}", signing::PASSWORD_ENV)),
            ));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("${} is not valid UTF-8", signing::PASSWORD_ENV)
        }
        Err(std::env::VarError::NotPresent) => {}
    }
    let source = if std::io::stdin().is_terminal() {
        PasswordSource::Terminal
    } else {
        PasswordSource::Unavailable
    };
    Ok((source, None))
}

fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let sig_path = args
        .sig
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".minisig"));
    let result = (|| -> anyhow::Result<String> {
        let key = PinnedKey::parse(&read_text(&args.pubkey, 64 * 1024)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.pubkey.display()))?;
        let document = fsutil::read_capped(&args.file, MAX_POLICY_BYTES as u64)?
            .with_context(|| format!("{} does not exist", args.file.display()))?;
        let signature = read_text(&sig_path, MAX_SIGNATURE_BYTES)?;
        let id = PinnedKeys::new(vec![key]).verify(&document, &signature)?;
        Ok(format!("{}: signature good, key {id}", args.file.display()))
    })();
    match result {
        Ok(message) => {
            outln!("{message}")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: signature NOT good: {e:#}", args.file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn lint(args: &LintArgs) -> anyhow::Result<ExitCode> {
    let document = match fsutil::read_capped(&args.file, MAX_POLICY_BYTES as u64) {
        Ok(Some(d)) => d,
        Ok(None) => bail!("{} does not exist", args.file.display()),
        Err(fsutil::FsError::TooLarge { size, .. }) => {
            outln!(
                "{}: larger than {MAX_POLICY_BYTES} bytes ({size} bytes)",
                args.file.display()
            )?;
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    match parse_policy(&document) {
        Ok(policy) => {
            if let Some(expires_at) = policy.expires_at.filter(|t| *t <= chrono::Utc::now()) {
                outln!(
                    "{}: expires_at: {expires_at} is already past",
                    args.file.display()
                )?;
                return Ok(ExitCode::FAILURE);
            }
            outln!("{}: ok (serial {})", args.file.display(), policy.serial)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            for problem in e.problems() {
                outln!("{}: {problem}", args.file.display())?;
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let socket = args.socket.unwrap_or_else(default_client_socket);
    let reply = super::block_on(async {
        let mut client = Client::connect(&socket, super::CLIENT_NAME).await?;
        client.request(Request::PolicyShow).await
    })?;
    let (source, policy) = match reply {
        Ok(Response::Policy { source, policy }) => (source, policy),
        Ok(other) => bail!("unexpected reply from the agent: {other:?}"),
        Err(err @ (ClientError::NotRunning { .. } | ClientError::Connect { .. })) => {
            eprintln!("rampart-agent: {err}");
            return Ok(ExitCode::from(super::status::EXIT_UNREACHABLE));
        }
        Err(err) => return Err(err.into()),
    };
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"source": source, "policy": policy}))?
        )?;
    } else {
        outln!(
            "Policy in force: {} (serial {})",
            source.label(),
            policy.serial
        )?;
        outln!("{}", serde_json::to_string_pretty(&policy)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the agent for the built-in default through a request file in its
/// state directory: only root (the agent's own user in dev mode) can write
/// there, and the agent carries it out at its next housekeeping, or at start
/// when it is not running.
fn reset(args: &ResetArgs) -> anyhow::Result<ExitCode> {
    let mode = if args.dev {
        AgentMode::Dev
    } else {
        AgentMode::System
    };
    let paths = AgentPaths::with_overrides(
        mode,
        None,
        args.state_dir.as_deref(),
        args.socket.as_deref(),
    )?;
    let request = paths.state_dir.join(RESET_REQUEST_FILE);
    let os = Os::current();
    let stamp = format!("requested at {}\n", chrono::Utc::now().to_rfc3339());
    if let Err(e) = fsutil::write_atomic(&request, stamp.as_bytes()) {
        let kind = match &e {
            fsutil::FsError::Write { source, .. } => Some(source.kind()),
            _ => None,
        };
        match kind {
            Some(std::io::ErrorKind::PermissionDenied) => bail!(
                "Only {} may put the built-in policy back, and this account cannot write to {}. Run {}.\ndetails: {e}",
                os.administrator(),
                paths.state_dir.display(),
                os.elevated("rampart-agent policy reset")
            ),
            Some(std::io::ErrorKind::NotFound) => bail!(
                "No agent has ever run with the state directory {}, so there is no policy to reset. \
                 If the agent runs with --state-dir or --dev, pass the same here.\ndetails: {e}",
                paths.state_dir.display()
            ),
            _ => return Err(e).context("cannot write the reset request"),
        }
    }
    let refreshed = super::block_on(async {
        let mut client = Client::connect(&paths.socket, super::CLIENT_NAME).await?;
        client
            .request(Request::Refresh {
                check: Check::Policy,
            })
            .await
    })?;
    if let Err(err) = refreshed {
        outln!(
            "The agent is not running ({err}); it puts the built-in policy back when it starts."
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    // The agent removes the request once the reset is saved; this is a
    // person waiting at a prompt, not a test: poll for a little while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::fs::symlink_metadata(&request).is_ok() {
        if std::time::Instant::now() > deadline {
            eprintln!(
                "The agent has not carried out the reset within 15 s: {} is still there. \
                 Check `rampart-agent status` in a minute; the agent's log says why if it could not save its state.",
                request.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = super::block_on(async {
        let mut client = Client::connect(&paths.socket, super::CLIENT_NAME).await?;
        client.status().await
    })??;
    let policy = &status.policy;
    outln!(
        "Reset done. Policy in force: {}, serial {}.",
        policy.source.label(),
        policy.serial
    )?;
    if let Some(error) = &policy.error {
        outln!("The managed policy file was read again and refused: {error}")?;
    }
    outln!("A policy that comes later needs a serial higher than every one accepted before.")?;
    Ok(ExitCode::SUCCESS)
}
