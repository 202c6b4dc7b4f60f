//! Composing and delivering emails: the only user of lettre. A message is composed once into
//! its exact bytes (multipart/alternative, every header encoded by lettre, nothing taken raw
//! from a sender), then handed to a [`Transport`], a closed enum: an SMTP server, a directory
//! of `.eml` files, or memory (tests). Failures come back classified as transient or
//! permanent, so the caller can retry the one and record the other.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, Message, SmtpTransport, Transport as _};

use crate::config::{SmtpConfig, TlsMode};
use crate::message::EmailAddress;

/// An email to compose. Every field is a value we made (templates, configuration, the ledger);
/// lettre encodes them, and the checks in [`compose`] refuse line breaks anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// `Name <addr>` or `addr`, from the configuration.
    pub from: String,
    /// The recipient's address.
    pub to: String,
    /// One line.
    pub subject: String,
    /// text/plain part.
    pub text: String,
    /// text/html part.
    pub html: String,
    /// Without angle brackets; unique per message and fixed before the first attempt.
    pub message_id: String,
    /// Unix seconds for the `Date` header.
    pub date: i64,
    /// `List-Id` value, e.g. `Weekly digest <digest.example.org>`.
    pub list_id: Option<String>,
    /// One-click unsubscribe URL (`List-Unsubscribe` and `List-Unsubscribe-Post`).
    pub unsubscribe_url: Option<String>,
}

/// A composed message: its exact bytes and its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// The message as it goes over the wire.
    pub bytes: Vec<u8>,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipient.
    pub envelope_to: String,
    /// The Message-ID, without brackets.
    pub message_id: String,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later: 4xx replies, timeouts, connection failures.
    #[error("transient: {0}")]
    Transient(String),
    /// Never worth retrying: 5xx replies, an address the server or lettre refuses.
    #[error("permanent: {0}")]
    Permanent(String),
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

/// Composes the message. Refuses (permanently) any header value with a line break and any
/// address lettre does not accept, so header injection is impossible.
pub fn compose(o: &Outgoing) -> Result<Composed, SendError> {
    let headers = [
        &o.from,
        &o.to,
        &o.subject,
        &o.message_id,
        o.list_id.as_deref().unwrap_or(""),
        o.unsubscribe_url.as_deref().unwrap_or(""),
    ];
    if headers.iter().any(|h| has_line_break(h)) {
        return Err(SendError::Permanent(
            "a header value holds a line break".into(),
        ));
    }
    if o.message_id.contains(['<', '>', ' ']) || !o.message_id.contains('@') {
        return Err(SendError::Permanent(format!(
            "bad Message-ID {:?}",
            o.message_id
        )));
    }
    let from: Mailbox = o
        .from
        .parse()
        .map_err(|e| SendError::Permanent(format!("bad From address: {e}")))?;
    let to_addr: Address =
        o.to.parse()
            .map_err(|e| SendError::Permanent(format!("bad recipient address: {e}")))?;
    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(o.date.max(0) as u64);
    let mut builder = Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to_addr.clone()))
        .subject(o.subject.clone())
        .date(date)
        .message_id(Some(format!("<{}>", o.message_id)))
        .raw_header(header("Auto-Submitted", "auto-generated"));
    if let Some(list_id) = &o.list_id {
        builder = builder.raw_header(header("List-Id", list_id));
    }
    if let Some(url) = &o.unsubscribe_url {
        builder = builder
            .raw_header(header("List-Unsubscribe", &format!("<{url}>")))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click",
            ));
    }
    let body = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(o.text.clone()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(o.html.clone()),
        );
    let message = builder
        .multipart(body)
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
    Ok(Composed {
        bytes: message.formatted(),
        envelope_from: from.email.to_string(),
        envelope_to: to_addr.to_string(),
        message_id: o.message_id.clone(),
    })
}

/// A header lettre encodes (RFC 2047 for non-ASCII, folding); the names are our constants.
fn header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

/// Where composed messages go.
pub enum Transport {
    /// An SMTP server (pooled connections).
    Smtp(Box<SmtpTransport>),
    /// One `<message-id>.eml` file per message in a directory (a resend overwrites).
    Directory(PathBuf),
    /// Kept in memory, with scripted failures: for tests.
    Memory(std::sync::Mutex<MemoryOutbox>),
}

/// The in-memory transport's state.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    /// Messages accepted, in order.
    pub sent: Vec<Composed>,
    /// Results for the next sends, in order (`None`: accept); accepted once exhausted.
    pub script: VecDeque<Option<SendError>>,
}

impl Transport {
    /// The SMTP transport the configuration describes; the password comes from
    /// `config.password` (the environment).
    pub fn smtp(config: &SmtpConfig) -> Result<Transport> {
        let tls_params = || {
            TlsParameters::new(config.host.clone())
                .with_context(|| format!("cannot set up TLS for {}", config.host))
        };
        let tls = match config.tls {
            TlsMode::Plain => Tls::None,
            TlsMode::Starttls => Tls::Required(tls_params()?),
            TlsMode::Tls => Tls::Wrapper(tls_params()?),
        };
        let mut builder = SmtpTransport::builder_dangerous(config.host.clone())
            .port(config.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(config.timeout_seconds.max(1))))
            .pool_config(PoolConfig::new().max_size(config.connections.max(1) as u32));
        if !config.username.is_empty() {
            let password = config.password.expose().unwrap_or_default().to_string();
            builder = builder.credentials(Credentials::new(config.username.clone(), password));
        }
        Ok(Transport::Smtp(Box::new(builder.build())))
    }

    /// An in-memory transport following `script`.
    pub fn memory(script: VecDeque<Option<SendError>>) -> Transport {
        Transport::Memory(std::sync::Mutex::new(MemoryOutbox {
            sent: Vec::new(),
            script,
        }))
    }

    /// What an in-memory transport accepted (empty for the others).
    pub fn memory_sent(&self) -> Vec<Composed> {
        match self {
            Transport::Memory(outbox) => outbox.lock().map(|o| o.sent.clone()).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Delivers one message. Safe to call from several threads: SMTP connections come from a
    /// pool.
    pub fn send(&self, m: &Composed) -> Result<(), SendError> {
        match self {
            Transport::Smtp(smtp) => {
                let envelope = lettre::address::Envelope::new(
                    Some(
                        m.envelope_from
                            .parse()
                            .map_err(|e| SendError::Permanent(format!("bad sender: {e}")))?,
                    ),
                    vec![m
                        .envelope_to
                        .parse()
                        .map_err(|e| SendError::Permanent(format!("bad recipient: {e}")))?],
                )
                .map_err(|e| SendError::Permanent(format!("bad envelope: {e}")))?;
                smtp.send_raw(&envelope, &m.bytes).map(|_| ()).map_err(|e| {
                    let code = e.status().map(u16::from);
                    if code.is_some_and(refuses_the_session) {
                        // Refused for every recipient alike: the week waits for a fixed
                        // configuration instead of failing each subscriber for good.
                        SendError::Transient(format!(
                            "the mail server refused the session, not this recipient \
                             (check digest.smtp's username, password and tls): {e}"
                        ))
                    } else if e.is_permanent() {
                        SendError::Permanent(e.to_string())
                    } else {
                        // 4xx replies, timeouts, refused connections, TLS hiccups: try again.
                        SendError::Transient(e.to_string())
                    }
                })
            }
            Transport::Directory(dir) => {
                let name: String = m
                    .message_id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let write = || -> std::io::Result<()> {
                    std::fs::create_dir_all(dir.as_path())?;
                    let tmp = dir.join(format!(".{name}.tmp"));
                    std::fs::write(&tmp, &m.bytes)?;
                    std::fs::rename(&tmp, dir.join(format!("{name}.eml")))
                };
                write().map_err(|e| SendError::Transient(format!("cannot write .eml: {e}")))
            }
            Transport::Memory(outbox) => {
                let mut outbox = outbox
                    .lock()
                    .map_err(|_| SendError::Transient("memory transport poisoned".into()))?;
                match outbox.script.pop_front().flatten() {
                    Some(err) => Err(err),
                    None => {
                        outbox.sent.push(m.clone());
                        Ok(())
                    }
                }
            }
        }
    }
}

/// Whether mail can be addressed to `address` at all: what [`compose`] would refuse (the mail
/// library's address rules: no zero-width or combining characters leading a part, no invalid
/// UTF-8 stand-ins, and so on) is refused when someone subscribes, not after the subscriber
/// is stored.
pub fn deliverable(address: &EmailAddress) -> Result<(), String> {
    address
        .as_str()
        .parse::<Address>()
        .map(|_| ())
        .map_err(|e| format!("mail cannot be addressed to {:?}: {e}", address.as_str()))
}

/// Whether a permanent SMTP reply refuses the whole session (authentication required,
/// too weak, failed or needing encryption: RFC 4954's 530, 534, 535 and 538) rather than
/// one recipient. Such a reply would come back for every subscriber alike.
fn refuses_the_session(code: u16) -> bool {
    matches!(code, 530 | 534 | 535 | 538)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_mail_cannot_be_sent_to_are_refused_up_front() {
        for bad in [
            "a\u{200b}b@x.org",
            "\u{301}@x.org",
            "\u{fffd}@x.org",
            "zoe\u{308}@example.org",
        ] {
            let email = EmailAddress::parse(bad).expect("passes the form check");
            assert!(deliverable(&email).is_err(), "{bad:?}");
        }
        for good in [
            "jane@example.org",
            "zoë@example.org",
            "a.b+c@xn--bcher-kva.example",
        ] {
            let email = EmailAddress::parse(good).expect("valid");
            assert!(deliverable(&email).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn authentication_replies_refuse_the_session_and_mailbox_replies_one_recipient() {
        for code in [530, 534, 535, 538] {
            assert!(refuses_the_session(code), "{code}");
        }
        for code in [550, 551, 552, 553, 554, 501] {
            assert!(!refuses_the_session(code), "{code}");
        }
    }

    fn outgoing() -> Outgoing {
        Outgoing {
            from: "Archivist <digest@example.org>".into(),
            to: "jane@example.org".into(),
            subject: "Weekly digest 2023-W20: 2 topics, 9 messages — dev, ops".into(),
            text: "plain\n".into(),
            html: "<p>html</p>\n".into(),
            message_id: "digest.2023-W20.abc@example.org".into(),
            date: 1_684_108_800,
            list_id: Some("Weekly digest <digest.example.org>".into()),
            unsubscribe_url: Some("https://example.org/digest/unsubscribe/t0k".into()),
        }
    }

    #[test]
    fn composes_multipart_alternative_with_list_headers() {
        let m = compose(&outgoing()).expect("composes");
        let text = String::from_utf8_lossy(&m.bytes);
        for want in [
            "From: Archivist <digest@example.org>\r\n",
            "To: jane@example.org\r\n",
            "Message-ID: <digest.2023-W20.abc@example.org>\r\n",
            "Date: Mon, 15 May 2023 00:00:00 +0000\r\n",
            "Auto-Submitted: auto-generated\r\n",
            "List-Id: Weekly digest <digest.example.org>\r\n",
            "List-Unsubscribe: <https://example.org/digest/unsubscribe/t0k>\r\n",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            "Content-Type: multipart/alternative;",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type: text/html; charset=utf-8",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
        // The subject's em dash is encoded, never raw 8-bit in a header.
        let subject_line = text
            .lines()
            .find(|l| l.starts_with("Subject:"))
            .expect("subject");
        assert!(
            subject_line.is_ascii() && subject_line.contains("=?utf-8?"),
            "{subject_line}"
        );
        assert_eq!(m.envelope_to, "jane@example.org");
        assert_eq!(m.envelope_from, "digest@example.org");
    }

    #[test]
    fn header_injection_is_refused() {
        type Breaker = Box<dyn Fn(&mut Outgoing)>;
        let cases: Vec<Breaker> = vec![
            Box::new(|o| o.subject = "hi\r\nBcc: victim@example.org".into()),
            Box::new(|o| o.to = "jane@example.org\r\nBcc: victim@example.org".into()),
            Box::new(|o| o.to = "jane@example.org, victim@example.org".into()),
            Box::new(|o| o.from = "A <a@x.org>\nBcc: v@x.org".into()),
            Box::new(|o| o.message_id = "a@b>\r\nX: y".into()),
            Box::new(|o| o.unsubscribe_url = Some("https://x/\r\nBcc: v@x.org".into())),
            Box::new(|o| o.list_id = Some("x\ny".into())),
        ];
        for (i, break_it) in cases.iter().enumerate() {
            let mut o = outgoing();
            break_it(&mut o);
            assert!(
                matches!(compose(&o), Err(SendError::Permanent(_))),
                "case {i} composed"
            );
        }
    }

    #[test]
    fn memory_transport_follows_its_script() {
        let m = compose(&outgoing()).expect("composes");
        let t = Transport::memory(VecDeque::from([
            Some(SendError::Transient("421 busy".into())),
            None,
        ]));
        assert_eq!(t.send(&m), Err(SendError::Transient("421 busy".into())));
        assert_eq!(t.send(&m), Ok(()));
        assert_eq!(t.memory_sent().len(), 1);
    }
}
