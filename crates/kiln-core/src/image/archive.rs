//! `ImageArchive`: an image in `docker save` form that reuses its parent's
//! layers, for `docker load`. A phase that only changes image config (env,
//! final, the base's labels) becomes one load of a few kilobytes instead of a
//! container create, commit and remove: the engine keeps layers it already
//! has and reads only the manifest and config.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::engine::{ImageConfig, ImageInfo};

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

/// Docker's JSON form of an image's runtime config. An empty command or
/// entrypoint is written as unset, which is what it means in an image and
/// how the engine reports it back, so [`is_kiln_image`] can rebuild it.
pub fn config_json(c: &ImageConfig) -> Value {
    let set = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
    let mut m = Map::new();
    m.insert("User".into(), json!(c.user.clone().unwrap_or_default()));
    m.insert("Env".into(), json!(c.env));
    m.insert("Cmd".into(), json!(set(&c.cmd)));
    m.insert("Entrypoint".into(), json!(set(&c.entrypoint)));
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
    // Only when set, so the ids of images without one stay as they were;
    // zeros left out, as the engine leaves them out when it reports one.
    if let Some(h) = &c.healthcheck {
        let mut hc = Map::new();
        hc.insert("Test".into(), json!(h.test));
        for (name, value) in [
            ("Interval", h.interval_ns),
            ("Timeout", h.timeout_ns),
            ("StartPeriod", h.start_period_ns),
            ("Retries", h.retries),
        ] {
            if value != 0 {
                hc.insert(name.into(), json!(value));
            }
        }
        m.insert("Healthcheck".into(), Value::Object(hc));
    }
    Value::Object(m)
}

/// An image with `parent`'s layers and `config`, tagged `repo_tags` on load.
pub fn config_only(
    parent: &ParentImage,
    config: &ImageConfig,
    comment: &str,
    repo_tags: &[String],
) -> ImageArchive {
    let (config_bytes, digest, manifest) = image_files(parent, config, comment, repo_tags, None);
    let mut tar = tar::Builder::new(Vec::new());
    let mut add =
        |name: &str, data: &[u8]| tar.append_data(&mut file_header(data.len()), name, data);
    // Writing to a Vec cannot fail.
    let _ = add(&format!("{digest}.json"), &config_bytes);
    let _ = add("manifest.json", manifest.as_bytes());
    let tar = tar.into_inner().unwrap_or_default();
    ImageArchive {
        tar,
        image_id: format!("sha256:{digest}"),
    }
}

/// Writes to `out` an image with `parent`'s layers plus one new layer, which
/// `write_layer` streams straight into the archive (returning its diff id and
/// size): the layer is written once, never copied from a file of its own.
/// Tagged `repo_tags` on load. Returns the image id and the layer.
///
/// The layer comes first in the archive, its header filled in afterwards, and
/// the config after it: `docker load` unpacks the whole archive before it reads
/// the manifest, so entry order does not matter to it.
pub fn write_with_layer<F>(
    parent: &ParentImage,
    config: &ImageConfig,
    comment: &str,
    repo_tags: &[String],
    out: &std::path::Path,
    write_layer: F,
) -> std::io::Result<(String, crate::image::layer::Layer)>
where
    F: FnOnce(
        &mut dyn crate::image::layer::LayerOut,
    ) -> std::io::Result<crate::image::layer::Layer>,
{
    use crate::image::layer::Watched;
    use std::io::{Seek, SeekFrom, Write};
    // Readable too: the layer writer may read back and rewrite what it wrote.
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)?;
    let mut file = Watched::new(file);
    let write_all = |file: &mut Watched<std::fs::File>| -> std::io::Result<_> {
        file.write_all(&[0u8; 512])?;
        // The layer writer gets the file itself and leaves it at the layer's end.
        let layer = write_layer(file)?;
        let mut file = std::io::BufWriter::new(file);
        let pad = (512 - (layer.size % 512) as usize) % 512;
        file.write_all(&vec![0u8; pad])?;

        let (config_bytes, digest, manifest) =
            image_files(parent, config, comment, repo_tags, Some(&layer.diff_id));
        let new_layer = layer_path(&layer.diff_id);
        let mut tar = tar::Builder::new(&mut file);
        tar.append_data(
            &mut file_header(config_bytes.len()),
            format!("{digest}.json"),
            &config_bytes[..],
        )?;
        tar.append_data(
            &mut file_header(manifest.len()),
            "manifest.json",
            manifest.as_bytes(),
        )?;
        let file = tar.into_inner()?;
        let mut h = file_header(layer.size as usize);
        h.set_path(&new_layer)?;
        h.set_cksum();
        file.seek(SeekFrom::Start(0))?;
        file.write_all(h.as_bytes())?;
        file.flush()?;
        Ok((format!("sha256:{digest}"), layer))
    };
    let written = write_all(&mut file);
    match written {
        // The archive could not be written (a full disk): say where, since
        // nothing else in the message names the file.
        Err(e) if file.failed() => Err(std::io::Error::new(
            e.kind(),
            format!("cannot write `{}`: {e}", out.display()),
        )),
        other => other,
    }
}

/// Whether `info` is an image kiln's archives make: its id (the digest of
/// its config JSON, which the engine verifies on load) is the digest of the
/// config JSON kiln would write for what the inspection shows, with
/// `comment` as its history. Anything another tool makes or changes (a
/// `docker commit`, a `docker build` on a kiln image, a retag of either) has
/// other config bytes, whatever labels it copied, so another id. Images
/// kiln commits in a container are not of this form: kiln records their ids
/// when it makes them.
pub fn is_kiln_image(info: &ImageInfo, comment: &str) -> bool {
    let Some(hex) = info.id.strip_prefix("sha256:") else {
        return false;
    };
    let parent = |layers: &[String]| ParentImage {
        layers: layers.to_vec(),
        architecture: info.architecture.clone(),
        os: info.os.clone(),
        created: info.created.clone(),
    };
    // A config-only image (every layer its parent's), or one with a new top layer.
    let config_only = image_json(&parent(&info.layers), &info.config, comment, None);
    let with_layer = info
        .layers
        .split_last()
        .map(|(top, below)| image_json(&parent(below), &info.config, comment, Some(top.as_str())));
    std::iter::once(config_only)
        .chain(with_layer)
        .any(|bytes| hex::encode(Sha256::digest(&bytes)) == hex)
}

/// The image config JSON of `parent`'s layers (plus `new_layer`, a diff
/// id), in the canonical bytes whose digest is the image id.
fn image_json(
    parent: &ParentImage,
    config: &ImageConfig,
    comment: &str,
    new_layer: Option<&str>,
) -> Vec<u8> {
    let mut diff_ids = parent.layers.clone();
    diff_ids.extend(new_layer.map(str::to_string));
    let history = match new_layer {
        Some(_) => json!({"created": parent.created, "created_by": comment}),
        None => json!({"created": parent.created, "created_by": comment, "empty_layer": true}),
    };
    let image = json!({
        "architecture": parent.architecture,
        "os": parent.os,
        "created": parent.created,
        "config": config_json(config),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [history],
    });
    crate::keys::canonical::to_string(&image).into_bytes()
}

/// The image config JSON of `parent`'s layers (plus `new_layer`, a diff id),
/// its digest (the image id), and the manifest that loads it as `repo_tags`.
fn image_files(
    parent: &ParentImage,
    config: &ImageConfig,
    comment: &str,
    repo_tags: &[String],
    new_layer: Option<&str>,
) -> (Vec<u8>, String, String) {
    let config_bytes = image_json(parent, config, comment, new_layer);
    let digest = hex::encode(Sha256::digest(&config_bytes));
    // The parent's layer paths are never read: the engine has every layer by
    // its chain id.
    let mut layers: Vec<String> = (0..parent.layers.len())
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    layers.extend(new_layer.map(layer_path));
    let manifest =
        json!([{"Config": format!("{digest}.json"), "RepoTags": repo_tags, "Layers": layers}])
            .to_string();
    (config_bytes, digest, manifest)
}

/// Where the archive holds the new layer with this diff id.
fn layer_path(diff_id: &str) -> String {
    format!("{}/layer.tar", diff_id.trim_start_matches("sha256:"))
}

fn file_header(size: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size as u64);
    h
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
    fn a_layer_streamed_into_the_archive_is_its_first_entry_with_a_true_header() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("image.tar");
        let content = b"a layer of 21 bytes!\n".to_vec();
        let (id, layer) = write_with_layer(
            &parent(),
            &ImageConfig::default(),
            "x",
            &["r:t".into()],
            &out,
            |w| {
                std::io::Write::write_all(w, &content)?;
                Ok(crate::image::layer::Layer {
                    diff_id: "sha256:cc".into(),
                    size: content.len() as u64,
                    entries: 1,
                })
            },
        )
        .unwrap();
        assert_eq!(layer.size, 21);
        let bytes = std::fs::read(&out).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut seen = BTreeMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            seen.insert(name, data);
        }
        assert_eq!(seen.get("cc/layer.tar"), Some(&content));
        let config_name = format!("{}.json", id.trim_start_matches("sha256:"));
        let config: Value = serde_json::from_slice(&seen[&config_name]).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!(["sha256:aa", "sha256:bb", "sha256:cc"])
        );
        let m: Value = serde_json::from_slice(&seen["manifest.json"]).unwrap();
        assert_eq!(m[0]["Layers"][2], "cc/layer.tar");
        assert_eq!(m[0]["RepoTags"], json!(["r:t"]));
        assert_eq!(
            hex::encode(Sha256::digest(&seen[&config_name])),
            id.trim_start_matches("sha256:"),
            "the id is the digest of the config"
        );
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

    fn info(id: &str, layers: Vec<String>, config: &ImageConfig) -> ImageInfo {
        let p = parent();
        ImageInfo {
            id: id.to_string(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            config: config.clone(),
            layers,
            architecture: p.architecture,
            os: p.os,
            created: p.created,
            size: 0,
            layer_dirs: Vec::new(),
        }
    }

    #[test]
    fn kiln_images_are_recognised_from_their_inspection_and_nothing_else_is() {
        let mut labels = BTreeMap::new();
        labels.insert("dev.kiln.key".to_string(), "k".to_string());
        let c = ImageConfig {
            env: vec!["A=1".into()],
            cmd: Some(vec![]),
            exposed_ports: vec!["3000/tcp".into(), "22/tcp".into()],
            labels,
            ..Default::default()
        };
        let a = config_only(&parent(), &c, "kiln 3-env", &["r:t".into()]);
        // The engine reports an empty command as unset, and ports sorted.
        let reported = ImageConfig {
            cmd: None,
            exposed_ports: vec!["22/tcp".into(), "3000/tcp".into()],
            ..c.clone()
        };
        let layers = parent().layers;
        assert!(is_kiln_image(
            &info(&a.image_id, layers.clone(), &reported),
            "kiln 3-env"
        ));
        assert!(!is_kiln_image(
            &info(&a.image_id, layers.clone(), &reported),
            "kiln 4-habitat"
        ));
        // What `FROM it` + `ENV` makes: the labels, another config.
        let with_env = ImageConfig {
            env: vec!["A=1".into(), "B=2".into()],
            ..reported.clone()
        };
        assert!(!is_kiln_image(
            &info(&a.image_id, layers.clone(), &with_env),
            "kiln 3-env"
        ));
        // What `docker commit` makes: the labels, another layer.
        let mut more = layers.clone();
        more.push("sha256:dd".into());
        assert!(!is_kiln_image(
            &info(&a.image_id, more, &reported),
            "kiln 3-env"
        ));
        // Any id but the config's own digest.
        assert!(!is_kiln_image(
            &info("sha256:00", layers, &reported),
            "kiln 3-env"
        ));

        let dir = tempfile::tempdir().unwrap();
        let (id, _) = write_with_layer(
            &parent(),
            &c,
            "kiln 5-files",
            &[],
            &dir.path().join("i.tar"),
            |_| {
                Ok(crate::image::layer::Layer {
                    diff_id: "sha256:cc".into(),
                    size: 0,
                    entries: 1,
                })
            },
        )
        .unwrap();
        let mut layered = parent().layers;
        layered.push("sha256:cc".into());
        assert!(is_kiln_image(
            &info(&id, layered, &reported),
            "kiln 5-files"
        ));
    }
}
