-- 0004: further copies. `memberships` keeps one place per (message, list): where the list's
-- first copy was read. A list's archive can hold the same message again (delivered twice, or
-- a cross-post archived once more under another list's tag and footer); dedup stores nothing
-- new for it, and this table keeps where that copy was, so every message record of every
-- input file can be found again by file and offset. `length` is the record's length in the
-- (decompressed) stream, separator line included; `file` is NULL for standard input.
CREATE TABLE copies (
    file        INTEGER REFERENCES files(id),
    offset      INTEGER NOT NULL,
    length      INTEGER NOT NULL,
    message     INTEGER NOT NULL REFERENCES messages(id),
    list        INTEGER NOT NULL REFERENCES lists(id)
);
-- One record per place in a file (standard input has no place and is told apart by message).
CREATE UNIQUE INDEX copies_place ON copies(file, offset);
CREATE INDEX copies_message ON copies(message);
