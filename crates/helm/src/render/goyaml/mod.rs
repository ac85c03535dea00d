//! YAML as Helm reads and writes it (go-yaml v2 under `sigs.k8s.io/yaml`).

pub(crate) mod compat;
pub(crate) mod emit;
pub(crate) mod libyaml;
pub(crate) mod load;
pub(crate) mod resolve;
