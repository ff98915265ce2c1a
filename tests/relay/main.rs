//! Integration tests: the real relay over real TLS, on SQLite and PostgreSQL. One test binary (faster
//! to build); one module per feature.

mod helpers;

mod age_interop;
mod audit_log;
mod cli;
mod dkim;
mod durability;
mod leaks;
mod mail_outbound;
mod mail_support;
mod oncall;
mod oncall_cli;
mod oncall_support;
mod operations;
mod partner_api;
mod postfix;
mod postfix_support;
mod smtp_inbound;
mod worker_api;
