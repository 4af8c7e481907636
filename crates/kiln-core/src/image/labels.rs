//! The labels of SPEC §4, in one place: what kiln writes on its images,
//! containers and volumes, and reads back to find its snapshots and members.
//! The executor and instances put them into specs; the engine never names one.

/// On every image, container and volume kiln makes: the habitat's name.
pub const LABEL_HABITAT: &str = "dev.kiln.habitat";
/// On a snapshot: its phase's tag (`6-setup`).
pub const LABEL_PHASE: &str = "dev.kiln.phase";
/// On a snapshot: the phase's full key.
pub const LABEL_KEY: &str = "dev.kiln.key";
/// On a snapshot: the previous phase's key.
pub const LABEL_PARENT: &str = "dev.kiln.parent";
/// On a snapshot: the canonical inputs its key was computed from.
pub const LABEL_INPUTS: &str = "dev.kiln.inputs";
/// On a step snapshot inside a phase (SPEC §5): its step's tag (`6-setup.3`).
/// The last step's image is also the phase's snapshot and carries the
/// phase's labels too; the others carry none of them.
pub const LABEL_STEP: &str = "dev.kiln.step";
/// On a step snapshot: the step's full key.
pub const LABEL_STEP_KEY: &str = "dev.kiln.step-key";
/// On a step snapshot: the canonical input its key was computed from.
pub const LABEL_STEP_INPUTS: &str = "dev.kiln.step-inputs";
/// On a step snapshot: how long the step itself took, in milliseconds
/// (SPEC §11). On the last step's image `dev.kiln.duration-ms` is the whole
/// phase's time; on an earlier step's the two agree.
pub const LABEL_STEP_DURATION: &str = "dev.kiln.step-duration-ms";
/// On a snapshot: how long its phase took to build, in milliseconds (SPEC §11),
/// what a prune estimates the next build's cost from.
pub const LABEL_DURATION: &str = "dev.kiln.duration-ms";
/// On a final image with `services:`: how long its init may take to stop
/// (every grace, SPEC §9), in milliseconds; `kiln up` gives members a stop
/// timeout that covers it.
pub const LABEL_STOP_BUDGET: &str = "dev.kiln.stop-budget-ms";
/// Marks a final image whose build passed verify with this verify key.
pub const LABEL_VERIFIED: &str = "dev.kiln.verified";
/// On every bootstrap image: its parameters' key.
pub const LABEL_BOOTSTRAP: &str = "dev.kiln.bootstrap";
/// On every bootstrap image: the canonical parameters the key was computed from.
pub const LABEL_BOOTSTRAP_PARAMS: &str = "dev.kiln.bootstrap.params";
/// On an instance container: the member's name (its container is `HABITAT-MEMBER`).
pub const LABEL_INSTANCE: &str = "dev.kiln.instance";
/// On an instance container: the final key of the image it runs.
pub const LABEL_IMAGE_KEY: &str = "dev.kiln.image-key";
/// On an instance container: the hash of the member's resolved config.
pub const LABEL_CONFIG_HASH: &str = "dev.kiln.config-hash";
/// On an instance container: the member's resolved config field by field
/// (canonical JSON; env values as digests), so `up` and `ps` can name what
/// changed since it was made.
pub const LABEL_MEMBER_FIELDS: &str = "dev.kiln.member-fields";
/// On an instance container and a persisted volume: the habitat directory it
/// was made from (SPEC §7). Instance commands act only on what carries theirs.
pub const LABEL_DIR: &str = "dev.kiln.dir";
/// On a persisted volume: the path in the container it is mounted at.
pub const LABEL_PERSIST: &str = "dev.kiln.persist";
/// On a persisted volume filled from a volume of an older kiln's naming: that
/// volume's name. The old one is removed last, so both existing means the
/// move did not finish.
pub const LABEL_MIGRATED_FROM: &str = "dev.kiln.migrated-from";
