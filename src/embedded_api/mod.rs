//! Embedded Kubernetes API (test and demo double).
