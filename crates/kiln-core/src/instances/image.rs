//! `kiln up --image REF` (SPEC §10): the members run a pushed image instead
//! of a build, so a deploy machine needs the `kiln.yaml` and a registry, not
//! the build's inputs. `REF` is a tag or a digest in `registry.repository`,
//! or a whole reference; the engine pulls it when it does not hold it, and
//! it must be a final image kiln made of this habitat.

use crate::engine::{Engine, EngineError};
use crate::image::labels::{LABEL_HABITAT, LABEL_KEY, LABEL_PHASE};
use crate::phase::Phase;
use crate::registry::oci::Credentials;
use crate::registry::pull::pull_reported;
use crate::report::{Event, Reporter};

/// Why `--image` cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot get image `{reference}`: {source}")]
    Engine {
        reference: String,
        source: EngineError,
    },
    #[error("`{reference}` is not a final image kiln built (its `{LABEL_PHASE}` is `{phase}`)")]
    NotFinal { reference: String, phase: String },
    #[error("`{reference}` is an image of habitat `{found}`, not of `{wanted}`")]
    OtherHabitat {
        reference: String,
        found: String,
        wanted: String,
    },
}

impl ImageError {
    /// Whether the engine (or the registry it pulls from) failed, rather than the user's reference.
    pub fn is_engine(&self) -> bool {
        matches!(self, ImageError::Engine { .. })
    }
}

/// The reference `image` names: a whole reference (it has a `/`) as it is;
/// else a digest (`sha256:…`) or a tag in `repository` when there is one;
/// else a local image name as it is.
pub fn reference(image: &str, repository: Option<&str>) -> String {
    match repository {
        _ if image.contains('/') => image.to_string(),
        Some(repo) if image.starts_with("sha256:") => format!("{repo}@{image}"),
        Some(repo) => format!("{repo}:{}", image.trim_start_matches(':')),
        None => image.to_string(),
    }
}

/// The registry host of a whole reference: its first component when that
/// looks like a host (a dot, a port, or `localhost`), as Docker reads it.
fn host_of(reference: &str) -> Option<&str> {
    let (first, _) = reference.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// A final image ready to run: the reference, its final key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub reference: String,
    pub final_key: String,
    /// Whether the engine pulled it just now.
    pub pulled: bool,
}

/// Makes sure the engine holds `reference` (pulling it with the user's
/// credentials when it does not, its progress told to `reporter`) and that
/// it is a final image of `habitat`.
pub async fn ensure<E: Engine>(
    engine: &E,
    habitat: &str,
    reference: &str,
    reporter: &mut dyn Reporter,
) -> Result<Pushed, ImageError> {
    let err = |source| ImageError::Engine {
        reference: reference.to_string(),
        source,
    };
    let mut pulled = false;
    let info = match engine.image_inspect(reference).await.map_err(err)? {
        Some(info) => info,
        None => {
            let auth = host_of(reference).and_then(|h| Credentials::from_env().engine_auth(h));
            let image = Phase::Final.tag();
            reporter.report(Event::PullStart {
                image: image.clone(),
                reference: reference.to_string(),
            });
            pull_reported(engine, reference, auth.as_ref(), &image, reporter)
                .await
                .map_err(err)?;
            pulled = true;
            engine
                .image_inspect(reference)
                .await
                .map_err(err)?
                .ok_or_else(|| err(EngineError::NoSuchImage(reference.to_string())))?
        }
    };
    let labels = &info.config.labels;
    let phase = labels.get(LABEL_PHASE).cloned().unwrap_or_default();
    let Some(key) = labels
        .get(LABEL_KEY)
        .filter(|_| phase == Phase::Final.tag())
    else {
        return Err(ImageError::NotFinal {
            reference: reference.to_string(),
            phase,
        });
    };
    let found = labels.get(LABEL_HABITAT).cloned().unwrap_or_default();
    if found != habitat {
        return Err(ImageError::OtherHabitat {
            reference: reference.to_string(),
            found,
            wanted: habitat.to_string(),
        });
    }
    Ok(Pushed {
        reference: reference.to_string(),
        final_key: key.clone(),
        pulled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_or_digest_is_in_the_repository_a_whole_reference_as_it_is() {
        let repo = Some("127.0.0.1:5000/team/app");
        let d = format!("sha256:{}", "a".repeat(64));
        let cases = [
            ("main-abc1234", repo, "127.0.0.1:5000/team/app:main-abc1234"),
            (d.as_str(), repo, &format!("127.0.0.1:5000/team/app@{d}")),
            ("ghcr.io/o/app@sha256:x", repo, "ghcr.io/o/app@sha256:x"),
            ("habitat-web:latest", None, "habitat-web:latest"),
        ];
        for (image, repository, expected) in cases {
            assert_eq!(reference(image, repository), expected, "{image}");
        }
        assert_eq!(host_of("127.0.0.1:5000/team/app:t"), Some("127.0.0.1:5000"));
        assert_eq!(host_of("library/busybox"), None);
    }

    /// On the fake: a pull is told as its start, a layer event per step
    /// the engine gives, and an end whose counts are the pulled image's;
    /// an image the engine holds is not pulled, and tells nothing.
    #[tokio::test]
    async fn ensure_reports_the_pull_and_only_when_it_pulls() {
        use crate::engine::fake::{FakeEngine, FakeFile, FakeFileKind, FakeTree};
        use crate::report::Recorder;
        let engine = FakeEngine::new();
        let reference = "127.0.0.1:5000/team/app:pr-1";
        let mut config = crate::engine::ImageConfig::default();
        for (k, v) in [
            (LABEL_HABITAT, "app"),
            (LABEL_PHASE, "10-final"),
            (LABEL_KEY, "k"),
        ] {
            config.labels.insert(k.to_string(), v.to_string());
        }
        let files = FakeTree::from([(
            "/data".to_string(),
            FakeFile {
                kind: FakeFileKind::File(vec![7; 5000]),
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
        )]);
        engine.add_remote_image(reference, config, files);
        let mut rec = Recorder::default();
        let pushed = ensure(&engine, "app", reference, &mut rec)
            .await
            .expect("ensure");
        assert!(pushed.pulled);
        let layers = engine
            .image_inspect(reference)
            .await
            .expect("inspect")
            .expect("pulled")
            .layers
            .len();
        assert!(
            matches!(&rec.events[0], Event::PullStart { image, reference: r } if image == "10-final" && r == reference),
            "{:?}",
            rec.events
        );
        let Some(Event::PullEnd {
            ok: true,
            layers: n,
            bytes,
            ..
        }) = rec.events.last()
        else {
            panic!("no pull_end: {:?}", rec.events);
        };
        assert_eq!(*n, layers);
        assert_eq!(*bytes, 5000);
        assert!(
            rec.events[1..rec.events.len() - 1]
                .iter()
                .all(|e| matches!(e, Event::PullLayer { .. })),
            "{:?}",
            rec.events
        );

        let mut again = Recorder::default();
        let held = ensure(&engine, "app", reference, &mut again)
            .await
            .expect("ensure");
        assert!(!held.pulled);
        assert_eq!(again.events, Vec::new());
    }
}
