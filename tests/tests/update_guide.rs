//! docs/updates.md, followed: the shell blocks marked `<!-- run: publish -->`
//! make a signing key, a signed archive and a manifest exactly as the guide
//! says (with the real `zipsign` when it is on PATH, else `rampart-zipsign`,
//! its stand-in over the same library); the result is served on 127.0.0.1
//! and the `<!-- run: device -->` block updates a real installed agent from
//! it. The transcript is printed (`--nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rampart_tests::http::HttpServer;
use rampart_tests::workspace_bin;

/// The marked blocks of the guide, by mark, in order.
fn blocks(doc: &str, mark: &str) -> String {
    let mut out = String::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() != format!("<!-- run: {mark} -->") {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "a marked block is ```sh"
        );
        for line in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "no block marked {mark}");
    out
}

fn bash(script: &str, dir: &Path, env: &[(&str, &std::ffi::OsStr)]) -> (bool, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail; set -x\n{script}"))
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .env("PS4", "$ ")
        .output()
        .unwrap();
    // xtrace goes to stderr, the commands' output to stdout: merged in
    // order is not possible afterwards, so each is shown whole.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), text)
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_release_guide_publishes_a_release_that_updates_a_device() {
    let doc =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/updates.md")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let releases = work.path().join("www");

    // zipsign: the real one if installed, else the stand-in.
    let tools = work.path().join("tools");
    fs::create_dir_all(&tools).unwrap();
    let on_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join("zipsign").is_file());
    if !on_path {
        eprintln!(
            "(zipsign is not installed: using rampart-zipsign, its stand-in over zipsign-api)"
        );
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rampart-zipsign"), tools.join("zipsign"))
            .unwrap();
    }
    let path = std::env::join_paths(std::iter::once(tools.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();

    // The "build": a binary that says it is 1.4.0.
    let binary = work.path().join("built-rampart-agent");
    fs::write(&binary, "#!/bin/sh\necho rampart-agent 1.4.0\n").unwrap();

    let (ok, publish) = bash(
        &blocks(&doc, "publish"),
        work.path(),
        &[
            ("PATH", path.as_os_str()),
            ("BINARY", binary.as_os_str()),
            ("RELEASES", releases.as_os_str()),
        ],
    );
    println!("---- publishing (docs/updates.md) ----\n{publish}");
    assert!(ok, "the guide's publishing steps failed");
    let update_key = publish
        .lines()
        .find_map(|l| l.strip_prefix("update key: "))
        .expect("the guide prints the update key")
        .to_owned();

    let server = HttpServer::start();
    for file in files(&releases) {
        let rel = file
            .strip_prefix(&releases)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        server.serve(
            &format!("/rampart/{rel}"),
            fs::read(&file).unwrap(),
            "application/octet-stream",
        );
    }

    // A device installed with this feed and key (what `rampart-installer
    // install --update-source manifest=URL --update-key KEY` writes).
    let device = work.path().join("device");
    fs::create_dir_all(device.join("bin")).unwrap();
    let exe = device.join("bin/rampart-agent");
    fs::copy(workspace_bin("rampart-agent"), &exe).unwrap();
    let config = device.join("agent.json");
    fs::write(
        &config,
        serde_json::json!({
            "device_id": "guide-1",
            "update_public_keys": [update_key],
            "update_source": {"kind": "manifest", "url": server.url("/rampart/{channel}/manifest.json")}
        })
        .to_string(),
    )
    .unwrap();
    fs::write(
        device.join("policy.json"),
        rampart_tests::agent::loopback_policy(1).to_string(),
    )
    .unwrap();
    let state = device.join("state");
    // On a device the defaults are the system paths; here a `rampart-agent`
    // on PATH spells them for `update`.
    let device_tools = device.join("tools");
    fs::create_dir_all(&device_tools).unwrap();
    let wrapper = device_tools.join("rampart-agent");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = update ]; then exec \"{exe}\" \"$@\" --config \"{config}\" --state-dir \"{state}\"; fi\nexec \"{exe}\" \"$@\"\n",
            exe = exe.display(),
            config = config.display(),
            state = state.display(),
        ),
    )
    .unwrap();
    fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let device_path = std::env::join_paths(std::iter::once(device_tools).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let (ok, updated) = bash(
        &blocks(&doc, "device"),
        &device,
        &[("PATH", device_path.as_os_str())],
    );
    println!("---- on the device (docs/updates.md) ----\n{updated}");
    assert!(ok, "the guide's device steps failed");
    assert!(updated.contains("update available: 1.4.0\n"), "{updated}");
    assert!(
        updated.contains("updated to 1.4.0; restart the agent to run it\n"),
        "{updated}"
    );
    assert!(updated.ends_with("rampart-agent 1.4.0\n"), "{updated}");
}
