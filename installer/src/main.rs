//! `rampart-installer`: install, upgrade or remove the Rampart agent service
//! and the app's autostart.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_agent::config::{UpdateSource, UpdateSourceKind};
use rampart_installer::{InstallOptions, KeyChange, Layout, Target};

#[derive(Debug, Parser)]
#[command(
    name = "rampart-installer",
    version,
    about = "Install or remove the Rampart agent service and the app's autostart"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size difference (larger on Windows, where paths
// carry more) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Install, or upgrade in place (state and config are kept).
    Install(InstallArgs),
    /// Remove what `install` put in place; `--purge` also removes state.
    Uninstall(UninstallArgs),
    /// Write only the install config (agent.json), for packages that put the
    /// binaries and the service in place themselves: the MSI runs this with
    /// its POLICY_URL, POLICY_PUBKEY, DEVICE_ID and REPORT_SECRET properties.
    Configure(ConfigureArgs),
    /// Write the man pages (for packaging).
    #[command(hide = true)]
    Man(rampart_agent::cli::man::ManArgs),
    /// Show which installed files are present and whether the agent answers.
    /// Exit 0: installed and running; 3: installed, not running; 4: not
    /// installed (1: the check itself failed). For detection scripts:
    /// docs/status.md.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
struct RootArg {
    /// Stage everything under this directory and run no service command.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    root: RootArg,
    /// The agent's socket (default: the service's).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct InstallArgs {
    #[command(flatten)]
    root: RootArg,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the agent fetches its signed policy.
    #[arg(long, value_name = "URL")]
    policy_url: Option<String>,
    /// A minisign public key file to trust for policy; replaces the keys in
    /// place (repeat to give several).
    #[arg(long = "pubkey", value_name = "FILE", conflicts_with = "add_pubkeys")]
    pubkeys: Vec<PathBuf>,
    /// A minisign public key file to trust in addition to the keys in place
    /// (key rotation; repeatable).
    #[arg(long = "add-pubkey", value_name = "FILE")]
    add_pubkeys: Vec<PathBuf>,
    /// This device's id in reports (default: the host name).
    #[arg(long, value_name = "ID")]
    device_id: Option<String>,
    /// A release feed for self-update: `github=https://api.github.com/repos/OWNER/NAME`
    /// or `manifest=https://host/rampart/{channel}/manifest.json`.
    #[arg(long, value_name = "KIND=URL", value_parser = parse_update_source)]
    update_source: Option<UpdateSource>,
    /// A release-signing Ed25519 public key, base64 (repeat for rotation).
    #[arg(long = "update-key", value_name = "BASE64")]
    update_keys: Vec<String>,
    /// Read the Duo secret key from this file (`-`: standard input) and
    /// install it 0600 as `duo.key` in the config directory, the path the
    /// policy's `secret_key_file` names.
    #[arg(long, value_name = "FILE")]
    duo_secret_key: Option<PathBuf>,
    /// A PEM file of extra CA certificates the agent trusts (an on-prem TLS
    /// proxy): checked, then copied into the config directory as
    /// `extra-ca.pem`.
    #[arg(long, value_name = "FILE")]
    extra_ca_file: Option<PathBuf>,
    /// Read the deployment secret for reports from this file (`-`: standard
    /// input) and install it 0600 as `report.secret` in the config
    /// directory; the agent sends it with each report as a bearer token.
    #[arg(long, value_name = "FILE")]
    report_secret_file: Option<PathBuf>,
    /// The directory holding `rampart-agent` and `rampart` (default: the
    /// installer's own directory).
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct UninstallArgs {
    #[command(flatten)]
    root: RootArg,
    /// Also remove state, logs and the configuration directory.
    #[arg(long)]
    purge: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Every value may be empty, meaning "not given": an MSI passes each of
/// its public properties whether or not the deployer set it.
#[derive(Debug, clap::Args)]
struct ConfigureArgs {
    #[command(flatten)]
    root: RootArg,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the agent fetches its signed policy.
    #[arg(long, value_name = "URL")]
    policy_url: Option<String>,
    /// A minisign public key, the base64 line of its `.pub` file; several
    /// separated by `;` (one MSI property holds the old and the new key
    /// while rotating). Repeatable.
    #[arg(long = "pubkey-text", value_name = "KEY[;KEY]")]
    pubkey_texts: Vec<String>,
    /// This device's id in reports (default: the host name).
    #[arg(long, value_name = "ID")]
    device_id: Option<String>,
    /// Read the deployment secret for reports from this file (`-`: standard
    /// input) and install it as `report.secret`, the service's alone.
    #[arg(long, value_name = "FILE", conflicts_with = "report_secret")]
    report_secret_file: Option<PathBuf>,
    /// The deployment secret itself: for the MSI's REPORT_SECRET property
    /// only, which reaches this command on its command line (a SYSTEM
    /// process during the install; see docs/reporting.md). Anywhere else use
    /// --report-secret-file: a command line is visible to other users.
    #[arg(long, value_name = "SECRET")]
    report_secret: Option<String>,
    /// Remove the install config instead (the MSI's uninstall).
    #[arg(long, conflicts_with_all = ["policy_url", "pubkey_texts", "device_id", "report_secret_file", "report_secret"])]
    remove: bool,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn parse_update_source(s: &str) -> Result<UpdateSource, String> {
    let (kind, url) = s
        .split_once('=')
        .ok_or("expected KIND=URL, e.g. manifest=https://releases.example.com/rampart/{channel}/manifest.json")?;
    let kind = match kind {
        "github" => UpdateSourceKind::Github,
        "manifest" => UpdateSourceKind::Manifest,
        other => return Err(format!("unknown feed kind \"{other}\": github or manifest")),
    };
    Ok(UpdateSource {
        kind,
        url: url.to_owned(),
    })
}

/// Duo secret keys are 40 letters and digits; anything else is a paste
/// error better caught here than as a refused signature later.
fn read_duo_key(file: &std::path::Path) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let text = zeroize::Zeroizing::new(if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("cannot read the Duo secret key from standard input")?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --duo-secret-key {}", file.display()))?
    });
    let key = zeroize::Zeroizing::new(text.trim().to_owned());
    anyhow::ensure!(
        key.len() == 40 && key.bytes().all(|b| b.is_ascii_alphanumeric()),
        "--duo-secret-key: expected the 40-character secret key from the Duo Admin Panel"
    );
    Ok(key)
}

/// The deployment secret from `--report-secret-file` (`-`: standard input),
/// checked with the agent's own rule.
fn read_report_secret(file: &std::path::Path) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let text = zeroize::Zeroizing::new(if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("cannot read the deployment secret from standard input")?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --report-secret-file {}", file.display()))?
    });
    checked_report_secret("--report-secret-file", &text)
}

/// `source` names where the secret came from; errors never quote it.
fn checked_report_secret(source: &str, text: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let secret = rampart_agent::report::ReportSecret::parse(text)
        .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    Ok(zeroize::Zeroizing::new(secret.expose().to_owned()))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rampart-installer: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let layout = Layout::host();
    let mut note = |line: String| eprintln!("{line}");
    match cli.command {
        Command::Install(args) => {
            let target = Target {
                root: args.root.root,
            };
            let from = match args.from {
                Some(dir) => dir,
                None => std::env::current_exe()
                    .context("cannot find the installer's own path")?
                    .parent()
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            };
            let exe = std::env::consts::EXE_SUFFIX;
            let agent_source = from.join(format!("rampart-agent{exe}"));
            anyhow::ensure!(
                agent_source.is_file(),
                "{} not found: build it, or point --from at its directory",
                agent_source.display()
            );
            let app = from.join(format!("rampart{exe}"));
            let app_source = app.is_file().then_some(app);
            // As cargo names it (`libpam_rampart.so`) or as shipped.
            let pam_source = ["pam_rampart.so", "libpam_rampart.so"]
                .iter()
                .map(|name| from.join(name))
                .find(|path| cfg!(target_os = "linux") && path.is_file());
            if app_source.is_none() {
                eprintln!(
                    "note: no app binary in {}: installing the service without the app",
                    from.display()
                );
            }
            let (key_files, key_change) = if args.add_pubkeys.is_empty() {
                (&args.pubkeys, KeyChange::Replace)
            } else {
                (&args.add_pubkeys, KeyChange::Add)
            };
            let mut public_keys = Vec::new();
            for file in key_files {
                public_keys.push(
                    std::fs::read_to_string(file).with_context(|| {
                        format!("cannot read the public key {}", file.display())
                    })?,
                );
            }
            let extra_ca_pem = match &args.extra_ca_file {
                None => None,
                Some(file) => Some(read_extra_ca(file)?),
            };
            let duo_secret_key = match &args.duo_secret_key {
                None => None,
                Some(file) => Some(read_duo_key(file)?),
            };
            let report_secret = match &args.report_secret_file {
                None => None,
                Some(file) => Some(read_report_secret(file)?),
            };
            let opts = InstallOptions {
                report_secret,
                agent_source,
                app_source,
                pam_source,
                policy_url: args.policy_url,
                public_keys,
                device_id: args.device_id,
                update_source: args.update_source,
                update_keys: args.update_keys,
                duo_secret_key,
                extra_ca_pem,
                key_change,
            };
            let plan = rampart_installer::plan_install(&layout, &target, &opts)?;
            let existing = rampart_installer::read_existing_config(&layout, &target)?;
            if let Some(line) = rampart_installer::key_change_note(existing.as_deref(), &opts) {
                eprintln!("note: {line}");
            }
            if args.dry_run {
                print!("{plan}");
                return Ok(ExitCode::SUCCESS);
            }
            rampart_installer::execute(&plan, &target, &mut note)?;
            eprintln!("installed");
        }
        Command::Uninstall(args) => {
            let target = Target {
                root: args.root.root,
            };
            let plan = rampart_installer::uninstall_plan(&layout, args.purge);
            if args.dry_run {
                print!("{plan}");
                return Ok(ExitCode::SUCCESS);
            }
            rampart_installer::execute(&plan, &target, &mut note)?;
            eprintln!("uninstalled");
        }
        Command::Configure(args) => {
            let target = Target {
                root: args.root.root,
            };
            let plan = if args.remove {
                rampart_installer::unconfigure_plan(&layout)
            } else {
                // The MSI passes REPORT_SECRET whether set or not.
                let report_secret = match (&args.report_secret_file, non_empty(args.report_secret))
                {
                    (Some(file), _) => Some(read_report_secret(file)?),
                    (None, Some(text)) => Some(checked_report_secret(
                        "--report-secret (the MSI's REPORT_SECRET)",
                        &zeroize::Zeroizing::new(text),
                    )?),
                    (None, None) => None,
                };
                let opts = InstallOptions {
                    report_secret,
                    policy_url: non_empty(args.policy_url),
                    public_keys: args
                        .pubkey_texts
                        .iter()
                        .flat_map(|t| t.split(';'))
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    device_id: non_empty(args.device_id),
                    ..InstallOptions::default()
                };
                rampart_installer::plan_configure(&layout, &target, &opts)?
            };
            if args.dry_run {
                print!("{plan}");
                return Ok(ExitCode::SUCCESS);
            }
            if plan.steps.is_empty() {
                eprintln!("nothing to configure: the install config is left as it is");
                return Ok(ExitCode::SUCCESS);
            }
            rampart_installer::execute(&plan, &target, &mut note)?;
            eprintln!("configured");
        }
        Command::Status(args) => return status(&layout, args),
        Command::Man(args) => {
            use clap::CommandFactory;
            rampart_agent::cli::man::write(Cli::command(), &args.dir)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(layout: &Layout, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let target = Target {
        root: args.root.root,
    };
    let files = rampart_installer::status(layout, &target);
    for (path, present) in &files {
        let word = if *present { "present" } else { "missing" };
        println!("{word:8} {}", path.display());
    }
    let present = |path: &std::path::Path| files.iter().any(|(p, here)| p == path && *here);
    // The Debian package installs elsewhere than this installer does.
    let packaged = layout.os == rampart_installer::TargetOs::Linux
        && [
            "/usr/bin/rampart-agent",
            "/usr/lib/systemd/system/rampart-agent.service",
        ]
        .iter()
        .all(|p| rampart_installer::target_path(&target, std::path::Path::new(p)).exists());
    let installed = packaged
        || (present(&layout.agent_bin) && layout.service_file.as_deref().is_none_or(present));
    let socket = match args.socket {
        Some(socket) => socket,
        None => rampart_installer::target_path(
            &target,
            &rampart_agent::paths::AgentPaths::system().socket,
        ),
    };
    let verdict = rampart_installer::detect::verdict(installed, ask_agent(&socket));
    let start = rampart_shared::platform::Os::current().start_service();
    println!("{}", verdict.line(&format!("start it with {start}")));
    Ok(ExitCode::from(verdict.exit_code()))
}

/// The agent's version if it answers the handshake on `socket` within 5 s.
fn ask_agent(socket: &std::path::Path) -> Result<String, String> {
    let asked = rampart_agent::cli::block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            rampart_agent::ipc::client::Client::connect(socket, "rampart-installer"),
        )
        .await
    })
    .map_err(|e| format!("cannot ask the agent: {e:#}"))?;
    match asked {
        Err(_) => Err(format!("no answer within 5 s on {}", socket.display())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(client)) => Ok(client.agent().agent_version.to_string()),
    }
}

/// The `--extra-ca-file`, read and checked by the agent's own reader (the
/// one the agent will use): at least one certificate, every one parseable.
fn read_extra_ca(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let file =
        std::path::absolute(file).with_context(|| format!("--extra-ca-file {}", file.display()))?;
    rampart_agent::network::extra_roots(&file).map_err(|e| {
        anyhow::anyhow!(
            "--extra-ca-file: {e}. Give a PEM file of the CA certificates (\"-----BEGIN CERTIFICATE-----\"); nothing was installed."
        )
    })?;
    std::fs::read(&file).with_context(|| format!("cannot read --extra-ca-file {}", file.display()))
}
