//! kiln-core's one integration-test binary (`cargo test -p kiln-core --test it`),
//! one module per room, in data order: config, keys, plan, executor, then the
//! engine seam and what is read on the host. Filter by module, e.g.
//! `cargo test -p kiln-core --test it plan_cases`.

mod config_cases;
mod config_expand;
mod config_fuzz;
mod config_include;
mod config_snapshots;
mod executor_fake;
mod key_props;
mod plan_cases;
mod plan_steps;
mod services_cases;
mod step_props;

mod engine_contract;
mod registry_config;
mod registry_contract;
mod registry_ops;
mod registry_policy;
mod registry_push;

mod cache_oracle;
mod cache_prune;

mod host_bootstrap;
mod host_copies;
mod host_layers;
mod host_repo;
mod host_tool;
mod layers_differential;

mod never_stale;

mod support;
