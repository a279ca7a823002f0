//! Service definitions, rendered as text by pure functions so that every OS's
//! files can be checked on any machine.

use std::path::Path;

pub use rampart_shared::platform::{
    LAUNCHD_AGENT_LABEL, LAUNCHD_APP_LABEL, SYSTEMD_UNIT, WINDOWS_SERVICE,
    WINDOWS_SERVICE_DISPLAY_NAME,
};

/// No version in it: the packaged copies would change with every release.
const HEADER: &str =
    "Written by Rampart's installer (installer/src/render.rs): reinstall rather than edit.";

/// The inputs of the systemd unit.
#[derive(Debug, Clone)]
pub struct SystemdUnit<'a> {
    /// `rampart-agent run --config FILE`: the binary and its arguments.
    pub exec: &'a [String],
    /// Where the agent binary lives when it updates itself; `None` when a
    /// package manager owns the binary (the .deb), so the directory stays
    /// read-only to the service.
    pub self_update_dir: Option<&'a Path>,
}

/// `rampart-agent.service`, a system unit.
pub fn systemd_unit(unit: &SystemdUnit<'_>) -> String {
    let mut s = format!(
        "# {HEADER}\n\
         [Unit]\n\
         Description=Rampart endpoint agent\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={}\n\
         Restart=always\n\
         RestartSec=5\n\
         # /var/lib/rampart, /run/rampart, /var/log/rampart and /etc/rampart: the\n\
         # same paths the agent uses in system mode (agent/src/paths.rs). The socket\n\
         # directory is world-readable: any local user may ask for status.\n\
         StateDirectory=rampart\n\
         StateDirectoryMode=0700\n\
         RuntimeDirectory=rampart\n\
         RuntimeDirectoryMode=0755\n\
         LogsDirectory=rampart\n\
         LogsDirectoryMode=0750\n\
         ConfigurationDirectory=rampart\n\
         ConfigurationDirectoryMode=0755\n\
         ProtectSystem=strict\n\
         ProtectHome=read-only\n\
         NoNewPrivileges=yes\n\
         PrivateTmp=yes\n\
         # The socket (AF_UNIX), SNTP, HTTPS and TCP checks (AF_INET, AF_INET6);\n\
         # getaddrinfo asks the kernel for the host's addresses (AF_NETLINK).\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
         # The sandbox, checked against what the agent does (ARCHITECTURE.md;\n\
         # `systemd-analyze security` scores it OK, a test keeps it there). It\n\
         # runs as root only to own /var/lib/rampart, read the 0600 Duo key and\n\
         # serve every user; it needs no capability: every file it reads or\n\
         # writes is root's own (no DAC override), it never sets the clock, binds\n\
         # no privileged port, changes no owner, and learns a peer's uid from\n\
         # SO_PEERCRED, which needs none. (A kill(pid, 0) refused for lack of\n\
         # CAP_KILL counts as \"alive\" in the start-up sweep: the safe side.)\n\
         CapabilityBoundingSet=\n\
         # No device but the standard pseudo-devices: randomness is getrandom().\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\n\
         # It measures the clock, never sets it; it reads the host name only.\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         # /proc/self only (current_exe for self-update); no other process is read.\n\
         ProtectProc=invisible\n\
         ProcSubset=pid\n\
         RestrictNamespaces=yes\n\
         RestrictRealtime=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         # No JIT anywhere (ring is ahead-of-time assembly).\n\
         MemoryDenyWriteExecute=yes\n\
         PrivateMounts=yes\n\
         SystemCallArchitectures=native\n\
         SystemCallFilter=@system-service\n\
         SystemCallFilter=~@privileged\n\
         # A refused call fails with EPERM, which the agent reports, rather than\n\
         # killing it with SIGSYS in a restart loop.\n\
         SystemCallErrorNumber=EPERM\n\
         # Open files: up to 1024 IPC connections (per-user limits in\n\
         # agent/src/ipc/admission.rs) plus the agent's own files and sockets; the\n\
         # agent also raises its soft limit to this hard one at start.\n\
         LimitNOFILE=65536\n\
         # Log files are created 0600 anyway; anything else it creates without an\n\
         # explicit mode is root's alone; the socket (0666) and a self-updated\n\
         # binary (0755) are chmodded explicitly.\n\
         UMask=0077\n\
         # Not set, on purpose: PrivateUsers= would map every peer's uid to\n\
         # nobody (authorization is by peer uid); PrivateNetwork= and\n\
         # IPAddressDeny= would cut off the policy server, NTP, Duo and the\n\
         # report collector, whose addresses IT chooses.\n",
        systemd_exec(unit.exec)
    );
    if let Some(dir) = unit.self_update_dir {
        s.push_str(
            "# Self-update replaces the agent binary by writing the new one beside it\n\
             # and renaming it over the old one; ProtectSystem=strict makes every other\n\
             # path read-only, so only the binary's own directory is opened up. (The\n\
             # previous binary is kept under StateDirectory, writable anyway.)\n",
        );
        s.push_str(&format!(
            "ReadWritePaths={}\n",
            systemd_word(&dir.to_string_lossy())
        ));
    } else {
        s.push_str("# No ReadWritePaths: the package manager owns the binary and updates it.\n");
    }
    s.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    s
}

/// A command line for `ExecStart=`: each word quoted as systemd reads it back
/// (double quotes with C escapes), `%` doubled (specifiers) and `$` doubled
/// (environment expansion).
pub fn systemd_exec(argv: &[String]) -> String {
    argv.iter()
        .map(|a| systemd_word(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn systemd_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    let plain = !escaped.is_empty()
        && escaped
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"\"'\\;".contains(c));
    if plain {
        return escaped;
    }
    let mut out = String::from("\"");
    for c in escaped.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `/etc/xdg/autostart/rampart.desktop`: starts the app in every desktop
/// session (GNOME, KDE, Xfce... all honour XDG autostart).
pub fn xdg_autostart(app: &[String]) -> String {
    format!(
        "# {HEADER}\n\
         [Desktop Entry]\n\
         Type=Application\n\
         Name=Rampart\n\
         Comment=Shows this device's security status and sets up MFA\n\
         TryExec={}\n\
         Exec={}\n\
         Terminal=false\n\
         NoDisplay=true\n\
         X-GNOME-Autostart-enabled=true\n",
        // Once the app is removed (the agent's package may stay), the
        // session skips the entry instead of failing to start it.
        app.first()
            .map(|p| p.replace('\\', "\\\\"))
            .unwrap_or_default(),
        desktop_exec(app)
    )
}

/// The `Exec=` key of a desktop entry: arguments with reserved characters go
/// in double quotes where `"`, `` ` ``, `$` and `\` are backslash-escaped; `%`
/// is doubled (field codes); then the string value's own escaping doubles
/// every backslash.
pub fn desktop_exec(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            let a = a.replace('%', "%%");
            let reserved = a.is_empty()
                || a.chars().any(|c| {
                    c.is_whitespace() || "\"'\\><~|&;$*?#()`".contains(c) || c.is_control()
                });
            if reserved {
                let mut q = String::from("\"");
                for c in a.chars() {
                    if "\"`$\\".contains(c) {
                        q.push('\\');
                    }
                    q.push(c);
                }
                q.push('"');
                q
            } else {
                a
            }
        })
        .collect();
    words
        .join(" ")
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn plist(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- {HEADER} -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n{body}</dict>\n\
         </plist>\n"
    )
}

fn plist_string(key: &str, value: &str) -> String {
    format!(
        "\t<key>{}</key>\n\t<string>{}</string>\n",
        xml_escape(key),
        xml_escape(value)
    )
}

fn plist_array(key: &str, values: &[String]) -> String {
    let mut s = format!("\t<key>{}</key>\n\t<array>\n", xml_escape(key));
    for v in values {
        s.push_str(&format!("\t\t<string>{}</string>\n", xml_escape(v)));
    }
    s.push_str("\t</array>\n");
    s
}

/// `/Library/LaunchDaemons/dev.rampart.agent.plist`: the agent as root, at
/// boot, restarted whenever it exits.
pub fn launchd_daemon(exec: &[String], log_file: &Path) -> String {
    let mut body = plist_string("Label", LAUNCHD_AGENT_LABEL);
    body.push_str(&plist_array("ProgramArguments", exec));
    body.push_str("\t<key>RunAtLoad</key>\n\t<true/>\n\t<key>KeepAlive</key>\n\t<true/>\n");
    body.push_str("\t<key>ThrottleInterval</key>\n\t<integer>5</integer>\n");
    body.push_str(&plist_string(
        "StandardErrorPath",
        &log_file.to_string_lossy(),
    ));
    plist(&body)
}

/// `/Library/LaunchAgents/dev.rampart.app.plist`: the app in every user's
/// graphical (Aqua) session; restarted if it crashes, not if the user quits.
pub fn launchd_app(exec: &[String]) -> String {
    let mut body = plist_string("Label", LAUNCHD_APP_LABEL);
    body.push_str(&plist_array("ProgramArguments", exec));
    body.push_str(&plist_string("LimitLoadToSessionType", "Aqua"));
    body.push_str(&plist_string("ProcessType", "Interactive"));
    body.push_str("\t<key>RunAtLoad</key>\n\t<true/>\n");
    body.push_str(
        "\t<key>KeepAlive</key>\n\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>\n",
    );
    plist(&body)
}

/// One argument quoted for a Windows command line as `CommandLineToArgvW`
/// and the MSVC runtime read it back.
pub fn windows_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '"']) {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            c => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

/// A whole Windows command line (the service's `binPath`, a Run key value).
pub fn windows_command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| windows_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The unit the .deb ships (`packaging/deb/rampart-agent.service`): the
/// binary in /usr/bin belongs to dpkg, so the agent does not update itself
/// and its directory stays read-only. No `--config`: the agent reads
/// /etc/rampart/agent.json when IT's tooling has put one there, and runs on
/// the built-in policy until then (an explicit `--config` must exist).
pub fn deb_systemd_unit() -> String {
    systemd_unit(&SystemdUnit {
        exec: &["/usr/bin/rampart-agent".to_owned(), "run".to_owned()],
        self_update_dir: None,
    })
}

/// The autostart entry the .deb ships (`packaging/deb/rampart.desktop`).
pub fn deb_autostart() -> String {
    xdg_autostart(&["/usr/bin/rampart".to_owned()])
}
