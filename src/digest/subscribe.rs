//! Subscriptions: double opt-in with signed, expiring tokens, pause, and one-click unsubscribe
//! (RFC 8058). This is the API both the CLI and the web handlers call; the store keeps the
//! rows, this module decides what a token allows.
//!
//! A token is `<purpose>.<handle>.<generation>.<expires>[.<request>].<hmac>`: the purpose (`c`
//! confirm, `u` unsubscribe, `m` manage), the subscriber's public handle (never the address or
//! a row id), the subscription generation (a later re-subscription voids older links), the
//! expiry in Unix seconds (0: none), for a confirmation the key of the request its email
//! described (so it confirms that request and no later one), and an HMAC-SHA256 over the rest
//! with the key from `ARCHIVIST_TOKEN_KEY`. All of it is URL-safe.

use anyhow::{bail, Result};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::render::{path_segment, Links};
use crate::message::{EmailAddress, ListName};
use crate::store::{Confirmed, Store, Subscriber};

/// The key that signs tokens; at least 32 bytes.
#[derive(Clone)]
pub struct TokenKey {
    bytes: Vec<u8>,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

impl TokenKey {
    /// Wraps key material from the environment.
    pub fn new(bytes: &[u8]) -> Result<TokenKey> {
        if bytes.len() < 32 {
            bail!(
                "the token key must be at least 32 bytes (set {} to a long random string)",
                crate::config::TOKEN_KEY_ENV
            );
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(bytes)
            .map_err(|_| anyhow::anyhow!("the token key is not usable for HMAC"))?;
        Ok(TokenKey {
            bytes: bytes.to_vec(),
            mac,
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Double opt-in confirmation; expires.
    Confirm,
    /// One-click unsubscribe; does not expire (old digests must keep working).
    Unsubscribe,
    /// The manage page (lists, pause); does not expire.
    Manage,
}

impl Purpose {
    fn code(self) -> &'static str {
        match self {
            Purpose::Confirm => "c",
            Purpose::Unsubscribe => "u",
            Purpose::Manage => "m",
        }
    }
}

/// A verified token's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is for.
    pub purpose: Purpose,
    /// The subscriber's public handle.
    pub handle: String,
    /// The subscription generation it belongs to.
    pub generation: i64,
    /// Unix seconds after which it is void; 0 for never.
    pub expires: i64,
    /// A confirmation's request key ([`crate::store::request_key`]); `None` otherwise (and in
    /// confirmation links made before request keys).
    pub request: Option<String>,
}

/// Why a token was refused. Web handlers show one neutral page for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all.
    #[error("the link is not valid")]
    Malformed,
    /// Signed with another key, or altered.
    #[error("the link is not valid")]
    BadSignature,
    /// A token for something else.
    #[error("the link is not valid here")]
    WrongPurpose,
    /// Too old.
    #[error("the link has expired")]
    Expired,
}

impl Token {
    fn payload(&self) -> String {
        let mut p = format!(
            "{}.{}.{}.{}",
            self.purpose.code(),
            self.handle,
            self.generation,
            self.expires
        );
        if let Some(r) = &self.request {
            p.push('.');
            p.push_str(r);
        }
        p
    }

    /// The signed, URL-safe token.
    pub fn sign(&self, key: &TokenKey) -> String {
        let payload = self.payload();
        let mut mac = key.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{payload}.{}", hex(&tag))
    }

    /// Checks the signature, the purpose and the expiry.
    pub fn verify(
        raw: &str,
        key: &TokenKey,
        purpose: Purpose,
        now: i64,
    ) -> Result<Token, TokenError> {
        if raw.len() > 256 || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') {
            return Err(TokenError::Malformed);
        }
        let (payload, tag) = raw.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = unhex(tag).ok_or(TokenError::Malformed)?;
        let mut mac = key.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let (code, handle, generation, expires, request) = match parts[..] {
            [code, handle, generation, expires] => (code, handle, generation, expires, None),
            [code @ "c", handle, generation, expires, request] => {
                (code, handle, generation, expires, Some(request.to_string()))
            }
            _ => return Err(TokenError::Malformed),
        };
        if code != purpose.code() {
            return Err(TokenError::WrongPurpose);
        }
        let generation: i64 = generation.parse().map_err(|_| TokenError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if expires != 0 && now >= expires {
            return Err(TokenError::Expired);
        }
        Ok(Token {
            purpose,
            handle: handle.to_string(),
            generation,
            expires,
            request,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A subscription request's result: the subscriber, what was asked for, and the confirmation
/// link to mail them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The subscriber (unconfirmed, or confirmed with the request parked: then its lists and
    /// saved search are still the current subscription's, not the request's).
    pub subscriber: Subscriber,
    /// The lists asked for, sorted: what the email must describe, and the link applies.
    pub lists: Vec<String>,
    /// The saved search asked for.
    pub query: Option<String>,
    /// `{base_url}/digest/confirm/<token>`.
    pub confirm_url: String,
}

/// What confirming found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Confirmed (again, harmlessly, if it already was).
    Confirmed(Subscriber),
    /// The token is valid but its subscription is gone (unsubscribed, or re-requested since).
    Gone,
    /// The address was asked for again (other lists or saved search) after this link was
    /// mailed: nothing was changed; only the latest confirmation email's link applies.
    Replaced,
    /// The token is not valid.
    Invalid(TokenError),
}

/// The subscription service.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    key: TokenKey,
    base_url: String,
    confirm_hours: u32,
}

impl Subscriptions {
    /// A service signing with `key`, building links under `base_url`.
    pub fn new(key: TokenKey, base_url: &str, confirm_hours: u32) -> Subscriptions {
        Subscriptions {
            key,
            base_url: base_url.trim_end_matches('/').to_string(),
            confirm_hours,
        }
    }

    /// Hours a confirmation link is valid.
    pub fn confirm_hours(&self) -> u32 {
        self.confirm_hours
    }

    /// A new subscriber's public handle: a keyed hash of the address and the time, so it is
    /// unguessable without the key and unique in practice.
    fn new_handle(&self, email: &EmailAddress, now: i64) -> String {
        let key = blake3::derive_key("archivist digest subscriber handle v1", &self.key.bytes);
        let hash = blake3::keyed_hash(&key, format!("{}\n{now}", email.key()).as_bytes());
        hex(&hash.as_bytes()[..16])
    }

    fn url(&self, path: &str, token: &Token) -> String {
        format!(
            "{}/digest/{path}/{}",
            self.base_url,
            path_segment(&token.sign(&self.key))
        )
    }

    /// Records a subscription request and returns the confirmation link to mail. Nothing is
    /// sent to the subscriber until the link is opened. Whether the address was known is not
    /// visible in the result's shape, so a web page built on it cannot leak it.
    pub fn subscribe(
        &self,
        store: &mut Store,
        email: &EmailAddress,
        lists: &[ListName],
        query: Option<&str>,
        now: i64,
    ) -> Result<Confirmation> {
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        if let Some(q) = query {
            if q.len() > 1000 || q.chars().any(char::is_control) {
                bail!("the saved search must be one line of at most 1000 characters");
            }
        }
        if lists.is_empty() {
            bail!("choose at least one list");
        }
        let handle = self.new_handle(email, now);
        let subscriber = store.request_subscription(email, lists, query, &handle, now)?;
        let token = Token {
            purpose: Purpose::Confirm,
            handle: subscriber.handle.clone(),
            generation: subscriber.generation,
            expires: now + i64::from(self.confirm_hours) * 3600,
            request: Some(crate::store::request_key(lists, query)),
        };
        let mut names: Vec<String> = lists.iter().map(|l| l.as_str().to_string()).collect();
        names.sort_unstable();
        names.dedup();
        Ok(Confirmation {
            confirm_url: self.url("confirm", &token),
            subscriber,
            lists: names,
            query: query.map(str::to_string),
        })
    }

    /// Confirms from a confirmation token (the link in the email).
    pub fn confirm(&self, store: &mut Store, token: &str, now: i64) -> Result<ConfirmOutcome> {
        let token = match Token::verify(token, &self.key, Purpose::Confirm, now) {
            Ok(t) => t,
            Err(e) => return Ok(ConfirmOutcome::Invalid(e)),
        };
        Ok(
            match store.confirm_subscription(
                &token.handle,
                token.generation,
                token.request.as_deref(),
                now,
            )? {
                Confirmed::Applied(s) => ConfirmOutcome::Confirmed(s),
                Confirmed::Gone => ConfirmOutcome::Gone,
                Confirmed::Replaced => ConfirmOutcome::Replaced,
            },
        )
    }

    /// Checks an unsubscribe token without changing anything: what a `GET` of the one-click
    /// URL does before showing its confirmation page (mail scanners follow GET links).
    pub fn check_unsubscribe(&self, token: &str, now: i64) -> Result<Token, TokenError> {
        Token::verify(token, &self.key, Purpose::Unsubscribe, now)
    }

    /// Checks a confirmation token without confirming: what the page behind the emailed link
    /// shows before its button is pressed.
    pub fn check_confirm(&self, token: &str, now: i64) -> Result<Token, TokenError> {
        Token::verify(token, &self.key, Purpose::Confirm, now)
    }

    /// Unsubscribes through a manage-page token (its "Unsubscribe" button).
    pub fn unsubscribe_managed(
        &self,
        store: &mut Store,
        token: &str,
        now: i64,
    ) -> Result<Result<bool, TokenError>> {
        self.unsubscribe_with(store, token, Purpose::Manage, now)
    }

    /// One-click unsubscribe (the `POST`): immediate and idempotent. Returns whether the
    /// token named a subscription (an already-unsubscribed one counts).
    pub fn unsubscribe(
        &self,
        store: &mut Store,
        token: &str,
        now: i64,
    ) -> Result<Result<bool, TokenError>> {
        self.unsubscribe_with(store, token, Purpose::Unsubscribe, now)
    }

    fn unsubscribe_with(
        &self,
        store: &mut Store,
        token: &str,
        purpose: Purpose,
        now: i64,
    ) -> Result<Result<bool, TokenError>> {
        let token = match Token::verify(token, &self.key, purpose, now) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(store.unsubscribe(
            &token.handle,
            token.generation,
            now,
        )?))
    }

    /// The subscriber a manage-page token names: `None` when the token is valid but its
    /// subscription has ended (unsubscribed, or subscribed again since, with links of its own).
    pub fn manage(
        &self,
        store: &Store,
        token: &str,
        now: i64,
    ) -> Result<Result<Option<Subscriber>, TokenError>> {
        let token = match Token::verify(token, &self.key, Purpose::Manage, now) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(store.subscriber(&token.handle)?.filter(|s| {
            s.generation == token.generation && !s.unsubscribed
        })))
    }

    /// Pauses or resumes through a manage-page token.
    pub fn set_paused(
        &self,
        store: &mut Store,
        token: &str,
        paused: bool,
        now: i64,
    ) -> Result<Result<bool, TokenError>> {
        let token = match Token::verify(token, &self.key, Purpose::Manage, now) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(store.set_paused(
            &token.handle,
            token.generation,
            paused,
        )?))
    }

    /// Changes lists and saved search through a manage-page token.
    pub fn update(
        &self,
        store: &mut Store,
        token: &str,
        lists: &[ListName],
        query: Option<&str>,
        now: i64,
    ) -> Result<Result<bool, TokenError>> {
        let token = match Token::verify(token, &self.key, Purpose::Manage, now) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        if lists.is_empty() {
            bail!("choose at least one list");
        }
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        Ok(Ok(store.update_subscription(
            &token.handle,
            token.generation,
            lists,
            query,
        )?))
    }

    /// The anti-forgery value a form carries for a browser whose cookie holds `nonce`: a keyed
    /// hash of the nonce. A forged cross-site form cannot know it (it cannot read the cookie,
    /// and the cookie is `SameSite=Strict`), and it changes with every browser.
    pub fn form_token(&self, nonce: &str) -> String {
        let key = blake3::derive_key("archivist digest form token v1", &self.key.bytes);
        hex(&blake3::keyed_hash(&key, nonce.as_bytes()).as_bytes()[..16])
    }

    /// Whether `token` is the form token for `nonce` (compared in constant time).
    pub fn check_form_token(&self, nonce: &str, token: &str) -> bool {
        if nonce.len() < 16 || nonce.len() > 128 {
            return false;
        }
        let expected = self.form_token(nonce);
        expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The personal links a digest carries.
    pub fn links(&self, subscriber: &Subscriber) -> Links {
        let token = |purpose| Token {
            purpose,
            handle: subscriber.handle.clone(),
            generation: subscriber.generation,
            expires: 0,
            request: None,
        };
        Links {
            unsubscribe: Some(self.url("unsubscribe", &token(Purpose::Unsubscribe))),
            manage: Some(self.url("manage", &token(Purpose::Manage))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn key() -> TokenKey {
        TokenKey::new(b"0123456789abcdef0123456789abcdef").expect("key")
    }

    #[test]
    fn form_tokens_are_bound_to_their_nonce() {
        let subs = Subscriptions::new(key(), "https://a.example", 48);
        let nonce = "0123456789abcdef0123";
        let token = subs.form_token(nonce);
        assert!(subs.check_form_token(nonce, &token));
        assert!(!subs.check_form_token("0123456789abcdef0124", &token));
        assert!(!subs.check_form_token(nonce, &token[1..]));
        assert!(!subs.check_form_token(nonce, ""));
        assert!(!subs.check_form_token("short", &subs.form_token("short")));
        let other = Subscriptions::new(
            TokenKey::new(b"another key, also at least 32 bytes").expect("key"),
            "https://a.example",
            48,
        );
        assert!(!other.check_form_token(nonce, &token));
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let k = key();
        let t = Token {
            purpose: Purpose::Confirm,
            handle: "00ff".into(),
            generation: 2,
            expires: 1000,
            request: Some("0123456789abcdef".into()),
        };
        let signed = t.sign(&k);
        assert_eq!(
            Token::verify(&signed, &k, Purpose::Confirm, 999),
            Ok(t.clone())
        );
        let cases: Vec<(String, Purpose, i64, TokenError)> = vec![
            (signed.clone(), Purpose::Confirm, 1000, TokenError::Expired),
            (
                signed.clone(),
                Purpose::Unsubscribe,
                0,
                TokenError::WrongPurpose,
            ),
            (
                signed.replacen(".2.", ".3.", 1),
                Purpose::Confirm,
                0,
                TokenError::BadSignature,
            ),
            (
                signed.replacen("00ff", "00fe", 1),
                Purpose::Confirm,
                0,
                TokenError::BadSignature,
            ),
            (
                format!("{signed}0"),
                Purpose::Confirm,
                0,
                TokenError::Malformed,
            ),
            (
                "c.00ff.2.1000".into(),
                Purpose::Confirm,
                0,
                TokenError::BadSignature,
            ),
            ("".into(), Purpose::Confirm, 0, TokenError::Malformed),
            (
                "c.a/b.1.0.00".into(),
                Purpose::Confirm,
                0,
                TokenError::Malformed,
            ),
        ];
        for (raw, purpose, now, want) in cases {
            assert_eq!(Token::verify(&raw, &k, purpose, now), Err(want), "{raw}");
        }
        let other = TokenKey::new(b"another key that is long enough!!").expect("key");
        assert_eq!(
            Token::verify(&signed, &other, Purpose::Confirm, 0),
            Err(TokenError::BadSignature)
        );
        assert!(TokenKey::new(b"short").is_err());
        assert_eq!(format!("{k:?}"), "TokenKey([redacted])");
    }

    #[test]
    fn never_expiring_tokens() {
        let k = key();
        let t = Token {
            purpose: Purpose::Unsubscribe,
            handle: "ab".into(),
            generation: 0,
            expires: 0,
            request: None,
        };
        assert!(Token::verify(&t.sign(&k), &k, Purpose::Unsubscribe, i64::MAX).is_ok());
    }

    fn token_of(url: &str) -> String {
        url.rsplit('/').next().expect("token").to_string()
    }

    #[test]
    fn double_opt_in_parking_and_generations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("a.sqlite3")).expect("store");
        let subs = Subscriptions::new(key(), "https://x.example/", 48);
        let email = EmailAddress::parse("Jane@Example.org").expect("email");
        let dev = [ListName::parse("dev").expect("list")];
        let ops = [ListName::parse("ops").expect("list")];

        let first = subs
            .subscribe(&mut store, &email, &dev, None, 100)
            .expect("subscribe");
        assert!(first
            .confirm_url
            .starts_with("https://x.example/digest/confirm/c."));
        assert!(!first.subscriber.confirmed);
        assert!(store.active_subscribers().expect("active").is_empty());
        // Expired after 48 hours.
        let late = subs
            .confirm(&mut store, &token_of(&first.confirm_url), 100 + 48 * 3600)
            .expect("confirm");
        assert_eq!(late, ConfirmOutcome::Invalid(TokenError::Expired));
        let ok = subs
            .confirm(&mut store, &token_of(&first.confirm_url), 200)
            .expect("confirm");
        assert!(matches!(ok, ConfirmOutcome::Confirmed(ref s) if s.active() && s.lists == ["dev"]));

        // Someone asks for other lists for the same address: parked until confirmed, and
        // only by its own link: the first link, opened again, changes nothing.
        let second = subs
            .subscribe(&mut store, &email, &ops, Some("tag:nova"), 300)
            .expect("subscribe");
        // Its email describes the request, not the subscription it would change.
        assert_eq!(
            (second.lists.clone(), second.query.as_deref()),
            (vec!["ops".to_string()], Some("tag:nova"))
        );
        assert_eq!(second.subscriber.lists, ["dev"]);
        let active = store.active_subscribers().expect("active");
        assert_eq!(active[0].lists, ["dev"]);
        assert_eq!(active[0].query, None);
        let again = subs
            .confirm(&mut store, &token_of(&first.confirm_url), 300)
            .expect("confirm");
        assert!(
            matches!(again, ConfirmOutcome::Confirmed(ref s) if s.lists == ["dev"] && s.query.is_none()),
            "{again:?}"
        );
        subs.confirm(&mut store, &token_of(&second.confirm_url), 301)
            .expect("confirm");
        let active = store.active_subscribers().expect("active");
        assert_eq!(
            (active[0].lists.clone(), active[0].query.clone()),
            (vec!["ops".to_string()], Some("tag:nova".to_string()))
        );

        // One-click unsubscribe, idempotent; then an old confirmation link does nothing.
        let links = subs.links(&active[0]);
        let unsub = token_of(links.unsubscribe.as_deref().expect("link"));
        assert!(subs.check_unsubscribe(&unsub, 400).is_ok());
        assert_eq!(
            subs.unsubscribe(&mut store, &unsub, 400).expect("store"),
            Ok(true)
        );
        assert_eq!(
            subs.unsubscribe(&mut store, &unsub, 401).expect("store"),
            Ok(true)
        );
        assert!(store.active_subscribers().expect("active").is_empty());
        assert_eq!(
            subs.confirm(&mut store, &token_of(&second.confirm_url), 402)
                .expect("confirm"),
            ConfirmOutcome::Gone
        );

        // Subscribing again starts a new generation: the old unsubscribe link is void for it.
        let third = subs
            .subscribe(&mut store, &email, &dev, None, 500)
            .expect("subscribe");
        assert_eq!(third.subscriber.generation, 1);
        subs.confirm(&mut store, &token_of(&third.confirm_url), 501)
            .expect("confirm");
        assert_eq!(
            subs.unsubscribe(&mut store, &unsub, 502).expect("store"),
            Ok(false)
        );
        assert_eq!(store.active_subscribers().expect("active").len(), 1);

        // Pause through the manage link.
        let sub = store.active_subscribers().expect("active")[0].clone();
        let manage = token_of(subs.links(&sub).manage.as_deref().expect("link"));
        assert_eq!(
            subs.set_paused(&mut store, &manage, true, 600)
                .expect("store"),
            Ok(true)
        );
        assert!(store.active_subscribers().expect("active").is_empty());
        assert_eq!(
            subs.manage(&store, &manage, 601)
                .expect("store")
                .map(|s| s.map(|s| s.paused)),
            Ok(Some(true))
        );
        // An address not confirmed yet, asked for again with other lists: the first link no
        // longer applies; the second confirms what its email said.
        let other = EmailAddress::parse("kim@example.org").expect("email");
        let a = subs
            .subscribe(&mut store, &other, &dev, None, 700)
            .expect("subscribe");
        let b = subs
            .subscribe(&mut store, &other, &ops, Some("tag:tc"), 701)
            .expect("subscribe");
        assert_eq!(
            subs.confirm(&mut store, &token_of(&a.confirm_url), 702)
                .expect("confirm"),
            ConfirmOutcome::Replaced
        );
        assert!(
            !store
                .subscriber(&a.subscriber.handle)
                .expect("read")
                .expect("row")
                .confirmed
        );
        let ok = subs
            .confirm(&mut store, &token_of(&b.confirm_url), 703)
            .expect("confirm");
        assert!(
            matches!(ok, ConfirmOutcome::Confirmed(ref s) if s.lists == ["ops"] && s.query.as_deref() == Some("tag:tc")),
            "{ok:?}"
        );

        // A manage token is not an unsubscribe token.
        assert_eq!(
            subs.unsubscribe(&mut store, &manage, 602).expect("store"),
            Err(TokenError::WrongPurpose)
        );
    }
}
