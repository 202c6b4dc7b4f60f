-- 0005: the subject fallback reads every message under a subject near a reply's date, not only
-- the latest one (`subject_threads`, no longer read or written), so a reply imported after
-- newer mail under its subject (an older month's file imported later, say) still finds what it
-- answers. Filled from `messages` by the program when this migration is applied.
CREATE TABLE subject_activity (
    subject_key TEXT NOT NULL,              -- `thread::subject_key` of the message's subject
    date        INTEGER NOT NULL,
    message     INTEGER NOT NULL REFERENCES messages(id),
    PRIMARY KEY (subject_key, date, message)
) WITHOUT ROWID;

-- Replies the subject fallback could not attach when they were imported: they carry a reply
-- prefix and no reference headers, and no message under their subject lay near their date
-- (the original was in a file imported later, say). A later message under the same subject
-- that the reply would have joined adopts it (their threads are joined), and the row goes.
-- Replies imported before this migration are not recorded.
CREATE TABLE subject_orphans (
    message     INTEGER PRIMARY KEY REFERENCES messages(id),
    subject_key TEXT NOT NULL,
    date        INTEGER NOT NULL
);
CREATE INDEX subject_orphans_key ON subject_orphans(subject_key, date);
