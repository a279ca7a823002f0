//! `rampart-agent policy ...`: what is in force, and IT's tools to write and
//! sign policy. Keys and signatures are in the minisign format, so IT may use
//! the stock `minisign` tool instead for any step.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use rampart_shared::ipc::{Request, Response};
use rampart_shared::policy::{MAX_POLICY_BYTES, parse_policy};
use serde_json::json;

use crate::fsutil;
use crate::ipc::client::{Client, ClientError};
use crate::paths::default_client_socket;
use crate::policy::fetch::MAX_SIGNATURE_BYTES;
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
    /// The secret key (from `policy keygen` or `minisign -G`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
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
    let key_box = minisign::SecretKeyBox::from_string(&key_text)?;
    let secret = match minisign::SecretKey::from_unencrypted_box(key_box.clone()) {
        Ok(sk) => sk,
        // A password-protected key (stock `minisign -G`): minisign asks for it.
        Err(_) => minisign::SecretKey::from_box(key_box, None)
            .with_context(|| format!("cannot open the secret key {}", args.key.display()))?,
    };
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
