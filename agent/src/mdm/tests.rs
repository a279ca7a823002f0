use std::path::PathBuf;

use super::*;
use crate::config::{UpdateSource, UpdateSourceKind};

const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
const KEY2: &str = "RWTAs8VHJFl1UVukEokCh6zFu8HWoQyQDk9edw05Cf9wVqUmfR+wWUtF";
const UPDATE_KEY: &str = "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTAxMjM=";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn key_names() -> Vec<&'static str> {
    KEYS.iter().map(|(k, _)| *k).collect()
}

/// The key list is the install config's fields, so MDM cannot offer a key
/// the agent lacks or miss one it has.
#[test]
fn the_key_list_is_the_install_configs_fields() {
    let full = InstallConfig {
        device_id: "d".into(),
        policy_url: Some("https://p.example.com/policy.json".into()),
        public_keys: vec![KEY.into()],
        allow_unsigned_local_policy: true,
        update_public_keys: vec![UPDATE_KEY.into()],
        update_source: Some(UpdateSource {
            kind: UpdateSourceKind::Manifest,
            url: "https://r.example.com/m.json".into(),
        }),
        extra_ca_file: Some("/etc/rampart/extra-ca.pem".into()),
        report_secret_file: Some("/etc/rampart/report.secret".into()),
    };
    let json = serde_json::to_value(&full).unwrap();
    let mut fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = key_names();
    fields.sort_unstable();
    keys.sort_unstable();
    assert_eq!(fields, keys);
}

fn xml_plist(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>{body}</dict></plist>"#
    )
    .into_bytes()
}

#[test]
fn a_managed_preferences_plist_becomes_install_config_keys() {
    let bytes = xml_plist(&format!(
        "<key>PayloadUUID</key><string>x</string>
         <key>policy_url</key><string>https://p.example.com/policy.json</string>
         <key>public_keys</key><array><string>{KEY}</string></array>
         <key>allow_unsigned_local_policy</key><true/>
         <key>update_source</key><dict><key>kind</key><string>github</string>
             <key>url</key><string>https://api.github.com/repos/acme/rampart</string></dict>
         <key>update_public_keys</key><array><string>{UPDATE_KEY}</string></array>"
    ));
    let values = from_plist(&bytes).unwrap();
    assert_eq!(
        Value::Object(values.clone()),
        serde_json::json!({
            "policy_url": "https://p.example.com/policy.json",
            "public_keys": [KEY],
            "allow_unsigned_local_policy": true,
            "update_source": {"kind": "github", "url": "https://api.github.com/repos/acme/rampart"},
            "update_public_keys": [UPDATE_KEY],
        })
    );
    // The binary form (what `defaults write` leaves) reads the same.
    let mut binary = Vec::new();
    plist::Value::from_reader(std::io::Cursor::new(&bytes))
        .unwrap()
        .to_writer_binary(&mut binary)
        .unwrap();
    assert_eq!(from_plist(&binary).unwrap(), values);
}

#[test]
fn a_wrong_plist_names_the_key_and_what_was_expected() {
    for (body, want) in [
        (
            "<key>public_key</key><string>x</string>",
            "public_key: not an install config key",
        ),
        (
            "<key>public_keys</key><string>x</string>",
            "public_keys: expected an array of strings",
        ),
        (
            "<key>public_keys</key><array><integer>1</integer></array>",
            "public_keys: expected an array of strings",
        ),
        (
            "<key>allow_unsigned_local_policy</key><string>yes</string>",
            "allow_unsigned_local_policy: expected true or false",
        ),
        (
            "<key>update_source</key><string>manifest</string>",
            "update_source: expected KIND=URL",
        ),
    ] {
        let err = from_plist(&xml_plist(body)).unwrap_err().to_string();
        assert!(err.starts_with(want), "{body}: {err}");
    }
    assert!(matches!(
        from_plist(b"{\"json\": 1}"),
        Err(MdmError::NotPlist(_))
    ));
    assert!(matches!(
        from_plist(br#"<?xml version="1.0"?><plist version="1.0"><array/></plist>"#),
        Err(MdmError::NotDictionary)
    ));
}

#[test]
fn group_policy_values_become_install_config_keys() {
    let values = vec![
        (
            "policy_url".to_owned(),
            RegValue::Sz("https://p.example.com/policy.json".into()),
        ),
        (
            "public_keys".to_owned(),
            RegValue::MultiSz(vec![KEY.into(), "".into(), KEY2.into()]),
        ),
        ("allow_unsigned_local_policy".to_owned(), RegValue::Dword(0)),
        (
            "update_source".to_owned(),
            RegValue::Sz("manifest=https://r.example.com/rampart/stable/manifest.json".into()),
        ),
        (
            "update_public_keys".to_owned(),
            RegValue::Sz(UPDATE_KEY.into()),
        ),
        // An emptied text box is "not configured"; another tool's value is not ours.
        ("extra_ca_file".to_owned(), RegValue::Sz("  ".into())),
        ("SomethingElse".to_owned(), RegValue::Dword(7)),
    ];
    assert_eq!(
        Value::Object(from_registry(&values).unwrap()),
        serde_json::json!({
            "policy_url": "https://p.example.com/policy.json",
            "public_keys": [KEY, KEY2],
            "allow_unsigned_local_policy": false,
            "update_source": {"kind": "manifest", "url": "https://r.example.com/rampart/stable/manifest.json"},
            "update_public_keys": [UPDATE_KEY],
        })
    );
    for (value, want) in [
        (
            ("allow_unsigned_local_policy", RegValue::Dword(2)),
            "expected 0 or 1, not 2",
        ),
        (
            ("policy_url", RegValue::Dword(1)),
            "expected a string value (REG_SZ)",
        ),
        (
            ("public_keys", RegValue::Dword(1)),
            "expected a multi-string value (REG_MULTI_SZ)",
        ),
    ] {
        let err = from_registry(&[(value.0.to_owned(), value.1)])
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("{}: {want}", value.0));
    }
}

fn mdm(channel: Channel, values: Value) -> MdmSettings {
    MdmSettings {
        channel,
        source: "test".into(),
        values: values.as_object().unwrap().clone(),
    }
}

#[test]
fn mdm_wins_per_key_and_each_key_knows_where_it_came_from() {
    let file = format!(
        r#"{{"device_id": "from-file", "policy_url": "https://old.example.com/p.json", "public_keys": ["{KEY}"]}}"#
    );
    let settings = mdm(
        Channel::GroupPolicy,
        serde_json::json!({"policy_url": "https://new.example.com/p.json", "public_keys": [KEY2]}),
    );
    let merged = merge(Some(file.as_bytes()), Some(&settings), "HOST")
        .unwrap()
        .unwrap();
    assert_eq!(merged.config.device_id, "from-file");
    assert_eq!(
        merged.config.policy_url.as_deref(),
        Some("https://new.example.com/p.json")
    );
    assert_eq!(merged.config.public_keys, [KEY2]);
    assert_eq!(merged.origins["device_id"], Origin::File);
    assert_eq!(
        merged.origins["policy_url"],
        Origin::Mdm(Channel::GroupPolicy)
    );

    // MDM alone: the device id is the host name.
    let alone = merge(None, Some(&settings), "HOST").unwrap().unwrap();
    assert_eq!(alone.config.device_id, "HOST");
    assert!(!alone.origins.contains_key("device_id"));

    // Neither: no install config; the file alone: as before.
    assert_eq!(merge(None, None, "HOST").unwrap(), None);
    let empty = mdm(Channel::ManagedPreferences, serde_json::json!({}));
    let plain = merge(Some(file.as_bytes()), Some(&empty), "HOST")
        .unwrap()
        .unwrap();
    assert_eq!(plain.config, InstallConfig::parse(file.as_bytes()).unwrap());
    assert!(plain.origins.values().all(|o| *o == Origin::File));
}

#[test]
fn the_merged_config_obeys_the_install_configs_rules() {
    // A policy URL from MDM without a key anywhere is refused, in the
    // install config's own words.
    let settings = mdm(
        Channel::ManagedPreferences,
        serde_json::json!({"policy_url": "https://p.example.com/policy.json"}),
    );
    let err = merge(None, Some(&settings), "HOST")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("public_keys: a policy_url needs at least one public key"),
        "{err}"
    );
    // A broken file is not mended by MDM.
    let settings = mdm(Channel::GroupPolicy, serde_json::json!({"device_id": "x"}));
    let err = merge(Some(b"{\"device_id\": \"\"}"), Some(&settings), "HOST")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("device_id"), "{err}");
}

#[test]
fn the_managed_preferences_file_is_read_from_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{MACOS_DOMAIN}.plist"));
    assert_eq!(read_managed_preferences(&path).unwrap(), None);
    std::fs::write(
        &path,
        xml_plist("<key>device_id</key><string>MAC-1</string>"),
    )
    .unwrap();
    let read = read_managed_preferences(&path).unwrap().unwrap();
    assert_eq!(read.channel, Channel::ManagedPreferences);
    assert_eq!(
        Value::Object(read.values),
        serde_json::json!({"device_id": "MAC-1"})
    );
    std::fs::write(&path, "not a plist").unwrap();
    let (source, _) = read_managed_preferences(&path).unwrap_err();
    assert_eq!(source, path.display().to_string());
    assert_eq!(
        MACOS_MANAGED_PREFERENCES,
        format!("/Library/Managed Preferences/{MACOS_DOMAIN}.plist")
    );
}

/// The sample profile in packaging/macos: a valid plist whose Rampart
/// payload sets every install-config key and merges into a valid config.
#[test]
fn the_sample_mobileconfig_sets_every_key_and_is_accepted() {
    let bytes = std::fs::read(repo("packaging/macos/rampart.mobileconfig")).unwrap();
    let profile = plist::Value::from_reader(std::io::Cursor::new(&bytes)).unwrap();
    let profile = profile.as_dictionary().unwrap();
    assert_eq!(
        profile.get("PayloadType").and_then(|v| v.as_string()),
        Some("Configuration")
    );
    let payloads = profile.get("PayloadContent").unwrap().as_array().unwrap();
    let ours: Vec<_> = payloads
        .iter()
        .filter_map(|p| p.as_dictionary())
        .filter(|p| p.get("PayloadType").and_then(|v| v.as_string()) == Some(MACOS_DOMAIN))
        .collect();
    assert_eq!(ours.len(), 1, "one payload for {MACOS_DOMAIN}");
    // What macOS writes to the managed preferences: the payload's keys.
    let mut written = Vec::new();
    plist::Value::Dictionary(ours[0].clone())
        .to_writer_xml(&mut written)
        .unwrap();
    let values = from_plist(&written).unwrap();
    let mut set: Vec<&str> = values.keys().map(String::as_str).collect();
    let mut all = key_names();
    set.sort_unstable();
    all.sort_unstable();
    assert_eq!(set, all, "the sample sets every key");
    let settings = MdmSettings {
        channel: Channel::ManagedPreferences,
        source: "sample".into(),
        values,
    };
    // The sample's paths are macOS paths: absolute there (and on every
    // Unix), relative where a path starts with a drive.
    #[cfg(unix)]
    {
        let merged = merge(None, Some(&settings), "HOST").unwrap().unwrap();
        assert_eq!(merged.config.device_id, "$SERIALNUMBER");
    }
    #[cfg(windows)]
    assert!(merge(None, Some(&settings), "HOST").is_err());
}

/// The ADMX template and its en-US ADML: well-formed, in the Group Policy
/// namespace, one policy per install-config key under the agent's registry
/// key with the key's type, and every string and presentation they name
/// defined.
#[test]
fn the_admx_templates_cover_every_key_and_resolve() {
    const NS: &str = "http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions";
    let admx_text = std::fs::read_to_string(repo("packaging/windows/rampart.admx")).unwrap();
    let adml_text = std::fs::read_to_string(repo("packaging/windows/en-US/rampart.adml")).unwrap();
    let admx = roxmltree::Document::parse(&admx_text).unwrap();
    let adml = roxmltree::Document::parse(&adml_text).unwrap();
    assert_eq!(admx.root_element().tag_name().name(), "policyDefinitions");
    assert_eq!(admx.root_element().tag_name().namespace(), Some(NS));
    assert_eq!(
        adml.root_element().tag_name().name(),
        "policyDefinitionResources"
    );
    assert_eq!(adml.root_element().tag_name().namespace(), Some(NS));

    let ids = |doc: &roxmltree::Document, tag: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag))
            .filter_map(|n| n.attribute("id").map(str::to_owned))
            .collect()
    };
    let strings = ids(&adml, "string");
    let presentations = ids(&adml, "presentation");
    let reference = |attr: &str, kind: &str| -> Option<String> {
        attr.strip_prefix(&format!("$({kind}."))
            .and_then(|s| s.strip_suffix(')'))
            .map(str::to_owned)
    };
    for node in admx.descendants().filter(|n| n.is_element()) {
        for attr in node.attributes() {
            if let Some(id) = reference(attr.value(), "string") {
                assert!(strings.contains(&id), "$(string.{id}) is not in the ADML");
            }
            if let Some(id) = reference(attr.value(), "presentation") {
                assert!(
                    presentations.contains(&id),
                    "$(presentation.{id}) is not in the ADML"
                );
            }
        }
    }

    let mut covered = Vec::new();
    for policy in admx.descendants().filter(|n| n.has_tag_name("policy")) {
        assert_eq!(policy.attribute("key"), Some(WINDOWS_POLICY_KEY));
        assert_eq!(policy.attribute("class"), Some("Machine"));
        let (value_name, kind) = match policy.attribute("valueName") {
            Some(name) => (name.to_owned(), KeyKind::Flag),
            None => {
                let element = policy
                    .descendants()
                    .find(|n| n.has_tag_name("text") || n.has_tag_name("multiText"))
                    .expect("a policy without valueName has a text or multiText element");
                let kind = if element.has_tag_name("multiText") {
                    KeyKind::List
                } else {
                    KeyKind::Text
                };
                // The presentation shows a box for this element.
                let id = element.attribute("id").unwrap();
                let presentation =
                    reference(policy.attribute("presentation").unwrap(), "presentation").unwrap();
                let shown = adml
                    .descendants()
                    .find(|n| {
                        n.has_tag_name("presentation") && n.attribute("id") == Some(&presentation)
                    })
                    .unwrap()
                    .descendants()
                    .any(|n| n.attribute("refId") == Some(id));
                assert!(shown, "{id} has no box in presentation {presentation}");
                (element.attribute("valueName").unwrap().to_owned(), kind)
            }
        };
        let want = kind_of(&value_name)
            .unwrap_or_else(|| panic!("{value_name} is not an install config key"));
        // update_source is one KIND=URL string in the registry.
        let want = if want == KeyKind::UpdateSource {
            KeyKind::Text
        } else {
            want
        };
        assert_eq!(kind, want, "{value_name}");
        covered.push(value_name);
    }
    covered.sort_unstable();
    let mut all: Vec<String> = key_names().into_iter().map(str::to_owned).collect();
    all.sort_unstable();
    assert_eq!(covered, all, "one policy per install-config key");
}
