//! Threading: stable thread-id assignment for import batches (union-find over
//! Message-IDs, with a bounded subject fallback) and the JWZ reply tree of one
//! thread for display. Pure and deterministic; no recursion, since inputs are hostile.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

/// Identifier of a thread in the store. Smaller ids are older; when threads
/// merge, the smallest id survives so that links to the oldest thread stay valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId(pub i64);

/// How long before a message (in seconds) the latest activity of a same-subject
/// thread may lie for the subject fallback to join them: 30 days.
pub const SUBJECT_WINDOW_BEFORE_SECS: i64 = 30 * 86_400;

/// How long after a message (in seconds) the latest activity of a same-subject
/// thread may lie and still count: 1 day, to tolerate skewed `Date:` headers.
pub const SUBJECT_WINDOW_AFTER_SECS: i64 = 86_400;

/// One message of an import batch, as seen by [`assign`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewMessage {
    /// The message's own Message-ID.
    pub message_id: String,
    /// References in order, then In-Reply-To. May be empty, huge, contain
    /// duplicates, loops or the message's own id; empty strings are ignored.
    pub refs: Vec<String>,
    /// Normalised subject (see [`subject_key`]), for the subject fallback. An
    /// empty key is treated as `None`.
    pub subject_key: Option<String>,
    /// Whether the subject fallback may attach this message to a thread: its
    /// subject carried a reply prefix and says enough ([`subject_is_distinctive`]),
    /// and it refers to no other message.
    /// Every message with a key and a date counts as activity under its key.
    pub joins_by_subject: bool,
    /// Message date in seconds since the Unix epoch, if known.
    pub date: Option<i64>,
}

/// A stored message under a subject key, as the subject fallback sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectMessage {
    /// The message's Message-ID.
    pub message_id: String,
    /// The message's thread now.
    pub thread: ThreadId,
    /// The message's date (seconds since the Unix epoch).
    pub date: i64,
}

/// What the store holds under a batch's subject keys, for [`assign`]: the messages dated near
/// the batch's messages suffice (30 days before the first to 1 day after the last).
#[derive(Debug, Clone, Default)]
pub struct StoredSubjects {
    /// Every message with a subject key and a date, by key.
    pub activity: HashMap<String, Vec<SubjectMessage>>,
    /// The orphans by key: replies that found no message to join when they were imported.
    pub orphans: HashMap<String, Vec<SubjectMessage>>,
}

/// Result of [`assign`]: what the importer must write back to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Final thread of each batch message, in batch order, after all merges.
    pub thread_of: Vec<ThreadId>,
    /// Every Message-ID of the batch (messages and their refs) whose mapping is
    /// new or changed, sorted by Message-ID, without duplicates.
    pub keys: Vec<(String, ThreadId)>,
    /// `(absorbed, survivor)` for every pre-existing thread merged into another;
    /// sorted by `absorbed`. Survivors are final: none is itself absorbed, so the
    /// store can rewrite every row of `absorbed` to `survivor` in one step.
    pub merges: Vec<(ThreadId, ThreadId)>,
    /// First thread id not used after this batch.
    pub next_id: ThreadId,
    /// New orphans to record: (Message-ID, subject key, date), sorted.
    pub orphans: Vec<(String, String, i64)>,
    /// Message-IDs of recorded orphans that a batch message adopted (their threads are
    /// joined, and they are orphans no more), sorted.
    pub adopted: Vec<String>,
}

/// Assigns thread ids to an import batch.
///
/// * `known` maps Message-IDs already in the store (real messages and ghosts)
///   to their thread; the caller pre-loads every id the batch mentions.
/// * `stored` holds the stored messages under the batch's subject keys and the
///   orphans among them.
/// * `next_id` is the first unused thread id; it must exceed every known id.
///
/// A batch message, its refs and everything they already belong to form one
/// thread. Joining several existing threads keeps the smallest id and reports
/// the others in [`Assignment::merges`]; filling in a ghost keeps its thread.
/// Threads made only of new ids get fresh ids in batch order.
///
/// Subject fallback: a message that may join by subject
/// ([`NewMessage::joins_by_subject`]), is not yet known, has no refs (ignoring
/// empty strings and its own id), and has a subject key and a date joins the
/// thread of the latest message with that key (stored, or earlier in the batch)
/// dated at most [`SUBJECT_WINDOW_BEFORE_SECS`] before and
/// [`SUBJECT_WINDOW_AFTER_SECS`] after it; ties go to the larger Message-ID.
/// Known messages are never moved by it, which keeps re-imports idempotent.
/// Every batch message with a key and a date counts for later ones, exactly as
/// the store holds it between batches, so how an import is cut into batches
/// never changes its threads.
///
/// Orphans: a message that may join by subject but finds no message to join is
/// an orphan. A later batch message with its key and a date (any, not only a
/// reply) adopts every orphan it would have been found by, had it been there
/// first: their threads are joined. So a reply imported before its original
/// (a later month's file first, say) still ends up in the original's thread,
/// and one imported after it finds it however much newer mail the subject has.
/// What stays order-dependent: an orphan is adopted by the first message near
/// it to arrive, even when one arriving later would have been nearer (merges
/// are never undone).
#[must_use]
pub fn assign<'a>(
    batch: &'a [NewMessage],
    known: &'a HashMap<String, ThreadId>,
    stored: &'a StoredSubjects,
    next_id: ThreadId,
) -> Assignment {
    let mut graph = BatchGraph::new(known);
    let mut message_nodes = Vec::with_capacity(batch.len());
    // Per subject key, by (date, Message-ID): the messages that count (stored ones, filled in
    // when the batch first meets the key, then the batch's own) and the orphans not adopted yet.
    let mut activity: HashMap<&str, BTreeMap<(i64, &str), SubjectThread>> = HashMap::new();
    let mut open: HashMap<&str, BTreeMap<(i64, &str), SubjectThread>> = HashMap::new();
    let mut adopted = Vec::new();

    for message in batch {
        let node = graph.id_node(&message.message_id);
        message_nodes.push(node);
        let mut has_refs = false;
        for reference in &message.refs {
            // A self-reference carries no threading information, and an empty
            // id would glue together every message with a broken header.
            if reference.is_empty() || *reference == message.message_id {
                continue;
            }
            has_refs = true;
            let ref_node = graph.id_node(reference);
            graph.uf.union(node, ref_node);
        }

        let key = message.subject_key.as_deref().filter(|k| !k.is_empty());
        let (Some(key), Some(date)) = (key, message.date) else {
            continue;
        };
        let this = (date, message.message_id.as_str());
        let under_key = activity
            .entry(key)
            .or_insert_with(|| entries(stored.activity.get(key)));
        let mut orphaned = false;
        if message.joins_by_subject && !has_refs && !known.contains_key(&message.message_id) {
            // The latest message dated from 30 days before this one to 1 day after it.
            let from = Bound::Included((date.saturating_sub(SUBJECT_WINDOW_BEFORE_SECS), ""));
            let to = match date.checked_add(SUBJECT_WINDOW_AFTER_SECS + 1) {
                Some(end) => Bound::Excluded((end, "")),
                None => Bound::Unbounded,
            };
            let target = under_key
                .range((from, to))
                .rev()
                .find(|(&(latest, _), _)| within_subject_window(latest, date))
                .map(|(_, &target)| target);
            match target {
                Some(target) => {
                    let target_node = graph.subject_node(target);
                    graph.uf.union(node, target_node);
                }
                None => orphaned = true,
            }
        }
        under_key.insert(this, SubjectThread::Node(node));

        let pending = open
            .entry(key)
            .or_insert_with(|| entries(stored.orphans.get(key)));
        // The orphans that would have found this message: dated from 1 day before it to
        // 30 days after it.
        let from = Bound::Included((date.saturating_sub(SUBJECT_WINDOW_AFTER_SECS), ""));
        let found: Vec<((i64, &str), SubjectThread)> = pending
            .range((from, Bound::Unbounded))
            .take_while(|(&(orphan_date, _), _)| within_subject_window(date, orphan_date))
            .map(|(&entry, &target)| (entry, target))
            .collect();
        for (entry, target) in found {
            pending.remove(&entry);
            if let SubjectThread::Stored(_) = target {
                adopted.push(entry.1.to_owned());
            }
            let target_node = graph.subject_node(target);
            graph.uf.union(node, target_node);
        }
        if orphaned {
            pending.insert(this, SubjectThread::Node(node));
        }
    }

    let mut assignment = graph.finish(&message_nodes, next_id);
    let mut new_orphans: Vec<(String, String, i64)> = open
        .into_iter()
        .flat_map(|(key, pending)| {
            pending
                .into_iter()
                .filter(|(_, target)| matches!(target, SubjectThread::Node(_)))
                .map(move |((date, id), _)| (id.to_owned(), key.to_owned(), date))
        })
        .collect();
    new_orphans.sort_unstable();
    adopted.sort_unstable();
    assignment.orphans = new_orphans;
    assignment.adopted = adopted;
    assignment
}

/// Stored messages of one subject key by (date, Message-ID).
fn entries(stored: Option<&Vec<SubjectMessage>>) -> BTreeMap<(i64, &str), SubjectThread> {
    stored
        .into_iter()
        .flatten()
        .map(|m| {
            (
                (m.date, m.message_id.as_str()),
                SubjectThread::Stored(m.thread),
            )
        })
        .collect()
}

/// Where the subject fallback would attach a message.
#[derive(Debug, Clone, Copy)]
enum SubjectThread {
    /// The component of an earlier batch message.
    Node(usize),
    /// A thread from the store that the batch may not mention otherwise.
    Stored(ThreadId),
}

/// True when a message dated `latest` is near enough for a reply dated `date` to join it.
fn within_subject_window(latest: i64, date: i64) -> bool {
    // i128 because hostile dates near i64::MIN/MAX must not overflow.
    let gap = i128::from(date) - i128::from(latest);
    (-i128::from(SUBJECT_WINDOW_AFTER_SECS)..=i128::from(SUBJECT_WINDOW_BEFORE_SECS)).contains(&gap)
}

/// Union-find nodes for one batch: one per distinct Message-ID plus one
/// "anchor" per pre-existing thread, so that ids sharing a stored thread are
/// joined even when the batch itself never links them.
struct BatchGraph<'a> {
    known: &'a HashMap<String, ThreadId>,
    uf: UnionFind,
    by_id: HashMap<&'a str, usize>,
    /// Message-ID of each node; `None` for thread anchors.
    names: Vec<Option<&'a str>>,
    /// Ordered so that merges come out sorted and the minimum is seen first.
    anchors: BTreeMap<ThreadId, usize>,
}

impl<'a> BatchGraph<'a> {
    fn new(known: &'a HashMap<String, ThreadId>) -> Self {
        BatchGraph {
            known,
            uf: UnionFind::default(),
            by_id: HashMap::new(),
            names: Vec::new(),
            anchors: BTreeMap::new(),
        }
    }

    /// Node of a Message-ID, created (and tied to its stored thread) on first use.
    fn id_node(&mut self, id: &'a str) -> usize {
        if let Some(&node) = self.by_id.get(id) {
            return node;
        }
        let node = self.uf.push();
        self.names.push(Some(id));
        self.by_id.insert(id, node);
        if let Some(&thread) = self.known.get(id) {
            let anchor = self.anchor(thread);
            self.uf.union(node, anchor);
        }
        node
    }

    /// Node of a subject fallback target.
    fn subject_node(&mut self, target: SubjectThread) -> usize {
        match target {
            SubjectThread::Node(n) => n,
            SubjectThread::Stored(thread) => self.anchor(thread),
        }
    }

    /// Node standing for a pre-existing thread.
    fn anchor(&mut self, thread: ThreadId) -> usize {
        if let Some(&node) = self.anchors.get(&thread) {
            return node;
        }
        let node = self.uf.push();
        self.names.push(None);
        self.anchors.insert(thread, node);
        node
    }

    fn finish(mut self, message_nodes: &[usize], next_id: ThreadId) -> Assignment {
        let mut thread_of_root: Vec<Option<ThreadId>> = vec![None; self.names.len()];

        // Ascending order: the first stored thread met in a component is its
        // smallest, i.e. the survivor; every later one is absorbed into it.
        let mut merges = Vec::new();
        for (&thread, &anchor) in &self.anchors {
            let root = self.uf.find(anchor);
            match thread_of_root[root] {
                None => thread_of_root[root] = Some(thread),
                Some(survivor) => merges.push((thread, survivor)),
            }
        }

        // Every id node is in the component of some batch message, so walking
        // the messages in batch order gives each new thread a fresh id.
        let mut next = next_id;
        let mut thread_of = Vec::with_capacity(message_nodes.len());
        for &node in message_nodes {
            let root = self.uf.find(node);
            let thread = match thread_of_root[root] {
                Some(thread) => thread,
                None => {
                    let fresh = next;
                    // Saturating: an id space this exhausted is a store bug,
                    // and panicking mid-import would be worse.
                    next = ThreadId(next.0.saturating_add(1));
                    thread_of_root[root] = Some(fresh);
                    fresh
                }
            };
            thread_of.push(thread);
        }

        let mut keys = Vec::new();
        for node in 0..self.names.len() {
            let Some(id) = self.names[node] else {
                continue;
            };
            let root = self.uf.find(node);
            if let Some(thread) = thread_of_root[root] {
                if self.known.get(id) != Some(&thread) {
                    keys.push((id.to_owned(), thread));
                }
            }
        }
        // Ids are unique per node, so an unstable sort is still deterministic.
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        Assignment {
            thread_of,
            keys,
            merges,
            next_id: next,
            orphans: Vec::new(),
            adopted: Vec::new(),
        }
    }
}

/// Disjoint sets with union by size and iterative path compression.
#[derive(Debug, Default)]
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn push(&mut self) -> usize {
        let node = self.parent.len();
        self.parent.push(node);
        self.size.push(1);
        node
    }

    fn find(&mut self, node: usize) -> usize {
        let mut root = node;
        while self.parent[root] != root {
            root = self.parent[root];
        }
        // Second pass points the whole path at the root (no recursion).
        let mut current = node;
        while self.parent[current] != root {
            let next = self.parent[current];
            self.parent[current] = root;
            current = next;
        }
        root
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let (big, small) = if self.size[ra] >= self.size[rb] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small] = big;
        self.size[big] += self.size[small];
    }
}

/// Reply and forward prefixes stripped by [`subject_key`] (compared ASCII
/// case-insensitively): English, German, Scandinavian and Dutch clients.
const REPLY_PREFIXES: [&str; 6] = ["re", "fwd", "fw", "aw", "sv", "antw"];

/// Normalises a subject for the subject fallback of [`assign`].
///
/// Strips any run of leading reply/forward prefixes (`Re:`, `RE:`, `Fwd:`,
/// `Fw:`, `AW:`, `Sv:`, `Antw:`, case-insensitive, with optional counters such
/// as `Re[2]:`, optional blanks before the colon and a full-width `：`)
/// interleaved with `[tags]` like `[nova]` or `[PATCH v2 3/7]`, then collapses
/// whitespace and lowercases. A tag is kept when nothing follows it, so that
/// `Re: [ANN]` does not collapse to the empty key. The bool says whether any
/// prefix was present. An empty key means "no usable subject".
#[must_use]
pub fn subject_key(subject: &str) -> (String, bool) {
    let mut rest = subject;
    let mut reply = false;
    // Each step consumes at least one byte, so this terminates in linear time.
    loop {
        rest = rest.trim_start();
        if let Some(after) = strip_reply_prefix(rest) {
            reply = true;
            rest = after;
        } else if let Some(after) = strip_tag(rest) {
            rest = after;
        } else {
            break;
        }
    }
    let collapsed = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    (collapsed.to_lowercase(), reply)
}

/// Whether a subject key says enough to join a reply to a thread by it alone: three words
/// or more, or 20 characters. `Re: help` or `Re: [PATCH] fix typo` are written about many
/// unrelated things; joined by subject, a year of them chained into one thread.
#[must_use]
pub fn subject_is_distinctive(key: &str) -> bool {
    key.split_whitespace().count() >= 3 || key.chars().count() >= 20
}

/// Returns the text after one leading reply prefix, if `s` starts with one.
fn strip_reply_prefix(s: &str) -> Option<&str> {
    let bytes = s.as_bytes();
    let word_len = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let word = bytes.get(..word_len)?;
    if !REPLY_PREFIXES
        .iter()
        .any(|p| word.eq_ignore_ascii_case(p.as_bytes()))
    {
        return None;
    }
    // Everything consumed below is ASCII, so `end` is always a char boundary.
    let mut end = word_len;
    if bytes.get(end) == Some(&b'[') {
        let digits = bytes
            .get(end + 1..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || bytes.get(end + 1 + digits) != Some(&b']') {
            return None;
        }
        end += digits + 2;
    }
    // Any whitespace may precede the colon ("Re : x"): the same whitespace
    // that the final collapse turns into a space, which keeps keys stable.
    let after = s.get(end..)?.trim_start();
    after
        .strip_prefix(':')
        .or_else(|| after.strip_prefix('\u{ff1a}'))
}

/// Returns the text after one leading `[tag]`, unless nothing would remain.
fn strip_tag(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    // `find` returns a byte index of an ASCII char, hence a char boundary.
    let close = inner.find(']')?;
    let after = inner.get(close + 1..)?;
    if after.trim().is_empty() {
        None
    } else {
        Some(after)
    }
}

/// One message of a thread, as input to [`tree`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeInput {
    /// The message's own Message-ID.
    pub message_id: String,
    /// References in order, then In-Reply-To; hostile content is tolerated.
    pub refs: Vec<String>,
    /// Message date in seconds since the Unix epoch; orders siblings and roots.
    pub date: i64,
}

/// One row of the flattened thread tree returned by [`tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// Message-ID of this node (a real message or a ghost).
    pub message_id: String,
    /// True for a referenced message that is not part of the input.
    pub is_ghost: bool,
    /// Distance from the node's root (roots have depth 0).
    pub depth: u32,
    /// Index of the parent node in the returned vector; `None` for roots.
    pub parent: Option<usize>,
}

/// Builds the JWZ reply tree of one thread, flattened in pre-order.
///
/// Parents: a message's own last ref is its parent (its own claim overrides
/// anything other messages imply); a ghost, or a message without usable refs,
/// takes the first parent implied by a consecutive pair of some message's
/// References. Messages are visited by `(date, message_id, input position)`,
/// so "first" does not depend on input order. Empty refs and self-references
/// are ignored.
///
/// Loops: instead of JWZ's incremental ancestor walks, which are quadratic on
/// hostile input, the parent links are decided first and every cycle is then
/// broken in one linear pass by detaching the cycle member that sorts first
/// (real before ghost, then by date, then by Message-ID); that member becomes
/// a root. The result is always a forest.
///
/// Ghosts: a ghost is kept only when it holds at least two children together;
/// a ghost with one child is replaced by that child and a childless ghost is
/// dropped (bottom-up, so chains of ghosts collapse fully).
///
/// Order: siblings and roots by date (a ghost by its earliest descendant's
/// date), ties by Message-ID. Every input message appears exactly once; a
/// duplicate Message-ID gets its own node, which nothing can reference.
#[must_use]
pub fn tree(messages: &[TreeInput]) -> Vec<TreeNode> {
    let (forest, mut parent) = link_parents(messages);
    break_cycles(&mut parent, |c| forest.rank(c, messages));
    let (top, children) = prune_and_sort(&forest, &parent, messages);

    let mut out = Vec::with_capacity(messages.len());
    let mut stack: Vec<(usize, u32, Option<usize>)> =
        top.iter().rev().map(|&r| (r, 0, None)).collect();
    while let Some((container, depth, parent)) = stack.pop() {
        let me = out.len();
        out.push(TreeNode {
            message_id: forest.ids[container].to_owned(),
            is_ghost: forest.message[container].is_none(),
            depth,
            parent,
        });
        // Reversed so that the first child is popped, and emitted, first.
        for &kid in children[container].iter().rev() {
            stack.push((kid, depth.saturating_add(1), Some(me)));
        }
    }
    out
}

/// Creates the containers and each one's parent link, which may still form
/// cycles: a real message's own last ref, else the first References pair
/// naming the container as child.
fn link_parents(messages: &[TreeInput]) -> (Containers<'_>, Vec<Option<usize>>) {
    // Visiting by date and id makes "first guess" independent of input order.
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by(|&a, &b| {
        let (ma, mb) = (&messages[a], &messages[b]);
        ma.date
            .cmp(&mb.date)
            .then_with(|| ma.message_id.cmp(&mb.message_id))
            .then(a.cmp(&b))
    });

    let mut forest = Containers::default();
    // Real messages first so that a Message-ID resolves to the real message
    // (the earliest one, for duplicates) rather than to a ghost.
    let mut container_of = vec![0usize; messages.len()];
    for &i in &order {
        container_of[i] = forest.add_message(&messages[i].message_id, i);
    }

    let mut own_parent: Vec<Option<usize>> = vec![None; messages.len()];
    for &i in &order {
        let message = &messages[i];
        let mut previous: Option<usize> = None;
        for reference in &message.refs {
            // Self-references say nothing and empty ids are header debris.
            if reference.is_empty() || *reference == message.message_id {
                continue;
            }
            let current = forest.id_container(reference);
            if let Some(p) = previous {
                if p != current && forest.guess[current].is_none() {
                    forest.guess[current] = Some(p);
                }
            }
            previous = Some(current);
        }
        own_parent[i] = previous;
    }

    let mut parent = forest.guess.clone();
    for (i, own) in own_parent.iter().enumerate() {
        if own.is_some() {
            parent[container_of[i]] = *own;
        }
    }
    (forest, parent)
}

/// Builds child lists from a forest of parent links, prunes ghosts bottom-up
/// and sorts roots and siblings. Returns the roots and the child lists.
fn prune_and_sort(
    forest: &Containers<'_>,
    parent: &[Option<usize>],
    messages: &[TreeInput],
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let count = parent.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut roots = Vec::new();
    for (container, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(container),
            None => roots.push(container),
        }
    }

    // Breadth-first order lists parents before children; walking it backwards
    // is a bottom-up pass without recursion.
    let mut bfs = roots.clone();
    let mut head = 0;
    while head < bfs.len() {
        let container = bfs[head];
        head += 1;
        bfs.extend_from_slice(&children[container]);
    }

    let mut fate = vec![Fate::Keep; count];
    // Sort key: a real message's own date, a ghost's earliest descendant date.
    let mut sort_date = vec![i64::MAX; count];
    let mut subtree_min = vec![i64::MAX; count];
    for &container in bfs.iter().rev() {
        let kids = std::mem::take(&mut children[container]);
        let kept: Vec<usize> = kids
            .into_iter()
            .filter_map(|k| fate[k].resolve(k))
            .collect();
        let kids_min = kept.iter().map(|&k| subtree_min[k]).min();
        if let Some(i) = forest.message[container] {
            let date = messages[i].date;
            sort_date[container] = date;
            subtree_min[container] = kids_min.map_or(date, |m| m.min(date));
        } else {
            // Every kept subtree has a real leaf, so a kept ghost has a date.
            let earliest = kids_min.unwrap_or(i64::MAX);
            sort_date[container] = earliest;
            subtree_min[container] = earliest;
            fate[container] = match kept.as_slice() {
                [] => Fate::Drop,
                [only] => Fate::Replace(*only),
                _ => Fate::Keep,
            };
        }
        children[container] = kept;
    }

    let sibling_order = |a: &usize, b: &usize| {
        sort_date[*a]
            .cmp(&sort_date[*b])
            .then_with(|| forest.ids[*a].cmp(forest.ids[*b]))
            .then(a.cmp(b))
    };
    let mut top: Vec<usize> = roots.iter().filter_map(|&r| fate[r].resolve(r)).collect();
    top.sort_by(sibling_order);
    for kids in &mut children {
        kids.sort_by(sibling_order);
    }
    (top, children)
}

/// What ghost pruning does with a container.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Keep,
    /// Replaced by its only surviving child (already final).
    Replace(usize),
    Drop,
}

impl Fate {
    /// What stands in the place of `container` after pruning, if anything.
    fn resolve(self, container: usize) -> Option<usize> {
        match self {
            Fate::Keep => Some(container),
            Fate::Replace(by) => Some(by),
            Fate::Drop => None,
        }
    }
}

/// JWZ containers: one per Message-ID, plus one per duplicate message.
#[derive(Debug, Default)]
struct Containers<'a> {
    ids: Vec<&'a str>,
    /// Index into the input for real messages; `None` for ghosts.
    message: Vec<Option<usize>>,
    /// First parent implied by a References pair, if any.
    guess: Vec<Option<usize>>,
    by_id: HashMap<&'a str, usize>,
}

impl<'a> Containers<'a> {
    fn push(&mut self, id: &'a str, message: Option<usize>) -> usize {
        let container = self.ids.len();
        self.ids.push(id);
        self.message.push(message);
        self.guess.push(None);
        container
    }

    fn add_message(&mut self, id: &'a str, input: usize) -> usize {
        let container = self.push(id, Some(input));
        // A duplicate keeps its own container but is not addressable by id.
        self.by_id.entry(id).or_insert(container);
        container
    }

    fn id_container(&mut self, id: &'a str) -> usize {
        if let Some(&container) = self.by_id.get(id) {
            return container;
        }
        let container = self.push(id, None);
        self.by_id.insert(id, container);
        container
    }

    /// Which cycle member to detach: the earliest real message, else the
    /// smallest ghost id; the container index makes the order total.
    fn rank(&self, container: usize, messages: &[TreeInput]) -> (bool, i64, &'a str, usize) {
        match self.message[container] {
            Some(i) => (false, messages[i].date, self.ids[container], container),
            None => (true, i64::MAX, self.ids[container], container),
        }
    }
}

/// Turns a parent-pointer graph (each node has at most one parent) into a
/// forest by cutting, in every cycle, the parent link of the member with the
/// smallest `rank`. Linear: every node is walked once.
fn break_cycles<K: Ord>(parent: &mut [Option<usize>], rank: impl Fn(usize) -> K) {
    const UNSEEN: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![UNSEEN; parent.len()];
    let mut position = vec![0usize; parent.len()];
    let mut path = Vec::new();
    for start in 0..parent.len() {
        if state[start] != UNSEEN {
            continue;
        }
        path.clear();
        let mut node = start;
        loop {
            match state[node] {
                UNSEEN => {
                    state[node] = ON_PATH;
                    position[node] = path.len();
                    path.push(node);
                    match parent[node] {
                        Some(p) => node = p,
                        None => break,
                    }
                }
                ON_PATH => {
                    // The path from `node` onwards is exactly one cycle.
                    let cycle = &path[position[node]..];
                    if let Some(&cut) = cycle.iter().min_by_key(|&&c| rank(c)) {
                        parent[cut] = None;
                    }
                    break;
                }
                _ => break,
            }
        }
        for &walked in &path {
            state[walked] = DONE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---------------------------------------------------------------- helpers

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    fn msg(id: &str, refs: &[&str]) -> NewMessage {
        NewMessage {
            message_id: id.to_owned(),
            refs: strings(refs),
            subject_key: None,
            joins_by_subject: false,
            date: None,
        }
    }

    fn reply(id: &str, key: &str, date: i64) -> NewMessage {
        NewMessage {
            message_id: id.to_owned(),
            refs: Vec::new(),
            subject_key: Some(key.to_owned()),
            joins_by_subject: true,
            date: Some(date),
        }
    }

    /// A message that starts a topic: its subject counts, but it joins nothing by it.
    fn post(id: &str, key: &str, date: i64) -> NewMessage {
        NewMessage {
            joins_by_subject: false,
            ..reply(id, key, date)
        }
    }

    fn known_map(pairs: &[(&str, i64)]) -> HashMap<String, ThreadId> {
        pairs
            .iter()
            .map(|&(id, t)| (id.to_owned(), ThreadId(t)))
            .collect()
    }

    /// Stored messages under subject keys: (key, thread, date), each a message of its own.
    fn subjects(entries: &[(&str, i64, i64)]) -> StoredSubjects {
        let mut stored = StoredSubjects::default();
        for &(key, thread, date) in entries {
            stored
                .activity
                .entry(key.to_owned())
                .or_default()
                .push(SubjectMessage {
                    message_id: format!("stored-{key}-{thread}-{date}"),
                    thread: ThreadId(thread),
                    date,
                });
        }
        stored
    }

    /// What the store does with an assignment: write keys, then rewrite merges.
    fn apply(known: &mut HashMap<String, ThreadId>, a: &Assignment) {
        for (id, t) in &a.keys {
            known.insert(id.clone(), *t);
        }
        for (_, t) in known.iter_mut() {
            if let Some(&(_, survivor)) = a.merges.iter().find(|(absorbed, _)| absorbed == t) {
                *t = survivor;
            }
        }
    }

    struct AssignCase {
        name: &'static str,
        batch: Vec<NewMessage>,
        known: &'static [(&'static str, i64)],
        subjects: &'static [(&'static str, i64, i64)],
        thread_of: &'static [i64],
        keys: &'static [(&'static str, i64)],
        merges: &'static [(i64, i64)],
        next_id: i64,
    }

    const NEXT: i64 = 100;
    const DAY: i64 = 86_400;
    const T0: i64 = 1_700_000_000;

    fn check_assign(case: &AssignCase) {
        let known = known_map(case.known);
        let subj = subjects(case.subjects);
        let got = assign(&case.batch, &known, &subj, ThreadId(NEXT));
        let want = Assignment {
            thread_of: case.thread_of.iter().map(|&t| ThreadId(t)).collect(),
            keys: case
                .keys
                .iter()
                .map(|&(id, t)| (id.to_owned(), ThreadId(t)))
                .collect(),
            merges: case
                .merges
                .iter()
                .map(|&(a, s)| (ThreadId(a), ThreadId(s)))
                .collect(),
            next_id: ThreadId(case.next_id),
            // Orphans have tests of their own.
            orphans: got.orphans.clone(),
            adopted: Vec::new(),
        };
        assert_eq!(got, want, "case {}", case.name);
        // Same input, same output: HashMap iteration order must not leak.
        let again = assign(&case.batch, &known, &subj, ThreadId(NEXT));
        assert_eq!(got, again, "case {} not deterministic", case.name);
    }

    // ------------------------------------------------------------ assign()

    #[test]
    fn assign_cases() {
        let cases = vec![
            AssignCase {
                name: "new messages get fresh ids in batch order",
                batch: vec![msg("a", &[]), msg("b", &["z"]), msg("c", &["a"])],
                known: &[],
                subjects: &[],
                thread_of: &[100, 101, 100],
                keys: &[("a", 100), ("b", 101), ("c", 100), ("z", 101)],
                merges: &[],
                next_id: 102,
            },
            AssignCase {
                name: "reply to a known message joins its thread",
                batch: vec![msg("b", &["a"])],
                known: &[("a", 7)],
                subjects: &[],
                thread_of: &[7],
                keys: &[("b", 7)],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "two existing threads joined: smallest survives",
                batch: vec![msg("c", &["a", "b"])],
                known: &[("a", 5), ("b", 3), ("x", 5)],
                subjects: &[],
                thread_of: &[3],
                keys: &[("a", 3), ("c", 3)],
                merges: &[(5, 3)],
                next_id: 100,
            },
            AssignCase {
                name: "three threads, joined in two steps, survivor is final",
                batch: vec![msg("x", &["a", "b"]), msg("y", &["c", "x"])],
                known: &[("a", 5), ("b", 9), ("c", 3)],
                subjects: &[],
                thread_of: &[3, 3],
                keys: &[("a", 3), ("b", 3), ("x", 3), ("y", 3)],
                merges: &[(5, 3), (9, 3)],
                next_id: 100,
            },
            AssignCase {
                name: "ids sharing a stored thread are joined through it",
                batch: vec![msg("x", &["a"]), msg("y", &["b", "c"])],
                known: &[("a", 5), ("b", 5), ("c", 3)],
                subjects: &[],
                thread_of: &[3, 3],
                keys: &[("a", 3), ("b", 3), ("x", 3), ("y", 3)],
                merges: &[(5, 3)],
                next_id: 100,
            },
            AssignCase {
                name: "ghost filled in keeps its thread id",
                batch: vec![msg("g", &[])],
                known: &[("g", 7), ("child", 7)],
                subjects: &[],
                thread_of: &[7],
                keys: &[],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "ghost filled in with new refs pulls them in",
                batch: vec![msg("g", &["p"])],
                known: &[("g", 7)],
                subjects: &[],
                thread_of: &[7],
                keys: &[("p", 7)],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "new batch message that later messages reference",
                batch: vec![msg("b", &["a"]), msg("a", &[])],
                known: &[],
                subjects: &[],
                thread_of: &[100, 100],
                keys: &[("a", 100), ("b", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "self reference, duplicates, loops and empty refs",
                batch: vec![
                    msg("a", &["a", "", "b", "b", "a"]),
                    msg("b", &["a", "b"]),
                    msg("c", &["c"]),
                ],
                known: &[],
                subjects: &[],
                thread_of: &[100, 100, 101],
                keys: &[("a", 100), ("b", 100), ("c", 101)],
                merges: &[],
                next_id: 102,
            },
            AssignCase {
                name: "duplicate message in the batch",
                batch: vec![msg("a", &[]), msg("a", &["r"])],
                known: &[],
                subjects: &[],
                thread_of: &[100, 100],
                keys: &[("a", 100), ("r", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "empty batch",
                batch: vec![],
                known: &[("a", 1)],
                subjects: &[],
                thread_of: &[],
                keys: &[],
                merges: &[],
                next_id: 100,
            },
            // Subject fallback.
            AssignCase {
                name: "subject: joins stored thread within 30 days",
                batch: vec![reply("m", "foo", T0 + 29 * DAY)],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[4],
                keys: &[("m", 4)],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "subject: exactly 30 days is still inside",
                batch: vec![reply("m", "foo", T0 + 30 * DAY)],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[4],
                keys: &[("m", 4)],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "subject: not after 30 days",
                batch: vec![reply("m", "foo", T0 + 30 * DAY + 1)],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[100],
                keys: &[("m", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: thread active up to a day later still joins",
                batch: vec![reply("m", "foo", T0 - DAY)],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[4],
                keys: &[("m", 4)],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "subject: thread active more than a day later does not",
                batch: vec![reply("m", "foo", T0 - DAY - 1)],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[100],
                keys: &[("m", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: other key does not join",
                batch: vec![reply("m", "bar", T0)],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[100],
                keys: &[("m", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: not when refs exist",
                batch: vec![NewMessage {
                    refs: strings(&["r"]),
                    ..reply("m", "foo", T0)
                }],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[100],
                keys: &[("m", 100), ("r", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: only a self reference counts as no refs",
                batch: vec![NewMessage {
                    refs: strings(&["m", ""]),
                    ..reply("m", "foo", T0)
                }],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[4],
                keys: &[("m", 4)],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "subject: not without a reply prefix (no key)",
                batch: vec![NewMessage {
                    subject_key: None,
                    ..reply("m", "foo", T0)
                }],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[100],
                keys: &[("m", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: a post without a reply prefix joins nothing by its subject",
                batch: vec![post("m", "foo", T0)],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[100],
                keys: &[("m", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: a reply joins the post of its subject earlier in the batch",
                batch: vec![post("p", "foo", T0), reply("r", "foo", T0 + DAY)],
                known: &[],
                subjects: &[],
                thread_of: &[100, 100],
                keys: &[("p", 100), ("r", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: not with an empty key",
                batch: vec![reply("m", "", T0)],
                known: &[],
                subjects: &[("", 4, T0)],
                thread_of: &[100],
                keys: &[("m", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: not without a date",
                batch: vec![NewMessage {
                    date: None,
                    ..reply("m", "foo", T0)
                }],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[100],
                keys: &[("m", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: a known message is never moved",
                batch: vec![reply("m", "foo", T0)],
                known: &[("m", 2)],
                subjects: &[("foo", 4, T0)],
                thread_of: &[2],
                keys: &[],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "subject: earlier batch messages chain the window",
                batch: vec![
                    reply("a", "foo", T0),
                    reply("b", "foo", T0 + 25 * DAY),
                    reply("c", "foo", T0 + 50 * DAY),
                    reply("d", "foo", T0 + 90 * DAY),
                ],
                known: &[],
                subjects: &[],
                thread_of: &[100, 100, 100, 101],
                keys: &[("a", 100), ("b", 100), ("c", 100), ("d", 101)],
                merges: &[],
                next_id: 102,
            },
            AssignCase {
                name: "subject: batch message with refs registers its thread",
                batch: vec![
                    NewMessage {
                        refs: strings(&["root"]),
                        ..reply("a", "foo", T0)
                    },
                    reply("b", "foo", T0 + DAY),
                ],
                known: &[("root", 8)],
                subjects: &[("foo", 4, T0 - 100 * DAY)],
                thread_of: &[8, 8],
                keys: &[("a", 8), ("b", 8)],
                merges: &[],
                next_id: 100,
            },
            AssignCase {
                name: "subject: the stored thread stays latest over an older batch message",
                batch: vec![
                    reply("old", "foo", T0 - 60 * DAY),
                    reply("new", "foo", T0 + DAY),
                ],
                known: &[],
                subjects: &[("foo", 4, T0)],
                thread_of: &[100, 4],
                keys: &[("new", 4), ("old", 100)],
                merges: &[],
                next_id: 101,
            },
            AssignCase {
                name: "subject: fallback plus refs elsewhere merge stored threads",
                batch: vec![reply("m", "foo", T0), msg("n", &["m", "x"])],
                known: &[("x", 5)],
                subjects: &[("foo", 4, T0)],
                thread_of: &[4, 4],
                keys: &[("m", 4), ("n", 4), ("x", 4)],
                merges: &[(5, 4)],
                next_id: 100,
            },
            AssignCase {
                name: "subject: hostile dates do not overflow",
                batch: vec![reply("m", "foo", i64::MIN), reply("n", "bar", i64::MAX)],
                known: &[],
                subjects: &[("foo", 4, i64::MAX), ("bar", 5, i64::MIN)],
                thread_of: &[100, 101],
                keys: &[("m", 100), ("n", 101)],
                merges: &[],
                next_id: 102,
            },
        ];
        for case in &cases {
            check_assign(case);
        }
    }

    /// The store between batches: thread keys, merges, every message under each subject and
    /// the orphans (threads come from `known`, as the store reads them from `messages`).
    #[derive(Default)]
    struct FakeStore {
        known: HashMap<String, ThreadId>,
        /// Message-ID → (subject key, date).
        activity: BTreeMap<String, (String, i64)>,
        orphans: BTreeMap<String, (String, i64)>,
        next: i64,
    }

    impl FakeStore {
        fn stored(&self) -> StoredSubjects {
            let mut stored = StoredSubjects::default();
            for (rows, map) in [
                (&self.activity, &mut stored.activity),
                (&self.orphans, &mut stored.orphans),
            ] {
                for (id, (key, date)) in rows {
                    map.entry(key.clone()).or_default().push(SubjectMessage {
                        message_id: id.clone(),
                        thread: self.known[id],
                        date: *date,
                    });
                }
            }
            stored
        }

        fn import(&mut self, batch: &[NewMessage]) -> Vec<ThreadId> {
            let a = assign(batch, &self.known, &self.stored(), ThreadId(self.next));
            apply(&mut self.known, &a);
            for (id, key, date) in &a.orphans {
                self.orphans.insert(id.clone(), (key.clone(), *date));
            }
            for id in &a.adopted {
                assert!(self.orphans.remove(id).is_some(), "adopted {id} unknown");
            }
            for m in batch {
                if let (Some(key), Some(date)) = (m.subject_key.clone(), m.date) {
                    self.activity.insert(m.message_id.clone(), (key, date));
                }
            }
            self.next = a.next_id.0;
            a.thread_of
        }
    }

    /// Which messages share a thread, whatever the thread ids.
    fn partition(store: &FakeStore, batch: &[NewMessage]) -> Vec<Vec<String>> {
        let mut groups: BTreeMap<ThreadId, Vec<String>> = BTreeMap::new();
        for m in batch {
            groups
                .entry(store.known[&m.message_id])
                .or_default()
                .push(m.message_id.clone());
        }
        let mut out: Vec<Vec<String>> = groups.into_values().collect();
        out.sort();
        out
    }

    #[test]
    fn threads_do_not_depend_on_how_an_import_is_cut_into_batches() {
        let batch = vec![
            post("p", "quotas", T0),
            reply("r1", "quotas", T0 + 3_600),
            msg("a", &[]),
            NewMessage {
                refs: strings(&["p"]),
                ..post("q", "quotas", T0 + 2 * DAY)
            },
            reply("old", "quotas", T0 - 400 * DAY),
            reply("r2", "quotas", T0 + 20 * DAY),
            msg("b", &["a"]),
            reply("far", "quotas", T0 + 90 * DAY),
            post("x", "other", T0),
            reply("y", "other", T0 - 2 * DAY),
        ];
        let mut whole = FakeStore::default();
        whole.import(&batch);
        let want = partition(&whole, &batch);
        assert!(want.contains(&strings(&["p", "r1", "q", "r2"])), "{want:?}");
        for size in 1..batch.len() {
            let mut store = FakeStore::default();
            for chunk in batch.chunks(size) {
                store.import(chunk);
            }
            assert_eq!(partition(&store, &batch), want, "batches of {size}");
        }
    }

    /// Every order of these "files" gives the same threads: a reply imported before its
    /// original is adopted by it; one imported after joins it.
    #[test]
    fn threads_do_not_depend_on_the_order_files_are_imported_in() {
        let files = [
            vec![post("p", "quotas", T0), post("x", "other", T0)],
            vec![
                reply("r1", "quotas", T0 + 2 * DAY),
                reply("r2", "quotas", T0 + 20 * DAY),
                reply("y", "other", T0 - 2 * DAY),
            ],
            vec![
                post("q", "quotas", T0 + 60 * DAY),
                reply("r3", "quotas", T0 + 65 * DAY),
                reply("late", "other", T0 + 45 * DAY),
            ],
        ];
        let all: Vec<NewMessage> = files.iter().flatten().cloned().collect();
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let mut want = None;
        for order in orders {
            for size in [1, 2, 3] {
                let mut store = FakeStore::default();
                for &file in &order {
                    for chunk in files[file].chunks(size) {
                        store.import(chunk);
                    }
                }
                let got = partition(&store, &all);
                // `y` is two days older than `x` (out of reach either way); `late` is
                // 45 days after `x`, too late to join it.
                assert!(
                    got.contains(&strings(&["p", "r1", "r2"])),
                    "{order:?}: {got:?}"
                );
                assert!(got.contains(&strings(&["q", "r3"])), "{order:?}: {got:?}");
                assert!(got.contains(&strings(&["y"])), "{order:?}: {got:?}");
                let want = want.get_or_insert_with(|| got.clone());
                assert_eq!(&got, want, "order {order:?}, batches of {size}");
                // What stays an orphan: replies nothing was found for.
                let open: Vec<&str> = store.orphans.keys().map(String::as_str).collect();
                assert_eq!(open, ["late", "y"], "order {order:?}, batches of {size}");
            }
        }
    }

    #[test]
    fn orphans_are_adopted_by_messages_dated_near_them() {
        let stored = |id: &str, thread: i64, date: i64| SubjectMessage {
            message_id: id.to_owned(),
            thread: ThreadId(thread),
            date,
        };
        let list = vec![
            stored("o1", 7, T0 + DAY),
            stored("o2", 8, T0 + 29 * DAY),
            stored("o3", 9, T0 + 31 * DAY),
            stored("o4", 5, T0 - 2 * DAY),
        ];
        let orphans = StoredSubjects {
            activity: [("quotas".to_owned(), list.clone())].into_iter().collect(),
            orphans: [("quotas".to_owned(), list)].into_iter().collect(),
        };
        let known = known_map(&[("o1", 7), ("o2", 8), ("o3", 9), ("o4", 5), ("old", 3)]);

        // A ghost filled in adopts them too, and keeps its thread.
        let batch = vec![post("old", "quotas", T0)];
        let a = assign(&batch, &known, &orphans, ThreadId(NEXT));
        assert_eq!(a.adopted, strings(&["o1", "o2"]));
        assert_eq!(
            a.merges,
            vec![(ThreadId(7), ThreadId(3)), (ThreadId(8), ThreadId(3))]
        );

        // A new one adopts what lies from 1 day before it to 30 days after it.
        let batch = vec![post("p", "quotas", T0)];
        let a = assign(&batch, &known, &orphans, ThreadId(NEXT));
        assert_eq!(a.adopted, strings(&["o1", "o2"]));
        assert_eq!(a.merges, vec![(ThreadId(8), ThreadId(7))]);
        assert_eq!(a.thread_of, vec![ThreadId(7)]);
        assert!(a.orphans.is_empty(), "{a:?}");

        // A reply that finds nothing is a new orphan, and adopts what it can itself.
        let batch = vec![reply("r", "quotas", T0 - 20 * DAY)];
        let a = assign(&batch, &known, &orphans, ThreadId(NEXT));
        assert_eq!(a.adopted, strings(&["o1", "o4"]));
        assert_eq!(
            a.orphans,
            vec![("r".to_owned(), "quotas".to_owned(), T0 - 20 * DAY)]
        );
        assert_eq!(a.thread_of, vec![ThreadId(5)]);

        // A reply near stored messages joins the latest one dated up to 1 day after it (`o3`),
        // and adopts the orphans that would have found it.
        let batch = vec![reply("r", "quotas", T0 + 30 * DAY)];
        let a = assign(&batch, &known, &orphans, ThreadId(NEXT));
        assert_eq!(a.adopted, strings(&["o2", "o3"]));
        assert_eq!(a.merges, vec![(ThreadId(9), ThreadId(8))]);
        assert!(a.orphans.is_empty(), "{a:?}");
        let alone = StoredSubjects {
            activity: orphans.activity.clone(),
            orphans: HashMap::new(),
        };
        let a = assign(&batch, &known, &alone, ThreadId(NEXT));
        assert_eq!(a.thread_of, vec![ThreadId(9)]);

        // Another subject adopts nothing.
        let batch = vec![post("p", "other", T0)];
        let a = assign(&batch, &known, &orphans, ThreadId(NEXT));
        assert!(a.adopted.is_empty() && a.orphans.is_empty(), "{a:?}");
    }

    #[test]
    fn assign_is_idempotent_after_store_applies_it() {
        let batch = vec![
            msg("a", &[]),
            msg("b", &["a"]),
            msg("c", &["x", "y"]),
            msg("d", &["g1", "g2"]),
            reply("e", "foo", T0),
            reply("f", "foo", T0 + DAY),
        ];
        let subj = subjects(&[("foo", 4, T0 - DAY)]);
        let mut known = known_map(&[("x", 9), ("y", 6), ("g2", 6), ("other", 9)]);
        let first = assign(&batch, &known, &subj, ThreadId(NEXT));
        assert_eq!(first.merges, vec![(ThreadId(9), ThreadId(6))]);
        apply(&mut known, &first);
        assert_eq!(known.get("other"), Some(&ThreadId(6)));

        let second = assign(&batch, &known, &subj, ThreadId(first.next_id.0));
        assert_eq!(second.thread_of, first.thread_of);
        assert!(second.keys.is_empty(), "{:?}", second.keys);
        assert!(second.merges.is_empty(), "{:?}", second.merges);
        assert_eq!(second.next_id, first.next_id);
    }

    #[test]
    fn assign_long_reference_chain() {
        let refs: Vec<String> = (0..20_000).map(|i| format!("r{i}@x")).collect();
        let mut batch = vec![NewMessage {
            message_id: "m@x".to_owned(),
            refs: refs.clone(),
            subject_key: None,
            joins_by_subject: false,
            date: Some(T0),
        }];
        // Hostile variant: the same chain reversed with the message in it.
        let mut reversed = refs;
        reversed.reverse();
        reversed.push("m@x".to_owned());
        batch.push(NewMessage {
            message_id: "n@x".to_owned(),
            refs: reversed,
            subject_key: None,
            joins_by_subject: false,
            date: Some(T0),
        });
        let known = known_map(&[("r19999@x", 3), ("r0@x", 8)]);
        let got = assign(&batch, &known, &StoredSubjects::default(), ThreadId(NEXT));
        assert_eq!(got.thread_of, vec![ThreadId(3), ThreadId(3)]);
        assert_eq!(got.merges, vec![(ThreadId(8), ThreadId(3))]);
        assert_eq!(got.keys.len(), 20_001); // all but r19999@x
        assert!(got.keys.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(got.next_id, ThreadId(NEXT));
    }

    #[test]
    fn assign_deep_reply_chain() {
        let batch: Vec<NewMessage> = (0..20_000)
            .map(|i| {
                let refs = if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("m{}", i - 1)]
                };
                NewMessage {
                    message_id: format!("m{i}"),
                    refs,
                    subject_key: None,
                    joins_by_subject: false,
                    date: Some(T0 + i),
                }
            })
            .rev()
            .collect();
        let got = assign(
            &batch,
            &HashMap::new(),
            &StoredSubjects::default(),
            ThreadId(NEXT),
        );
        assert!(got.thread_of.iter().all(|&t| t == ThreadId(NEXT)));
        assert_eq!(got.keys.len(), 20_000);
        assert_eq!(got.next_id, ThreadId(NEXT + 1));
    }

    // ------------------------------------------------------- subject_key()

    #[test]
    fn generic_subjects_join_nothing_by_subject() {
        for (key, distinctive) in [
            ("help", false),
            ("fix typo", false),
            ("question about quotas", true),
            ("r 4.0.0 released", true),
            ("nfsd4_cb_recall_never_returns", true),
            ("", false),
        ] {
            assert_eq!(subject_is_distinctive(key), distinctive, "{key:?}");
        }
    }

    #[test]
    fn subject_key_cases() {
        let cases: &[(&str, &str, bool)] = &[
            ("foo", "foo", false),
            ("Re: foo", "foo", true),
            ("re:foo", "foo", true),
            ("RE: RE: Foo  Bar", "foo bar", true),
            ("Re[2]: foo", "foo", true),
            ("Re[12] : foo", "foo", true),
            ("Re : foo", "foo", true),
            ("Re\n: foo", "foo", true),
            ("Fwd: Re: x", "x", true),
            ("AW: Sv: Antw: Fw: FWD: x", "x", true),
            ("[nova] Re: [nova] Hello", "hello", true),
            ("[PATCH v2 3/7] mm: fix leak", "mm: fix leak", false),
            ("[Rd] Re: bug in  lm()", "bug in lm()", true),
            ("Re: [] x", "x", true),
            ("Re: [ANN]", "[ann]", true),
            ("[a] [b]", "[b]", false),
            ("Reply: foo", "reply: foo", false),
            ("Rex: foo", "rex: foo", false),
            ("Re foo", "re foo", false),
            ("Re", "re", false),
            ("Re:", "", true),
            ("Re: Re:  ", "", true),
            ("", "", false),
            ("   \t\n", "", false),
            ("[", "[", false),
            ("[unclosed tag", "[unclosed tag", false),
            ("]", "]", false),
            ("Re[: x", "re[: x", false),
            ("Re[]: x", "re[]: x", false),
            ("Re[2x]: x", "re[2x]: x", false),
            ("Re[99999999999999999999]: x", "x", true),
            ("Re:\tfoo\r\nbar", "foo bar", true),
            ("Ré: foo", "ré: foo", false),
            ("Re: Ünïcödé  STRASSE", "ünïcödé strasse", true),
            ("Re：全角", "全角", true),
            ("回复: 你好", "回复: 你好", false),
            ("[ünï] Ωmega", "ωmega", false),
            ("Re: ΟΔΥΣΣΕΥΣ", "οδυσσευς", true),
            ("\u{a0}Re:\u{2003}x", "x", true),
            ("Re: 🎉 [x] 🎉", "🎉 [x] 🎉", true),
        ];
        for &(input, key, reply) in cases {
            assert_eq!(
                subject_key(input),
                (key.to_owned(), reply),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn subject_key_never_panics_and_is_stable() {
        // Deterministic pseudo-random strings over tricky pieces.
        let pieces = [
            "Re", "re", ":", "：", "[", "]", "2", " ", "\t", "é", "ß", "Σ", "🎉", "AW", "x", "Fwd",
            "[PATCH]", "\u{301}", "İ",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5_000 {
            let mut s = String::new();
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let len = (state >> 59) as usize;
            for _ in 0..len {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                s.push_str(pieces[(state >> 33) as usize % pieces.len()]);
            }
            let (key, _) = subject_key(&s);
            // Normalising a key again must not change it.
            assert_eq!(subject_key(&key).0, key, "input {s:?}");
        }
        // A long hostile subject stays linear.
        let long = "Re: [".repeat(50_000);
        assert!(subject_key(&long).1);
    }

    // -------------------------------------------------------------- tree()

    fn input(id: &str, refs: &[&str], date: i64) -> TreeInput {
        TreeInput {
            message_id: id.to_owned(),
            refs: strings(refs),
            date,
        }
    }

    /// Asserts the structural invariants every output of `tree` must satisfy.
    fn check_invariants(messages: &[TreeInput], nodes: &[TreeNode]) {
        for (i, node) in nodes.iter().enumerate() {
            match node.parent {
                None => assert_eq!(node.depth, 0, "root {i} has a depth"),
                Some(p) => {
                    assert!(p < i, "parent after child at {i}");
                    assert_eq!(nodes[p].depth + 1, node.depth, "depth at {i}");
                    // Pre-order: the parent is the nearest shallower node above.
                    let nearest = nodes[..i].iter().rposition(|n| n.depth < node.depth);
                    assert_eq!(nearest, Some(p), "not pre-order at {i}");
                }
            }
        }
        let mut real: Vec<&str> = nodes
            .iter()
            .filter(|n| !n.is_ghost)
            .map(|n| n.message_id.as_str())
            .collect();
        let mut wanted: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
        real.sort_unstable();
        wanted.sort_unstable();
        assert_eq!(real, wanted, "every input exactly once");
    }

    /// Renders a checked tree as indented lines, `*` marking ghosts.
    fn render(messages: &[TreeInput], nodes: &[TreeNode]) -> Vec<String> {
        check_invariants(messages, nodes);
        nodes
            .iter()
            .map(|n| {
                format!(
                    "{}{}{}",
                    "  ".repeat(n.depth as usize),
                    n.message_id,
                    if n.is_ghost { "*" } else { "" }
                )
            })
            .collect()
    }

    fn check_tree(name: &str, messages: &[TreeInput], expected: &[&str]) {
        let got = render(messages, &tree(messages));
        assert_eq!(got, expected, "case {name}");
        // Input order must not matter.
        let mut reversed = messages.to_vec();
        reversed.reverse();
        assert_eq!(
            render(&reversed, &tree(&reversed)),
            expected,
            "case {name} reversed"
        );
    }

    #[test]
    fn tree_cases() {
        let cases: Vec<(&str, Vec<TreeInput>, Vec<&str>)> = vec![
            ("empty", vec![], vec![]),
            ("single", vec![input("a", &[], 1)], vec!["a"]),
            (
                "simple reply chain",
                vec![
                    input("a", &[], 1),
                    input("b", &["a"], 2),
                    input("c", &["a", "b"], 3),
                ],
                vec!["a", "  b", "    c"],
            ),
            (
                "siblings by date, ties by id",
                vec![
                    input("a", &[], 1),
                    input("late", &["a"], 9),
                    input("early", &["a"], 2),
                    input("tie-b", &["a"], 5),
                    input("tie-a", &["a"], 5),
                ],
                vec!["a", "  early", "  tie-a", "  tie-b", "  late"],
            ),
            (
                "ghost parent joins two replies",
                vec![input("c", &["g"], 3), input("b", &["g"], 2)],
                vec!["g*", "  b", "  c"],
            ),
            (
                "ghost with one child is pruned",
                vec![input("a", &[], 1), input("c", &["a", "g"], 3)],
                vec!["a", "  c"],
            ),
            (
                "ghost between real messages with two children is kept",
                vec![
                    input("a", &[], 1),
                    input("c", &["a", "g"], 3),
                    input("d", &["a", "g"], 2),
                ],
                vec!["a", "  g*", "    d", "    c"],
            ),
            (
                "chain of ghosts collapses to the real message",
                vec![input("m", &["g1", "g2", "g3"], 1)],
                vec!["m"],
            ),
            (
                "ghost sorted by its earliest descendant",
                vec![
                    input("a", &[], 1),
                    input("b", &["a"], 5),
                    input("x", &["a", "g"], 7),
                    input("y", &["a", "g"], 3),
                ],
                vec!["a", "  g*", "    y", "    x", "  b"],
            ),
            (
                "only In-Reply-To",
                vec![
                    input("a", &[], 1),
                    input("b", &["a"], 2),
                    input("c", &["b"], 3),
                ],
                vec!["a", "  b", "    c"],
            ),
            (
                "own refs override a guess from another message",
                vec![
                    input("a", &[], 1),
                    input("b", &[], 2),
                    input("c", &["a"], 3),
                    input("d", &["b", "c"], 4),
                ],
                vec!["a", "  c", "    d", "b"],
            ),
            (
                "message without refs takes the guess from a pair",
                vec![
                    input("a", &[], 1),
                    input("b", &[], 2),
                    input("c", &["a", "b"], 3),
                ],
                vec!["a", "  b", "    c"],
            ),
            (
                "roots sorted by date",
                vec![
                    input("z", &[], 1),
                    input("y", &[], 3),
                    input("x", &["g"], 2),
                ],
                vec!["z", "x", "y"],
            ),
            (
                "self reference",
                vec![input("a", &["a"], 1), input("b", &["b", "a", "b"], 2)],
                vec!["a", "  b"],
            ),
            (
                "A refs B and B refs A: earliest becomes root",
                vec![input("a", &["b"], 1), input("b", &["a"], 2)],
                vec!["a", "  b"],
            ),
            (
                "longer cycle",
                vec![
                    input("a", &["c"], 2),
                    input("b", &["a"], 3),
                    input("c", &["b"], 1),
                ],
                vec!["c", "  a", "    b"],
            ),
            (
                "cycle through ghosts via pairs",
                vec![input("m", &["g1", "g2"], 1), input("n", &["g2", "g1"], 2)],
                vec!["g1*", "  m", "  n"],
            ),
            (
                "duplicate ids in refs",
                vec![input("c", &["a", "b", "a", "b"], 1)],
                vec!["c"],
            ),
            (
                "duplicate ids in refs with real messages",
                vec![
                    input("a", &[], 1),
                    input("b", &["a", "b", "a"], 2),
                    input("c", &["a", "b", "a", "b"], 3),
                ],
                vec!["a", "  b", "    c"],
            ),
            (
                "empty refs are ignored",
                vec![input("a", &[""], 1), input("b", &["", "a", ""], 2)],
                vec!["a", "  b"],
            ),
            (
                "duplicate message id appears twice",
                vec![
                    input("a", &[], 1),
                    input("a", &["r"], 2),
                    input("b", &["a"], 3),
                ],
                vec!["a", "  b", "a"],
            ),
        ];
        for (name, messages, expected) in &cases {
            check_tree(name, messages, expected);
        }
    }

    #[test]
    fn tree_long_reference_chain() {
        let refs: Vec<String> = (0..20_000).map(|i| format!("r{i}")).collect();
        let messages = vec![
            TreeInput {
                message_id: "m".to_owned(),
                refs: refs.clone(),
                date: 1,
            },
            TreeInput {
                message_id: "n".to_owned(),
                refs: refs.iter().rev().cloned().collect(),
                date: 2,
            },
            TreeInput {
                message_id: "r10000".to_owned(),
                refs: refs[..10_000].to_vec(),
                date: 3,
            },
        ];
        let nodes = tree(&messages);
        // m's chain makes r0 the top; n's reversed pairs can only add the
        // guess r1 -> r0, whose cycle is cut at r0, and n hangs under r0.
        assert_eq!(
            render(&messages, &nodes),
            vec!["r0*", "  n", "  r10000", "    m"]
        );
    }

    #[test]
    fn tree_deep_reply_chain() {
        let n = 20_000;
        let mut messages: Vec<TreeInput> = (0..n)
            .map(|i| TreeInput {
                message_id: format!("m{i:05}"),
                refs: if i == 0 {
                    Vec::new()
                } else if i % 2 == 0 {
                    vec![format!("m{:05}", i - 2), format!("m{:05}", i - 1)]
                } else {
                    vec![format!("m{:05}", i - 1)]
                },
                date: i64::from(i),
            })
            .collect();
        // Close a loop at the bottom for good measure.
        messages[0].refs = vec![format!("m{:05}", n - 1)];
        for order in 0..2 {
            if order == 1 {
                messages.reverse();
            }
            let nodes = tree(&messages);
            check_invariants(&messages, &nodes);
            assert_eq!(nodes.len(), n as usize);
            assert_eq!(nodes[0].message_id, "m00000");
            assert_eq!(nodes[(n - 1) as usize].depth, n - 1);
        }
    }

    #[test]
    fn tree_hostile_random_graphs_are_forests_and_order_independent() {
        let mut state: u64 = 42;
        let mut next = |bound: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound
        };
        for _ in 0..300 {
            let count = next(12) + 1;
            let messages: Vec<TreeInput> = (0..count)
                .map(|i| TreeInput {
                    message_id: format!("m{i}"),
                    refs: (0..next(5))
                        .map(|_| format!("m{}", next(count + 4)))
                        .collect(),
                    date: i64::try_from(next(4)).unwrap_or(0),
                })
                .collect();
            let nodes = tree(&messages);
            let lines = render(&messages, &nodes);
            for rotation in 1..messages.len() {
                let mut rotated = messages.clone();
                rotated.rotate_left(rotation);
                assert_eq!(render(&rotated, &tree(&rotated)), lines, "{messages:?}");
            }
        }
    }
}
