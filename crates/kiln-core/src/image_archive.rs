//! `ImageArchive`: an image in `docker save` form that reuses its parent's
//! layers, for `docker load`. A phase that only changes image config (env,
//! final, the base's labels) becomes one load of a few kilobytes instead of a
//! container create, commit and remove: the engine keeps layers it already
//! has and reads only the manifest and config.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::engine::ImageConfig;

/// What the archive needs of the parent image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentImage {
    /// The parent's layer diff ids (`sha256:…`), bottom first.
    pub layers: Vec<String>,
    pub architecture: String,
    pub os: String,
    /// RFC 3339; kept so the new image's id depends only on its content.
    pub created: String,
}

/// A loadable image: the tar and the id the engine will give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    pub tar: Vec<u8>,
    /// `sha256:` + the digest of the config JSON, as Docker computes it.
    pub image_id: String,
}

/// Docker's JSON form of an image's runtime config.
pub fn config_json(c: &ImageConfig) -> Value {
    let mut m = Map::new();
    m.insert("User".into(), json!(c.user.clone().unwrap_or_default()));
    m.insert("Env".into(), json!(c.env));
    m.insert("Cmd".into(), json!(c.cmd));
    m.insert("Entrypoint".into(), json!(c.entrypoint));
    m.insert(
        "WorkingDir".into(),
        json!(c.working_dir.clone().unwrap_or_default()),
    );
    let ports: Map<String, Value> = c
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), json!({})))
        .collect();
    m.insert(
        "ExposedPorts".into(),
        if ports.is_empty() {
            Value::Null
        } else {
            Value::Object(ports)
        },
    );
    m.insert("Labels".into(), json!(c.labels));
    Value::Object(m)
}

/// An image with `parent`'s layers and `config`, tagged `repo_tags` on load.
pub fn config_only(
    parent: &ParentImage,
    config: &ImageConfig,
    comment: &str,
    repo_tags: &[String],
) -> ImageArchive {
    let image = json!({
        "architecture": parent.architecture,
        "os": parent.os,
        "created": parent.created,
        "config": config_json(config),
        "rootfs": {"type": "layers", "diff_ids": parent.layers},
        "history": [{"created": parent.created, "created_by": comment, "empty_layer": true}],
    });
    let config_bytes = crate::canonical::to_string(&image).into_bytes();
    let digest = hex::encode(Sha256::digest(&config_bytes));
    // Layer paths are never read: the engine has every layer by its chain id.
    let layers: Vec<String> = (0..parent.layers.len())
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    let manifest =
        json!([{"Config": format!("{digest}.json"), "RepoTags": repo_tags, "Layers": layers}]);
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, data)
    };
    // Writing to a Vec cannot fail.
    let _ = add(&format!("{digest}.json"), &config_bytes);
    let _ = add("manifest.json", manifest.to_string().as_bytes());
    let tar = tar.into_inner().unwrap_or_default();
    ImageArchive {
        tar,
        image_id: format!("sha256:{digest}"),
    }
}

/// Writes to `out` an image with `parent`'s layers plus one new layer (the
/// tar at `layer_file`, whose diff id is `layer.diff_id`); returns the image id.
pub fn with_layer(
    parent: &ParentImage,
    config: &ImageConfig,
    comment: &str,
    layer: &crate::layer_tar::Layer,
    layer_file: &std::path::Path,
    out: &std::path::Path,
) -> std::io::Result<String> {
    let mut diff_ids = parent.layers.clone();
    diff_ids.push(layer.diff_id.clone());
    let image = json!({
        "architecture": parent.architecture,
        "os": parent.os,
        "created": parent.created,
        "config": config_json(config),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": parent.created, "created_by": comment}],
    });
    let config_bytes = crate::canonical::to_string(&image).into_bytes();
    let digest = hex::encode(Sha256::digest(&config_bytes));
    let new_layer = format!("{}/layer.tar", layer.diff_id.trim_start_matches("sha256:"));
    let mut layers: Vec<String> = (0..parent.layers.len())
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    layers.push(new_layer.clone());
    let manifest = json!([{"Config": format!("{digest}.json"), "RepoTags": [], "Layers": layers}]);
    let file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut tar = tar::Builder::new(file);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(config_bytes.len() as u64);
    tar.append_data(&mut h.clone(), format!("{digest}.json"), &config_bytes[..])?;
    let manifest = manifest.to_string();
    h.set_size(manifest.len() as u64);
    tar.append_data(&mut h.clone(), "manifest.json", manifest.as_bytes())?;
    h.set_size(layer.size);
    tar.append_data(&mut h, &new_layer, std::fs::File::open(layer_file)?)?;
    tar.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(format!("sha256:{digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> ParentImage {
        ParentImage {
            layers: vec!["sha256:aa".into(), "sha256:bb".into()],
            architecture: "amd64".into(),
            os: "linux".into(),
            created: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_same_config_gives_the_same_id() {
        let c = ImageConfig {
            env: vec!["A=1".into()],
            ..Default::default()
        };
        let a = config_only(&parent(), &c, "x", &[]);
        let b = config_only(&parent(), &c, "x", &["r:t".into()]);
        assert_eq!(a.image_id, b.image_id, "tags are not part of the image");
        let c2 = ImageConfig {
            env: vec!["A=2".into()],
            ..Default::default()
        };
        assert_ne!(a.image_id, config_only(&parent(), &c2, "x", &[]).image_id);
    }

    #[test]
    fn the_archive_holds_a_manifest_naming_every_parent_layer() {
        let a = config_only(&parent(), &ImageConfig::default(), "x", &["r:t".into()]);
        let mut ar = tar::Archive::new(&a.tar[..]);
        let mut names = Vec::new();
        let mut manifest = String::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            if name == "manifest.json" {
                std::io::Read::read_to_string(&mut e, &mut manifest).unwrap();
            }
            names.push(name);
        }
        assert_eq!(names.len(), 2);
        let m: Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(m[0]["Layers"].as_array().unwrap().len(), 2);
        assert_eq!(m[0]["RepoTags"][0], "r:t");
    }
}
