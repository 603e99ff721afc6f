//! The workspace-hack crate: no code, only dependencies with the union of the features
//! any build of the workspace asks for, so that every command resolves one feature set.
//! `cargo hakari generate` writes its Cargo.toml; see `.config/hakari.toml`.
