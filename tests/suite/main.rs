//! syncmail's integration tests: one binary, one module per capability. Tests that need a
//! server start their own private Dovecot (support::Dovecot) and fail loudly without one.

mod support;

mod adopt;
mod architecture;
mod clients;
mod config_check;
mod daemon_bench;
mod daemon_budget;
mod daemon_idle_scripted;
mod daemon_notify;
mod daemon_push;
mod daemon_resilience;
mod daemon_service;
mod disk_full;
mod file_modes;
mod fuzz_corpora;
mod imap_connect;
mod imap_hostile;
mod imap_session;
mod import;
mod maildir_folders;
mod maildir_scan_race;
mod matrix_namespace;
mod matrix_scenarios;
mod matrix_smoke;
mod matrix_upload;
mod peers_smoke;
mod planner_api;
mod pop3_client;
mod pop3_poller;
mod pop3_scripted;
mod profiles;
mod reporting;
mod secrets;
mod store_crash;
mod store_lock;
mod store_recovery;
mod sync_crash;
mod sync_cut;
mod sync_folders;
mod sync_scenarios;
mod tls_certs;
mod unified;
