-- 0002: the search index's feed. Every write that changes what a message's index document
-- holds (a new message, a new list membership, a thread merge) appends the message here in the
-- same transaction. The index records the last `seq` it applied (its watermark), so after a
-- crash it catches up from SQLite, never the other way round.
CREATE TABLE index_log (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    message  INTEGER NOT NULL REFERENCES messages(id)
);
