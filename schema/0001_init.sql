-- 0001: the archive. SQLite is the source of truth: every message's raw bytes are here, and
-- everything else (the search index, digests) can be rebuilt from these tables.
-- Append-only: never edit this file once landed; add 0002_*.sql instead.

-- A mailing list. `name` is what URLs and the CLI use; `list_id` is the List-Id header value
-- it was learned from, if any.
CREATE TABLE lists (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    list_id     TEXT
);

-- One row per distinct message, however many lists it reached (cross-posts are stored once).
-- `message_id` is the public identity (URLs): the header's id, or a synthetic/derived one when
-- the header is missing or the id was already taken by different content.
-- `header_message_id` is the id as written in the header, which need not be unique.
-- `content_key` is dedup's BLAKE3 key: copies with equal keys are the same message.
-- `content` is one zstd frame holding the message exactly as received (mboxrd unquoted) and the
-- text extracted from it (kept so reindexing and digests need not re-parse MIME): a 4-byte
-- little-endian raw length, the raw bytes, then the text. One frame, because the text is mostly
-- a copy of the raw bytes and compresses to almost nothing after them.
CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    message_id          TEXT NOT NULL UNIQUE,
    header_message_id   TEXT,
    content_key         BLOB NOT NULL,
    thread_id           INTEGER NOT NULL,
    date                INTEGER,
    from_name           TEXT,
    from_addr           TEXT,
    subject             TEXT NOT NULL,
    recipients          TEXT NOT NULL,          -- JSON [[name, addr], ...] of To then Cc
    refs                TEXT NOT NULL,          -- JSON ["id", ...]: References then In-Reply-To
    has_attachment      INTEGER NOT NULL,
    has_patch           INTEGER NOT NULL,
    html_only           INTEGER NOT NULL,
    size                INTEGER NOT NULL,       -- raw size in bytes
    content             BLOB NOT NULL
);
-- Dedup looks up incoming copies by their header Message-ID, a batch at a time.
CREATE INDEX messages_header_id ON messages(header_message_id);
-- Thread pages and digests read a thread's messages in date order.
CREATE INDEX messages_thread ON messages(thread_id, date);
-- Browsing and digests select by date range.
CREATE INDEX messages_date ON messages(date);

-- Which lists a message reached, and where each copy came from (file and byte offset), so an
-- operator can find the original bytes.
CREATE TABLE memberships (
    message     INTEGER NOT NULL REFERENCES messages(id),
    list        INTEGER NOT NULL REFERENCES lists(id),
    file        INTEGER REFERENCES files(id),
    offset      INTEGER,
    PRIMARY KEY (message, list)
) WITHOUT ROWID;
-- List pages count and page through a list's messages.
CREATE INDEX memberships_list ON memberships(list, message);

-- Attachments as listed on message pages (the content stays in `raw`).
CREATE TABLE attachments (
    message         INTEGER NOT NULL REFERENCES messages(id),
    position        INTEGER NOT NULL,
    filename        TEXT,
    content_type    TEXT NOT NULL,
    size            INTEGER NOT NULL,
    PRIMARY KEY (message, position)
) WITHOUT ROWID;

-- Every Message-ID the archive knows, stored or only referenced ("ghost"), with its thread.
-- Threading a batch reads this instead of walking messages, and thread ids stay stable when a
-- ghost is filled in (the ghost's thread is kept) or two threads are joined (the older id wins).
CREATE TABLE thread_keys (
    msgid       TEXT PRIMARY KEY,
    thread_id   INTEGER NOT NULL
) WITHOUT ROWID;
-- Merging two threads rewrites every key of the absorbed thread.
CREATE INDEX thread_keys_thread ON thread_keys(thread_id);

-- The bounded subject fallback: for messages with no reference headers, the thread last seen
-- with the same normalised subject, and when.
CREATE TABLE subject_threads (
    subject_key TEXT PRIMARY KEY,
    thread_id   INTEGER NOT NULL,
    last_date   INTEGER NOT NULL
) WITHOUT ROWID;

-- Each input file imported, for incremental and resumed imports. `done_offset` is the end of
-- the last message committed (in the decompressed stream); `fingerprint` is a hash of the
-- first and last bytes before it, used to tell "grown" from "rewritten".
CREATE TABLE files (
    id              INTEGER PRIMARY KEY,
    path            TEXT NOT NULL,
    list_key        TEXT NOT NULL,          -- the --list given, or '' when detected
    list            INTEGER REFERENCES lists(id),
    variant         TEXT NOT NULL,
    compressed      INTEGER NOT NULL,
    size            INTEGER NOT NULL,       -- file size on disk when last read
    done_offset     INTEGER NOT NULL,
    fingerprint     BLOB,
    complete        INTEGER NOT NULL,       -- 1 once the whole file was read
    UNIQUE (path, list_key)
);

-- Whatever could not be made into a message, with where it was and its bytes, so nothing is
-- ever lost silently. Unique per place so a re-import does not record it twice.
CREATE TABLE problems (
    id          INTEGER PRIMARY KEY,
    file        INTEGER REFERENCES files(id),
    offset      INTEGER NOT NULL,
    length      INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    raw         BLOB,                        -- zstd-compressed
    UNIQUE (file, offset, kind)
);

-- Footers learned per list (dedup strips them; search does not index them).
CREATE TABLE list_footers (
    list        INTEGER NOT NULL REFERENCES lists(id),
    footer      TEXT NOT NULL,
    PRIMARY KEY (list, footer)
) WITHOUT ROWID;
