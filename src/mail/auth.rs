//! Sender authentication with mail-auth, in process: DKIM signatures, SPF for the client address
//! (when the relay sees the real client), and DMARC alignment of either with the From domain. The
//! resolver is configurable so that tests run a real DNS server on loopback.

use std::net::{IpAddr, SocketAddr};

use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfResult};

use crate::error::{Error, Result};

/// What the SMTP session knows about its client.
#[derive(Clone, Debug)]
pub struct Client {
    /// The client's address; `None` when the relay cannot see the real client (behind a proxy that
    /// did not pass it on), which rules SPF out.
    pub ip: Option<IpAddr>,
    pub helo: String,
    /// The envelope sender (`MAIL FROM`), empty for the null sender.
    pub mail_from: String,
}

/// The outcome of authenticating the From domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An aligned DKIM signature or an aligned SPF pass vouches for the From domain.
    Pass,
    /// Nothing vouches for it.
    Fail,
    /// DNS did not answer: the sender should try again later.
    TempError,
}

pub struct Authenticator {
    inner: MessageAuthenticator,
    host_domain: String,
}

impl Authenticator {
    /// Uses the resolver at `resolver`, or the system's when `None`.
    pub fn new(resolver: Option<SocketAddr>, host_domain: &str) -> Result<Self> {
        let inner = match resolver {
            Some(address) => {
                let mut server = NameServerConfig::udp_and_tcp(address.ip());
                for connection in &mut server.connections {
                    connection.port = address.port();
                }
                let config = ResolverConfig::from_name_servers(vec![server]);
                let mut options = ResolverOpts::default();
                options.timeout = std::time::Duration::from_secs(5);
                options.attempts = 2;
                MessageAuthenticator::new(config, options)
            }
            None => MessageAuthenticator::new_system_conf(),
        }
        .map_err(|e| Error::invalid(format!("DNS resolver: {e}")))?;
        Ok(Self {
            inner,
            host_domain: host_domain.to_string(),
        })
    }

    /// Authenticates the From domain of `raw` for this client.
    pub async fn verify(&self, raw: &[u8], from_domain: &str, client: &Client) -> Verdict {
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            return Verdict::Fail;
        };
        // A signature limited to the first l= bytes of the body would vouch for whatever an attacker
        // appends: such signatures do not count.
        let dkim: Vec<_> = self
            .inner
            .verify_dkim(&message)
            .await
            .into_iter()
            .filter(|output| output.signature().is_none_or(|s| s.l == 0))
            .collect();
        let spf = match client.ip {
            Some(ip) => {
                let params = if client.mail_from.is_empty() {
                    mail_auth::spf::verify::SpfParameters::verify_ehlo(
                        ip,
                        &client.helo,
                        &self.host_domain,
                    )
                } else {
                    mail_auth::spf::verify::SpfParameters::verify_mail_from(
                        ip,
                        &client.helo,
                        &self.host_domain,
                        &client.mail_from,
                    )
                };
                self.inner.verify_spf(params).await
            }
            None => mail_auth::SpfOutput::default(),
        };
        let mail_from_domain = client
            .mail_from
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_else(|| client.helo.to_ascii_lowercase());
        let dmarc = self
            .inner
            .verify_dmarc(mail_auth::dmarc::verify::DmarcParameters::new(
                &message,
                &dkim,
                &mail_from_domain,
                &spf,
            ))
            .await;
        let strict_dkim = dkim.iter().any(|output| {
            output.result() == &DkimResult::Pass
                && output
                    .signature()
                    .is_some_and(|s| s.d.eq_ignore_ascii_case(from_domain))
        });
        let strict_spf =
            spf.result() == SpfResult::Pass && mail_from_domain.eq_ignore_ascii_case(from_domain);
        // No domain in the log line: an allowed contact's domain can be a family's own.
        tracing::debug!(
            dkim = ?dkim.iter().map(|o| o.result().clone()).collect::<Vec<_>>(),
            spf = ?spf.result(),
            dmarc_dkim = ?dmarc.dkim_result(),
            dmarc_spf = ?dmarc.spf_result(),
            dmarc_record = dmarc.dmarc_record().is_some(),
            "sender authentication"
        );
        decide(Facts {
            dmarc_dkim: dmarc.dkim_result().clone(),
            dmarc_spf: dmarc.spf_result().clone(),
            dmarc_record: dmarc.dmarc_record().is_some(),
            strict_dkim,
            strict_spf,
            dkim_temp_error: dkim
                .iter()
                .any(|o| matches!(o.result(), DkimResult::TempError(_))),
            spf_temp_error: spf.result() == SpfResult::TempError,
        })
    }
}

impl Authenticator {
    /// Whether SPF authorises `ip` to send mail for any of `domains` (the reporting host of a delivery
    /// report is asked this for the recipient's domain and the relay's own).
    pub async fn host_sends_for(&self, ip: IpAddr, helo: &str, domains: &[&str]) -> bool {
        for domain in domains.iter().filter(|d| !d.is_empty()) {
            let sender = format!("postmaster@{domain}");
            let params = mail_auth::spf::verify::SpfParameters::verify_mail_from(
                ip,
                helo,
                &self.host_domain,
                &sender,
            );
            if self.inner.verify_spf(params).await.result() == SpfResult::Pass {
                return true;
            }
        }
        false
    }
}

/// The facts a verdict is made from, so that the rule is tested without DNS.
#[derive(Clone, Debug)]
pub struct Facts {
    pub dmarc_dkim: DmarcResult,
    pub dmarc_spf: DmarcResult,
    pub dmarc_record: bool,
    /// A passing DKIM signature whose d= is exactly the From domain.
    pub strict_dkim: bool,
    /// SPF passes and the envelope domain is exactly the From domain.
    pub strict_spf: bool,
    pub dkim_temp_error: bool,
    pub spf_temp_error: bool,
}

/// DMARC-aligned DKIM or SPF passes. Where the From domain publishes no DMARC record, alignment is
/// strict (same domain). A DNS failure on the way is a temporary error, never a pass.
pub fn decide(facts: Facts) -> Verdict {
    if facts.dmarc_dkim == DmarcResult::Pass || facts.dmarc_spf == DmarcResult::Pass {
        return Verdict::Pass;
    }
    if !facts.dmarc_record && (facts.strict_dkim || facts.strict_spf) {
        return Verdict::Pass;
    }
    let temp = |r: &DmarcResult| matches!(r, DmarcResult::TempError(_));
    if temp(&facts.dmarc_dkim)
        || temp(&facts.dmarc_spf)
        || (!facts.dmarc_record && (facts.dkim_temp_error || facts.spf_temp_error))
    {
        return Verdict::TempError;
    }
    Verdict::Fail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            dmarc_dkim: DmarcResult::None,
            dmarc_spf: DmarcResult::None,
            dmarc_record: true,
            strict_dkim: false,
            strict_spf: false,
            dkim_temp_error: false,
            spf_temp_error: false,
        }
    }

    #[test]
    fn aligned_dkim_or_spf_passes() {
        assert_eq!(
            decide(Facts {
                dmarc_dkim: DmarcResult::Pass,
                ..facts()
            }),
            Verdict::Pass
        );
        assert_eq!(
            decide(Facts {
                dmarc_spf: DmarcResult::Pass,
                ..facts()
            }),
            Verdict::Pass
        );
    }

    #[test]
    fn nothing_aligned_fails() {
        assert_eq!(decide(facts()), Verdict::Fail);
        let unaligned = Facts {
            dmarc_dkim: DmarcResult::Fail(mail_auth::Error::NotAligned),
            dmarc_spf: DmarcResult::Fail(mail_auth::Error::NotAligned),
            ..facts()
        };
        assert_eq!(decide(unaligned), Verdict::Fail);
        // With a DMARC record, a strict match alone is not asked for: DMARC already judged.
        assert_eq!(
            decide(Facts {
                strict_dkim: true,
                ..facts()
            }),
            Verdict::Fail
        );
    }

    #[test]
    fn without_dmarc_record_alignment_is_strict() {
        let no_record = Facts {
            dmarc_record: false,
            ..facts()
        };
        assert_eq!(decide(no_record.clone()), Verdict::Fail);
        assert_eq!(
            decide(Facts {
                strict_dkim: true,
                ..no_record.clone()
            }),
            Verdict::Pass
        );
        assert_eq!(
            decide(Facts {
                strict_spf: true,
                ..no_record
            }),
            Verdict::Pass
        );
    }

    #[test]
    fn dns_trouble_is_temporary() {
        let temp = DmarcResult::TempError(mail_auth::Error::NotAligned);
        assert_eq!(
            decide(Facts {
                dmarc_dkim: temp,
                ..facts()
            }),
            Verdict::TempError
        );
        let no_record = Facts {
            dmarc_record: false,
            spf_temp_error: true,
            ..facts()
        };
        assert_eq!(decide(no_record), Verdict::TempError);
    }
}
