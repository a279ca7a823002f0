//! Pure: what a release feed lists, read the way release engineers write
//! it. Tags are semver with or without a leading `v` (`v0.2.0`,
//! `0.3.0-beta.1`); prereleases order below their release, as semver says,
//! and are offered only on the beta channel. A release whose version cannot
//! be read is set aside and named, never a failure of the whole feed.
//!
//! Two feed formats (docs/updates.md): a static manifest
//! (`{"schema": 1, "releases": [{"version", "assets": [{"name", "url",
//! "size"?}]}]}`, asset URLs relative to the manifest) and a GitHub-style
//! `/releases` list (`tag_name`, `prerelease`, `draft`, `assets[].url` or
//! `browser_download_url`, `size`).

use rampart_shared::policy::UpdateChannel;
use semver::Version as Semver;
use serde::Deserialize;

/// A release as the feed offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub version: Semver,
    /// The tag as the feed wrote it (`v1.2.0`).
    pub tag: String,
    /// GitHub's `prerelease` flag (a semver prerelease is one anyway).
    pub marked_prerelease: bool,
    pub assets: Vec<Asset>,
}

impl Offer {
    pub fn is_prerelease(&self) -> bool {
        self.marked_prerelease || !self.version.pre.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub name: String,
    pub url: String,
    /// Bytes, when the feed says: the download is capped at it.
    pub size: Option<u64>,
}

/// Everything a feed lists: the releases that can be read, and the tags
/// that cannot (said once, plainly; the device carries on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub offers: Vec<Offer>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the release list is not what Rampart reads ({0})")]
    Shape(String),
    #[error("the manifest is schema {0}; this Rampart reads schema 1")]
    Schema(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{tag}\" is not a release version (MAJOR.MINOR.PATCH, optionally with a leading v and a -prerelease)"
)]
pub struct TagError {
    pub tag: String,
}

/// `v1.2.3`, `V1.2.3`, `1.2.3`, `1.3.0-beta.1`: semver, one optional `v`.
pub fn parse_tag(tag: &str) -> Result<Semver, TagError> {
    let trimmed = tag.trim();
    let bare = trimmed
        .strip_prefix('v')
        .or_else(|| trimmed.strip_prefix('V'))
        .unwrap_or(trimmed);
    Semver::parse(bare).map_err(|_| TagError {
        tag: tag.to_owned(),
    })
}

/// A plain release version as semver (the policy's minimum, the floor of
/// older agents).
pub fn semver_of(v: rampart_shared::version::Version) -> Semver {
    Semver::new(v.major, v.minor, v.patch)
}

/// This build's version, prerelease included (a beta build is one).
pub fn running() -> Semver {
    Semver::parse(rampart_shared::RAMPART_VERSION)
        .unwrap_or_else(|_| semver_of(rampart_shared::version::Version::current()))
}

#[derive(Deserialize)]
struct Manifest {
    schema: u64,
    #[serde(default)]
    releases: Vec<ManifestRelease>,
}

#[derive(Deserialize)]
struct ManifestRelease {
    version: String,
    #[serde(default)]
    assets: Vec<ManifestAsset>,
}

#[derive(Deserialize)]
struct ManifestAsset {
    name: String,
    url: String,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct GithubRelease {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    assets: Vec<GithubAsset>,
}

#[derive(Deserialize)]
struct GithubAsset {
    name: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    browser_download_url: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

fn push(listing: &mut Listing, tag: String, prerelease: bool, assets: Vec<Asset>) {
    match parse_tag(&tag) {
        Ok(version) => listing.offers.push(Offer {
            version,
            tag,
            marked_prerelease: prerelease,
            assets,
        }),
        Err(_) => listing.unreadable.push(tag),
    }
}

/// A static manifest. Relative asset URLs are resolved against the
/// manifest's directory.
pub fn parse_manifest(body: &[u8], manifest_url: &str) -> Result<Listing, FeedError> {
    let manifest: Manifest =
        serde_json::from_slice(body).map_err(|e| FeedError::Shape(e.to_string()))?;
    if manifest.schema != 1 {
        return Err(FeedError::Schema(manifest.schema));
    }
    let base = match manifest_url.rfind('/') {
        Some(i) => &manifest_url[..=i],
        None => "",
    };
    let mut listing = Listing::default();
    for release in manifest.releases {
        let assets = release
            .assets
            .into_iter()
            .map(|a| Asset {
                url: if a.url.contains("://") {
                    a.url
                } else {
                    format!("{base}{}", a.url)
                },
                name: a.name,
                size: a.size,
            })
            .collect();
        push(&mut listing, release.version, false, assets);
    }
    Ok(listing)
}

/// A GitHub-style `GET …/releases` list. Drafts are not releases.
pub fn parse_github(body: &[u8]) -> Result<Listing, FeedError> {
    let releases: Vec<GithubRelease> =
        serde_json::from_slice(body).map_err(|e| FeedError::Shape(e.to_string()))?;
    let mut listing = Listing::default();
    for release in releases.into_iter().filter(|r| !r.draft) {
        let assets = release
            .assets
            .into_iter()
            .filter_map(|a| {
                Some(Asset {
                    url: a.url.or(a.browser_download_url)?,
                    name: a.name,
                    size: a.size,
                })
            })
            .collect();
        push(&mut listing, release.tag_name, release.prerelease, assets);
    }
    Ok(listing)
}

/// The newest release the channel may install, skipping the versions this
/// device marked bad. Stable never gets a prerelease.
pub fn newest<'a>(
    listing: &'a Listing,
    channel: UpdateChannel,
    bad: &[Semver],
) -> Option<&'a Offer> {
    listing
        .offers
        .iter()
        .filter(|o| channel == UpdateChannel::Beta || !o.is_prerelease())
        .filter(|o| !bad.contains(&o.version))
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// The OS words an asset name may carry for this build.
fn os_words() -> &'static [&'static str] {
    match std::env::consts::OS {
        "linux" => &["linux"],
        "windows" => &["windows"],
        "macos" => &["apple", "darwin", "macos"],
        other => match other {
            "freebsd" => &["freebsd"],
            _ => &[],
        },
    }
}

/// The archive for this computer: a `.tar.gz` whose name carries this
/// build's architecture (`x86_64`, `aarch64`) and OS word (`linux`,
/// `windows`, `apple`/`darwin`/`macos`), as target triples do.
pub fn asset_for_this_computer(offer: &Offer) -> Option<&Asset> {
    asset_for(offer, std::env::consts::ARCH, os_words())
}

fn asset_for<'a>(offer: &'a Offer, arch: &str, os: &[&str]) -> Option<&'a Asset> {
    offer.assets.iter().find(|a| {
        a.name.ends_with(".tar.gz")
            && a.name.contains(arch)
            && os.iter().any(|word| a.name.contains(word))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Semver {
        Semver::parse(s).unwrap()
    }

    #[test]
    fn tags_are_read_as_release_engineers_write_them() {
        assert_eq!(parse_tag("v0.2.0").unwrap(), v("0.2.0"));
        assert_eq!(parse_tag("V1.0.0").unwrap(), v("1.0.0"));
        assert_eq!(parse_tag("0.3.0-beta.1").unwrap(), v("0.3.0-beta.1"));
        assert_eq!(parse_tag("v0.3.0-rc.2").unwrap(), v("0.3.0-rc.2"));
        for bad in ["nightly", "v", "1.2", "vv1.2.3", ""] {
            assert!(parse_tag(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_tag("nightly").unwrap_err().to_string(),
            "\"nightly\" is not a release version (MAJOR.MINOR.PATCH, optionally with a leading v and a -prerelease)"
        );
    }

    #[test]
    fn prereleases_order_below_their_release_and_only_beta_gets_them() {
        let body = br#"{"schema": 1, "releases": [
            {"version": "v0.2.0", "assets": []},
            {"version": "0.3.0-beta.1", "assets": []},
            {"version": "0.3.0-beta.10", "assets": []},
            {"version": "0.3.0-beta.2", "assets": []},
            {"version": "nightly", "assets": []}
        ]}"#;
        let listing = parse_manifest(body, "https://r.example.com/m.json").unwrap();
        assert_eq!(listing.unreadable, ["nightly"]);
        let stable = newest(&listing, UpdateChannel::Stable, &[]).unwrap();
        assert_eq!(stable.version, v("0.2.0"));
        assert_eq!(stable.tag, "v0.2.0");
        let beta = newest(&listing, UpdateChannel::Beta, &[]).unwrap();
        assert_eq!(beta.version, v("0.3.0-beta.10"), "numeric, not lexical");
        assert!(v("0.3.0-beta.10") < v("0.3.0"));
        // A version marked bad here is never offered again.
        let beta = newest(&listing, UpdateChannel::Beta, &[v("0.3.0-beta.10")]).unwrap();
        assert_eq!(beta.version, v("0.3.0-beta.2"));
    }

    #[test]
    fn github_lists_skip_drafts_and_mark_prereleases() {
        let body = br#"[
            {"tag_name": "v2.0.0", "draft": true, "assets": []},
            {"tag_name": "v1.1.0", "prerelease": true, "assets": [
                {"name": "rampart-agent-1.1.0-x86_64-unknown-linux-gnu.tar.gz",
                 "url": "https://api/1", "size": 10}]},
            {"tag_name": "v1.0.0", "assets": [
                {"name": "rampart-agent-1.0.0-x86_64-unknown-linux-gnu.tar.gz",
                 "browser_download_url": "https://dl/1"}]}
        ]"#;
        let listing = parse_github(body).unwrap();
        assert_eq!(listing.offers.len(), 2);
        let stable = newest(&listing, UpdateChannel::Stable, &[]).unwrap();
        assert_eq!(stable.version, v("1.0.0"));
        assert_eq!(stable.assets[0].url, "https://dl/1");
        let beta = newest(&listing, UpdateChannel::Beta, &[]).unwrap();
        assert_eq!(
            (beta.assets[0].size, beta.version.clone()),
            (Some(10), v("1.1.0"))
        );
    }

    #[test]
    fn manifests_resolve_relative_urls_and_refuse_other_schemas() {
        let body = br#"{"schema": 1, "releases": [{"version": "1.0.0", "assets": [
            {"name": "a.tar.gz", "url": "files/a.tar.gz", "size": 5},
            {"name": "b.tar.gz", "url": "https://cdn.example.com/b.tar.gz"}]}]}"#;
        let listing = parse_manifest(body, "https://r.example.com/stable/manifest.json").unwrap();
        let assets = &listing.offers[0].assets;
        assert_eq!(assets[0].url, "https://r.example.com/stable/files/a.tar.gz");
        assert_eq!(assets[0].size, Some(5));
        assert_eq!(assets[1].url, "https://cdn.example.com/b.tar.gz");
        assert_eq!(
            parse_manifest(br#"{"schema": 2}"#, "x").unwrap_err(),
            FeedError::Schema(2)
        );
        assert!(matches!(
            parse_manifest(b"<html>", "x"),
            Err(FeedError::Shape(_))
        ));
    }

    #[test]
    fn the_asset_is_picked_by_arch_and_os_words() {
        let offer = Offer {
            version: v("1.0.0"),
            tag: "1.0.0".into(),
            marked_prerelease: false,
            assets: [
                "x86_64-pc-windows-msvc",
                "aarch64-apple-darwin",
                "x86_64-unknown-linux-gnu",
            ]
            .iter()
            .map(|t| Asset {
                name: format!("rampart-agent-1.0.0-{t}.tar.gz"),
                url: format!("https://x/{t}"),
                size: None,
            })
            .collect(),
        };
        let pick = |arch, os: &[&str]| asset_for(&offer, arch, os).map(|a| a.url.clone());
        assert_eq!(
            pick("x86_64", &["linux"]).unwrap(),
            "https://x/x86_64-unknown-linux-gnu"
        );
        assert_eq!(
            pick("aarch64", &["apple", "darwin"]).unwrap(),
            "https://x/aarch64-apple-darwin"
        );
        assert_eq!(
            pick("x86_64", &["windows"]).unwrap(),
            "https://x/x86_64-pc-windows-msvc"
        );
        assert_eq!(pick("aarch64", &["linux"]), None);
    }
}
