//! The one integration-test binary. Each module is a topic; shared helpers live in `support`.

mod adversarial;
mod corpus;
mod crash;
mod digest;
mod digest_mail;
mod import;
mod search;
mod support;
mod tidy;
