-- 0003: weekly digests: who gets them, and the delivery ledger that sends each one exactly once.
-- Append-only: never edit this file once landed; add 0004_*.sql instead.

-- A person who asked for the weekly digest of some lists. Rows are never deleted, so a late
-- one-click unsubscribe with an old token still finds its row and stays a harmless no-op.
-- `handle` is the public identity used in signed tokens (links), so row ids never leave the
-- store and a token does not reveal the address. `email_key` (lowercased) keeps one row per
-- address. `lists` is a JSON array of list names: one digest covers all of them. `query` is an
-- optional saved search (the search language) limiting the digest to matching threads.
-- Double opt-in: `confirmed_at` stays NULL until the confirmation link is opened, and nothing
-- is sent before. A new request for an existing address is parked in `pending_lists` /
-- `pending_query` until that address confirms it, so nobody can change someone else's
-- subscription. `generation` grows with every new request after an unsubscribe: tokens carry
-- it, so links from an earlier subscription stop working.
CREATE TABLE digest_subscribers (
    id              INTEGER PRIMARY KEY,
    handle          TEXT NOT NULL UNIQUE,
    email           TEXT NOT NULL,
    email_key       TEXT NOT NULL UNIQUE,
    lists           TEXT NOT NULL,
    query           TEXT,
    pending_lists   TEXT,
    pending_query   TEXT,
    generation      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    confirmed_at    INTEGER,
    paused          INTEGER NOT NULL DEFAULT 0,
    unsubscribed_at INTEGER
);

-- The delivery ledger: one row per (subscriber, week), inserted before anything is sent, so a
-- week can be resumed after a crash and no subscriber gets a week twice. `state` moves
-- pending -> sending (committed just before the SMTP transaction) -> sent | failed | skipped.
-- A row still `sending` after a crash is resent with the same `message_id`, fixed when the row
-- was queued, so the only possible duplicate (a crash between the server's acceptance and our
-- commit) is the same message to every client that deduplicates by Message-ID.
CREATE TABLE digest_outbox (
    subscriber      INTEGER NOT NULL REFERENCES digest_subscribers(id),
    week            TEXT NOT NULL,              -- ISO week, '2023-W20'
    state           TEXT NOT NULL,
    message_id      TEXT NOT NULL UNIQUE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    queued_at       INTEGER NOT NULL,
    sent_at         INTEGER,
    PRIMARY KEY (subscriber, week)
) WITHOUT ROWID;
-- A run reads the week's unfinished rows; reports count the week's rows by state.
CREATE INDEX digest_outbox_week_state ON digest_outbox(week, state);

-- One row per week whose sending started; `completed_at` is set once every queued row is
-- settled. A completed week is never sent again (re-running it sends nothing), and the
-- schedule in `archivist serve` sends a missed week once after downtime.
CREATE TABLE digest_runs (
    week            TEXT PRIMARY KEY,
    started_at      INTEGER NOT NULL,
    completed_at    INTEGER
) WITHOUT ROWID;
