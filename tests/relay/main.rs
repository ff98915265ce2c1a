//! Integration tests: the real relay over real TLS, on SQLite and PostgreSQL. One test binary (faster
//! to build); one module per feature.

mod helpers;

mod age_interop;
mod audit_log;
mod cli;
mod dkim;
mod durability;
mod fake_provider;
mod leaks;
mod mail_outbound;
mod mail_support;
mod oncall;
mod oncall_cli;
mod oncall_phone;
mod oncall_support;
mod operations;
mod partner_api;
mod phone;
mod phone_cli;
mod phone_leaks;
mod phone_selfhosted;
mod postfix;
mod postfix_support;
mod responsiveness;
mod smtp_inbound;
mod telephony_support;
mod web_browser;
mod web_duty;
mod web_pages;
mod web_passkeys;
mod web_phone;
mod web_support;
mod worker_api;
