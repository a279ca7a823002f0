//! The install config as MDM delivers it: macOS managed preferences (what a
//! Jamf or Intune configuration profile writes to
//! `/Library/Managed Preferences/dev.rampart.agent.plist`) and Windows Group
//! Policy (`HKLM\SOFTWARE\Policies\Rampart`, what a GPO or Intune's ADMX
//! ingestion writes). Both are read as data into the install config's own
//! keys, then merged over the file: **MDM wins per key**, and every key
//! remembers where it came from ([`Merged::origins`]).
//!
//! Parsing is pure ([`from_plist`], [`from_registry`]) and tested on every
//! OS; only the registry read is Windows-only (`winsec::ffi`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{ConfigError, InstallConfig, InstallConfigError, MAX_INSTALL_CONFIG_BYTES};
use crate::fsutil;

/// The managed-preferences domain: the package's identifier and the
/// LaunchDaemon's label (packaging/macos).
pub const MACOS_DOMAIN: &str = "dev.rampart.agent";
/// Where macOS puts a configuration profile's settings for the domain.
pub const MACOS_MANAGED_PREFERENCES: &str = "/Library/Managed Preferences/dev.rampart.agent.plist";
/// The Group Policy key (HKEY_LOCAL_MACHINE).
pub const WINDOWS_POLICY_KEY: &str = r"SOFTWARE\Policies\Rampart";

/// Every install-config key MDM may set, with its type; the same names as
/// in `agent.json` (a test keeps this list equal to the struct's fields,
/// and the .mobileconfig and ADMX templates to this list).
pub const KEYS: &[(&str, KeyKind)] = &[
    ("device_id", KeyKind::Text),
    ("policy_url", KeyKind::Text),
    ("public_keys", KeyKind::List),
    ("allow_unsigned_local_policy", KeyKind::Flag),
    ("update_public_keys", KeyKind::List),
    ("update_source", KeyKind::UpdateSource),
    ("extra_ca_file", KeyKind::Text),
    ("report_secret_file", KeyKind::Text),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A string (REG_SZ).
    Text,
    /// A list of strings (REG_MULTI_SZ; a plist array).
    List,
    /// A boolean (REG_DWORD 0 or 1; a plist bool).
    Flag,
    /// `{"kind": ..., "url": ...}` (a plist dict); in the registry one
    /// REG_SZ `KIND=URL`, as `rampart-installer --update-source` takes it.
    UpdateSource,
}

/// Which MDM channel a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    ManagedPreferences,
    GroupPolicy,
}

impl Channel {
    pub fn label(self) -> &'static str {
        match self {
            Self::ManagedPreferences => "managed preferences (MDM profile)",
            Self::GroupPolicy => "Group Policy (HKLM\\SOFTWARE\\Policies\\Rampart)",
        }
    }
}

/// Where one key's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    File,
    Mdm(Channel),
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Self::File => "install config file",
            Self::Mdm(channel) => channel.label(),
        }
    }
}

/// The install config in force and where each key came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub config: InstallConfig,
    pub origins: BTreeMap<String, Origin>,
}

/// MDM's settings, already in the install config's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct MdmSettings {
    pub channel: Channel,
    /// The plist's path or the registry key, for messages.
    pub source: String,
    pub values: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum MdmError {
    #[error("not a property list: {0}")]
    NotPlist(String),
    #[error("cannot read the registry key: {0}")]
    Registry(String),
    #[error("the property list is not a dictionary of settings")]
    NotDictionary,
    #[error("{key}: {why}")]
    Key { key: String, why: String },
}

fn key_error(key: &str, why: impl Into<String>) -> MdmError {
    MdmError::Key {
        key: key.to_owned(),
        why: why.into(),
    }
}

fn kind_of(key: &str) -> Option<KeyKind> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// A managed-preferences plist (XML or binary) as install-config keys.
/// macOS adds its own bookkeeping to the file (`PayloadUUID` and the like
/// from the profile, `PolicyBannerText`...): keys starting with `Payload`
/// are skipped; any other key the install config does not have is an
/// error, like an unknown field in `agent.json`.
pub fn from_plist(bytes: &[u8]) -> Result<Map<String, Value>, MdmError> {
    let value = plist::Value::from_reader(std::io::Cursor::new(bytes))
        .map_err(|e| MdmError::NotPlist(e.to_string()))?;
    let dict = value.into_dictionary().ok_or(MdmError::NotDictionary)?;
    let mut out = Map::new();
    for (key, value) in dict {
        if key.starts_with("Payload") {
            continue;
        }
        let kind = kind_of(&key).ok_or_else(|| {
            key_error(
                &key,
                "not an install config key (misspelt? docs/policy.md lists them)",
            )
        })?;
        let json = match (kind, value) {
            (KeyKind::Text, plist::Value::String(s)) => Value::String(s),
            (KeyKind::Flag, plist::Value::Boolean(b)) => Value::Bool(b),
            (KeyKind::Flag, plist::Value::Integer(i)) => match i.as_unsigned() {
                Some(0) => Value::Bool(false),
                Some(1) => Value::Bool(true),
                _ => return Err(key_error(&key, "expected true or false")),
            },
            (KeyKind::List, plist::Value::Array(items)) => Value::Array(
                items
                    .into_iter()
                    .map(|item| match item {
                        plist::Value::String(s) => Ok(Value::String(s)),
                        _ => Err(key_error(&key, "expected an array of strings")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (KeyKind::UpdateSource, plist::Value::Dictionary(d)) => {
                let text = |name: &str| match d.get(name) {
                    Some(plist::Value::String(s)) => Ok(Value::String(s.clone())),
                    _ => Err(key_error(
                        &key,
                        format!("expected a dictionary with a string \"{name}\""),
                    )),
                };
                serde_json::json!({"kind": text("kind")?, "url": text("url")?})
            }
            (KeyKind::UpdateSource, plist::Value::String(s)) => update_source_text(&key, &s)?,
            (kind, _) => return Err(key_error(&key, expected(kind))),
        };
        out.insert(key, json);
    }
    Ok(out)
}

fn expected(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Text => "expected a string",
        KeyKind::List => "expected an array of strings",
        KeyKind::Flag => "expected true or false",
        KeyKind::UpdateSource => "expected a dictionary with \"kind\" and \"url\"",
    }
}

/// `KIND=URL`, as `rampart-installer --update-source` takes it.
fn update_source_text(key: &str, text: &str) -> Result<Value, MdmError> {
    let (kind, url) = text.split_once('=').ok_or_else(|| {
        key_error(
            key,
            "expected KIND=URL, e.g. manifest=https://releases.example.com/rampart/manifest.json",
        )
    })?;
    Ok(serde_json::json!({"kind": kind.trim(), "url": url.trim()}))
}

/// A registry value as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegValue {
    Sz(String),
    Dword(u32),
    MultiSz(Vec<String>),
    /// Any other registry type (its number), refused by [`from_registry`].
    Other(u32),
}

/// The values under the Group Policy key as install-config keys. Empty
/// strings and empty lists are "not configured" (an ADMX policy set to
/// Disabled deletes its value; an emptied text box leaves "").
pub fn from_registry(values: &[(String, RegValue)]) -> Result<Map<String, Value>, MdmError> {
    let mut out = Map::new();
    for (name, value) in values {
        let Some(kind) = kind_of(name) else {
            // Other tools may share the key; only ours are read.
            continue;
        };
        let json = match (kind, value) {
            (_, RegValue::Sz(s)) if s.trim().is_empty() => continue,
            (KeyKind::Text, RegValue::Sz(s)) => Value::String(s.clone()),
            (KeyKind::Flag, RegValue::Dword(0)) => Value::Bool(false),
            (KeyKind::Flag, RegValue::Dword(1)) => Value::Bool(true),
            (KeyKind::Flag, RegValue::Dword(n)) => {
                return Err(key_error(name, format!("expected 0 or 1, not {n}")));
            }
            (KeyKind::List, RegValue::MultiSz(items)) => {
                let items: Vec<Value> = items
                    .iter()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect();
                if items.is_empty() {
                    continue;
                }
                Value::Array(items)
            }
            // One key a line typed into a REG_SZ: accepted too.
            (KeyKind::List, RegValue::Sz(s)) => Value::Array(
                s.split([';', '\n'])
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| Value::String(k.to_owned()))
                    .collect(),
            ),
            (KeyKind::UpdateSource, RegValue::Sz(s)) => update_source_text(name, s)?,
            (kind, _) => {
                let want = match kind {
                    KeyKind::Text | KeyKind::UpdateSource => "expected a string value (REG_SZ)",
                    KeyKind::List => "expected a multi-string value (REG_MULTI_SZ)",
                    KeyKind::Flag => "expected a DWORD value (REG_DWORD)",
                };
                return Err(key_error(name, want));
            }
        };
        out.insert(name.clone(), json);
    }
    Ok(out)
}

/// The file's keys, then MDM's over them (MDM wins per key); checked with
/// the install config's own rules. A device id nobody gave (a GPO serves
/// every computer alike) is the host name. `Ok(None)`: neither exists.
pub fn merge(
    file: Option<&[u8]>,
    mdm: Option<&MdmSettings>,
    default_device_id: &str,
) -> Result<Option<Merged>, InstallConfigError> {
    let mut object = match file {
        None => Map::new(),
        Some(bytes) => {
            // The file alone must be valid too: a broken file is not
            // mended by MDM silently.
            InstallConfig::parse(bytes)?;
            match serde_json::from_slice(bytes).map_err(InstallConfigError::Json)? {
                Value::Object(map) => map,
                _ => Map::new(),
            }
        }
    };
    let Some(mdm) = mdm.filter(|m| !m.values.is_empty()) else {
        return file
            .map(|bytes| -> Result<_, InstallConfigError> {
                let config = InstallConfig::parse(bytes)?;
                let origins = object.keys().map(|k| (k.clone(), Origin::File)).collect();
                Ok(Merged { config, origins })
            })
            .transpose();
    };
    let mut origins: BTreeMap<String, Origin> =
        object.keys().map(|k| (k.clone(), Origin::File)).collect();
    for (key, value) in &mdm.values {
        object.insert(key.clone(), value.clone());
        origins.insert(key.clone(), Origin::Mdm(mdm.channel));
    }
    if !object.contains_key("device_id") {
        object.insert(
            "device_id".into(),
            Value::String(default_device_id.to_owned()),
        );
    }
    let bytes = serde_json::to_vec(&Value::Object(object)).map_err(InstallConfigError::Json)?;
    let config = InstallConfig::parse(&bytes)?;
    Ok(Some(Merged { config, origins }))
}

/// The install config in force: the file at `path` merged with what MDM set
/// on this OS. Errors name the file or the MDM source.
pub fn load_effective(path: &Path) -> Result<Option<Merged>, ConfigError> {
    let file = fsutil::read_capped(path, MAX_INSTALL_CONFIG_BYTES)?;
    let mdm = read_mdm().map_err(|(source, error)| ConfigError::Mdm {
        origin: source,
        error,
    })?;
    let host = crate::report::hostname();
    let host = if host.trim().is_empty() {
        "unnamed-device".to_owned()
    } else {
        host
    };
    merge(file.as_deref(), mdm.as_ref(), &host).map_err(|error| {
        let path = match &mdm {
            Some(m) if !m.values.is_empty() => {
                PathBuf::from(format!("{} merged with {}", path.display(), m.source))
            }
            _ => path.to_owned(),
        };
        ConfigError::Invalid { path, error }
    })
}

/// What MDM set on this OS, if anything.
fn read_mdm() -> Result<Option<MdmSettings>, (String, MdmError)> {
    #[cfg(target_os = "macos")]
    {
        read_managed_preferences(Path::new(MACOS_MANAGED_PREFERENCES))
    }
    #[cfg(windows)]
    {
        let source = format!(r"HKLM\{WINDOWS_POLICY_KEY}");
        let names: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        let values = match crate::winsec::ffi::read_policy_values(WINDOWS_POLICY_KEY, &names) {
            Ok(Some(values)) => values,
            Ok(None) => return Ok(None),
            Err(e) => return Err((source, MdmError::Registry(e.to_string()))),
        };
        let values = from_registry(&values).map_err(|e| (source.clone(), e))?;
        Ok(Some(MdmSettings {
            channel: Channel::GroupPolicy,
            source,
            values,
        }))
    }
    #[cfg(not(any(target_os = "macos", windows)))]
    {
        // Linux fleets configure through the file (a package, Ansible...).
        Ok(None)
    }
}

/// The managed-preferences plist at `path`, if there is one. Reading a file
/// is the same on every OS, so tests run this on Linux.
pub fn read_managed_preferences(path: &Path) -> Result<Option<MdmSettings>, (String, MdmError)> {
    let source = path.display().to_string();
    let bytes = match fsutil::read_capped(path, MAX_INSTALL_CONFIG_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) => return Err((source, MdmError::NotPlist(e.to_string()))),
    };
    let values = from_plist(&bytes).map_err(|e| (source.clone(), e))?;
    Ok(Some(MdmSettings {
        channel: Channel::ManagedPreferences,
        source,
        values,
    }))
}

#[cfg(test)]
mod tests;
