//! Configuration: raw TOML turned into a validated Config.
