//! Deterministic generator of a realistic sample archive of an open-source community's mailing
//! lists (threads, cross-posts, MIME and charset variety), written as mboxrd, CRLF mbox and
//! pipermail `.txt.gz` files for `archivist demo` and for benchmarks.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;

/// What to generate. The same spec always produces byte-identical files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSpec {
    /// Seed of the generator's PRNG.
    pub seed: u64,
    /// Number of weeks covered, counted from `start`.
    pub weeks: u32,
    /// Distinct messages posted per week (a whole thread counts in the week it starts). A
    /// cross-posted message is written once per list, so the files hold more copies than this.
    pub messages_per_week: u32,
    /// Unix seconds where the first week starts. Meant to be a Monday 00:00 UTC: weekday traffic
    /// and the weekly IRC meetings are laid out from it.
    pub start: i64,
}

impl SampleSpec {
    /// 2023-05-01 00:00:00 UTC, a Monday.
    pub const DEFAULT_START: i64 = 1_682_899_200;

    /// Small archive for `archivist demo`: 8 weeks, 600 distinct messages (~860 copies).
    pub fn demo() -> Self {
        Self {
            seed: 0xA4C1_1157_DE30,
            weeks: 8,
            messages_per_week: 75,
            start: Self::DEFAULT_START,
        }
    }

    /// Benchmark-sized archive: 52 weeks, 312,000 distinct messages (~1 GiB uncompressed).
    pub fn benchmark() -> Self {
        Self {
            seed: 0xBE4C_4A7C_1157,
            weeks: 52,
            messages_per_week: 6_000,
            start: Self::DEFAULT_START,
        }
    }

    /// Distinct messages this spec asks for: `weeks * messages_per_week`.
    pub fn total_messages(&self) -> u64 {
        u64::from(self.weeks) * u64::from(self.messages_per_week)
    }
}

/// How a generated file is laid out, so an importer can pick the matching reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// mboxrd with LF endings: `From addr asctime` separators; body lines matching `^>*From `
    /// carry one extra `>`.
    Mboxrd,
    /// The same as [`SampleFormat::Mboxrd`], but every line ends in CRLF.
    MboxrdCrlf,
    /// Mailman 2 pipermail `.txt.gz`: `From user at host  asctime` separators, an obfuscated
    /// `From: user at host (Name)` header, and body `From ` lines left unquoted.
    Pipermail,
}

/// One file written by [`write_sample`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    pub path: PathBuf,
    /// The list's name, also the name of the folder holding the file.
    pub list: String,
    /// Messages (copies) in this file, which is the number of separators written.
    pub messages: usize,
    pub format: SampleFormat,
}

/// Writes the sample archive under `dir`: `dev/<YYYY-MM>.mbox` (mboxrd),
/// `operators/<YYYY-Month>.txt.gz` (pipermail, with Mailman 2's `[Operators] ` subject prefix
/// and footer) and `sigs/<YYYY-MM>.mbox` (mboxrd with CRLF endings), bucketed by delivery month.
///
/// Threads belong to topics (nova scheduling, neutron OVN migration, placement upgrades, TC
/// elections, kolla images, releases, ops, i18n, security) with their own vocabulary and
/// people, run 1 to 30 messages, and about a quarter are cross-posted, each copy carrying its
/// list's own delivery and list headers. Bodies mix quoted plain text, IRC logs, inline
/// patches, HTML, multipart/alternative and attachments, in UTF-8, ISO-8859-1, KOI8-R,
/// windows-1251 and ISO-2022-JP. A few rare shapes recur every 2,500 messages (each once in
/// the demo): missing and reused Message-IDs, hostile HTML, an RFC 2231 filename, a pasted
/// git format-patch mail and unquoted body `From ` lines in the pipermail archive.
///
/// Messages are generated and written one at a time in arrival order, so memory stays flat
/// however large the spec. Files of the same name are overwritten; nothing else in `dir` is
/// touched. Returns the files in list order, then month order.
pub fn write_sample(dir: &Path, spec: &SampleSpec) -> Result<Vec<SampleFile>> {
    let end = spec.start + i64::from(spec.weeks) * WEEK;
    let mut generator = Generator::new(spec, end);
    let mut out = Output {
        dir: dir.to_path_buf(),
        lists: LISTS.iter().map(|_| ListOut::default()).collect(),
    };
    for week in 0..spec.weeks {
        let week_start = spec.start + i64::from(week) * WEEK;
        generator.plan_week(week_start, week, spec.messages_per_week as usize);
        // Nothing planned later can start before the next week, so everything earlier is final.
        generator.drain(week_start + WEEK, &mut out)?;
    }
    generator.drain(i64::MAX, &mut out)?;
    out.finish()
}

// ---------------------------------------------------------------------------------------------
// Lists, people and topics
// ---------------------------------------------------------------------------------------------

const LIST_HOST: &str = "lists.example.org";
const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;

struct ListDef {
    name: &'static str,
    description: &'static str,
    format: SampleFormat,
    /// Mailman 2 rewrites the subject and decorates the body; the Mailman 3 lists leave both.
    mailman2: bool,
    subject_prefix: Option<&'static str>,
}

#[rustfmt::skip]
const LISTS: [ListDef; 3] = [
    ListDef { name: "dev", description: "Development discussions", format: SampleFormat::Mboxrd, mailman2: false, subject_prefix: None },
    ListDef { name: "operators", description: "Operators of community clouds", format: SampleFormat::Pipermail, mailman2: true, subject_prefix: Some("[Operators] ") },
    ListDef { name: "sigs", description: "Special interest groups", format: SampleFormat::MboxrdCrlf, mailman2: false, subject_prefix: None },
];
const DEV: usize = 0;
const OPS: usize = 1;
const SIGS: usize = 2;

/// Lists whose archive leaves body `From ` lines unquoted; git format-patch text (a `From <sha>`
/// line followed by headers) stays out of them, as no reader could tell it from a separator.
fn unquoted_lists_mask() -> u8 {
    LISTS
        .iter()
        .enumerate()
        .filter(|(_, l)| l.format == SampleFormat::Pipermail)
        .fold(0, |m, (i, _)| m | 1 << i)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
    Koi8r,
    Cp1251,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cte {
    Bit8,
    Qp,
    Base64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Thunderbird,
    Gmail,
    Mutt,
    Outlook,
    Apple,
    Evolution,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Fr,
    De,
    Ru,
    Ja,
    Es,
}

use Charset::{Cp1251, Koi8r, Latin1, Utf8};
use Client::{Apple, Evolution, Gmail, Mutt, Outlook, Thunderbird};
use Cte::{Base64, Bit8, Qp};
use Lang::{De, En, Es, Fr, Ja, Ru};

/// A poster. The charset, transfer encoding and client decide how their mail looks on the wire.
struct Person {
    name: &'static str,
    addr: &'static str,
    /// UTC offset in minutes (May, so summer time where it applies).
    tz: i64,
    cs: Charset,
    cte: Cte,
    client: Client,
    lang: Lang,
    /// Quotes with a bare `>` instead of `> `.
    tight: bool,
    org: &'static str,
}

#[rustfmt::skip]
const PEOPLE: &[Person] = &[
    Person { name: "Alice Johnson", addr: "alice@example.org", tz: -240, cs: Utf8, cte: Bit8, client: Thunderbird, lang: En, tight: false, org: "Example Cloud Inc." },
    Person { name: "Bob Kowalski", addr: "bob.kowalski@example.com", tz: 120, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "" },
    Person { name: "Carol Nguyen", addr: "carol@example.net", tz: -420, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "Acme Hosting" },
    Person { name: "Dmitri Orlov", addr: "dorlov@example.org", tz: 180, cs: Utf8, cte: Bit8, client: Mutt, lang: En, tight: false, org: "" },
    Person { name: "José Martínez", addr: "jose.martinez@example.com", tz: 120, cs: Utf8, cte: Qp, client: Gmail, lang: Es, tight: false, org: "Telco Example S.A." },
    Person { name: "François Lefèvre", addr: "francois@example.net", tz: 120, cs: Latin1, cte: Qp, client: Thunderbird, lang: Fr, tight: false, org: "" },
    Person { name: "Jürgen Müller", addr: "juergen.mueller@example.org", tz: 120, cs: Latin1, cte: Qp, client: Outlook, lang: De, tight: true, org: "Beispiel Rechenzentrum GmbH" },
    Person { name: "Chloé Dubois", addr: "chloe.dubois@example.com", tz: 120, cs: Latin1, cte: Qp, client: Apple, lang: Fr, tight: false, org: "" },
    Person { name: "Иван Петров", addr: "ivan.petrov@example.net", tz: 180, cs: Koi8r, cte: Bit8, client: Thunderbird, lang: Ru, tight: false, org: "" },
    Person { name: "Ольга Смирнова", addr: "olga.smirnova@example.com", tz: 180, cs: Cp1251, cte: Bit8, client: Outlook, lang: Ru, tight: false, org: "" },
    Person { name: "田中 太郎", addr: "tanaka@example.org", tz: 540, cs: Utf8, cte: Base64, client: Thunderbird, lang: Ja, tight: false, org: "" },
    Person { name: "Łukasz Wróbel", addr: "lukasz@example.org", tz: 120, cs: Utf8, cte: Bit8, client: Mutt, lang: En, tight: true, org: "" },
    Person { name: "Zoë Ødegaard", addr: "zoe@example.net", tz: 120, cs: Utf8, cte: Base64, client: Apple, lang: En, tight: false, org: "" },
    Person { name: "Siân Llewellyn", addr: "sian@example.org", tz: 60, cs: Utf8, cte: Qp, client: Evolution, lang: En, tight: false, org: "" },
    Person { name: "Priya Raghunathan", addr: "priya.r@example.com", tz: 330, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "" },
    Person { name: "陈伟", addr: "chen.wei@example.net", tz: 480, cs: Utf8, cte: Base64, client: Gmail, lang: En, tight: false, org: "" },
    Person { name: "Mark Ellison", addr: "mark@example.org", tz: -300, cs: Utf8, cte: Bit8, client: Mutt, lang: En, tight: true, org: "" },
    Person { name: "Rachel Stone", addr: "rstone@example.com", tz: -420, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "Stone Systems" },
    Person { name: "Tom Becker", addr: "tom.becker@example.org", tz: 120, cs: Utf8, cte: Bit8, client: Thunderbird, lang: De, tight: false, org: "" },
    Person { name: "Hannah Schmidt", addr: "hschmidt@example.net", tz: 120, cs: Utf8, cte: Qp, client: Outlook, lang: De, tight: false, org: "Beispiel Rechenzentrum GmbH" },
    Person { name: "Ravi Kumar", addr: "ravi@example.com", tz: 330, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "" },
    Person { name: "Emily Carter", addr: "emily.carter@example.org", tz: 60, cs: Utf8, cte: Bit8, client: Thunderbird, lang: En, tight: false, org: "University of Example" },
    Person { name: "Kenji Sato", addr: "ksato@example.net", tz: 540, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "" },
    Person { name: "Lucas Silva", addr: "lucas.silva@example.com", tz: -180, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "" },
    Person { name: "Marta Nowak", addr: "marta@example.org", tz: 120, cs: Utf8, cte: Bit8, client: Thunderbird, lang: En, tight: false, org: "" },
    Person { name: "Oliver Grant", addr: "ogrant@example.com", tz: -300, cs: Utf8, cte: Qp, client: Outlook, lang: En, tight: false, org: "Grant Networks" },
    Person { name: "Sara Lindqvist", addr: "sara.lindqvist@example.net", tz: 120, cs: Utf8, cte: Qp, client: Apple, lang: En, tight: false, org: "" },
    Person { name: "Nadia Haddad", addr: "nadia@example.org", tz: 120, cs: Utf8, cte: Qp, client: Evolution, lang: En, tight: false, org: "" },
    Person { name: "Yuki Mori", addr: "ymori@example.com", tz: 540, cs: Utf8, cte: Bit8, client: Thunderbird, lang: En, tight: false, org: "" },
    Person { name: "Ahmed Farouk", addr: "ahmed.farouk@example.net", tz: 180, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "" },
    Person { name: "Grace O'Neill", addr: "grace@example.org", tz: 60, cs: Utf8, cte: Qp, client: Outlook, lang: En, tight: false, org: "" },
    Person { name: "Diego Ramírez", addr: "diego@example.com", tz: -300, cs: Utf8, cte: Qp, client: Gmail, lang: Es, tight: false, org: "" },
    Person { name: "Ana Sousa", addr: "ana.sousa@example.net", tz: 60, cs: Utf8, cte: Bit8, client: Thunderbird, lang: En, tight: false, org: "" },
    Person { name: "Peter Novak", addr: "pnovak@example.org", tz: 120, cs: Utf8, cte: Bit8, client: Mutt, lang: En, tight: true, org: "" },
    Person { name: "Ingrid Larsen", addr: "ingrid@example.com", tz: 120, cs: Utf8, cte: Qp, client: Apple, lang: En, tight: false, org: "" },
    Person { name: "Mateo Rossi", addr: "mateo.rossi@example.net", tz: 120, cs: Utf8, cte: Qp, client: Gmail, lang: En, tight: false, org: "" },
];
const IVAN: usize = 8;
const OLGA: usize = 9;
const TANAKA: usize = 10;
/// People drawn per topic; topics overlap because the pool is small.
const PARTICIPANTS: usize = 8;

/// A project or theme. Threads belong to one topic and draw their subjects, sentences, patches
/// and logs from its vocabulary, so topic grouping has something real to find.
struct Topic {
    tag: &'static str,
    repo: &'static str,
    service: &'static str,
    channel: &'static str,
    home: usize,
    /// The list this topic is most often cross-posted to.
    cross: usize,
    weight: u64,
    /// Weekly IRC meeting: day offset from Monday and UTC hour.
    meeting: Option<(i64, i64)>,
    terms: &'static [&'static str],
    subjects: &'static [&'static str],
    sentences: &'static [&'static str],
    files: &'static [&'static str],
    code: &'static [&'static str],
}

// Templates may use {term} {term2} {release} {bug} {review} {who} {date} {n} {file}. Body
// sentences carry no `word:` tokens, so a wrapped line never looks like a header (which matters
// right after a body line starting with `From ` in the unquoted pipermail archive).
#[rustfmt::skip]
const TOPICS: &[Topic] = &[
    Topic {
        tag: "[nova]", repo: "nova", service: "nova-scheduler", channel: "#openstack-nova",
        home: DEV, cross: OPS, weight: 18, meeting: Some((3, 16)),
        terms: &["scheduler weighers", "NUMA topology filter", "host aggregates", "allocation candidates", "cells v2 mappings", "live migration", "vGPU scheduling", "PCI passthrough", "cpu_dedicated_set", "server group affinity", "resource tracker"],
        subjects: &[
            "[nova] {term} broken after upgrade to {release}",
            "[nova] RFC: rework {term} in the {release} cycle",
            "[nova][placement] {term} and allocation candidates",
            "[nova] Bug {bug}: NoValidHost when {term} is enabled",
            "[nova] PTG recap: {term} and {term2}",
            "[nova] Spec review request: {term}",
            "[nova][ops] How do you tune {term}?",
        ],
        sentences: &[
            "We hit NoValidHost on about a third of boot requests once {term} was enabled.",
            "The code path for {term} still assumes a single cell, which is why {term2} misbehaves.",
            "I pushed a first draft of the spec at {review}, comments welcome.",
            "Could you share the scheduler debug log with {term} turned on?",
            "{who} mentioned on IRC that {term} interacts badly with {term2} on full hosts.",
            "I would rather not backport this to {release}, the change to {term} is too invasive.",
            "Placement returns allocation candidates first, so {term} can only narrow the list.",
            "We should add a functional test that boots a server with {term} and then live migrates it.",
            "The nova-compute service logs a warning about {term} on every periodic task run.",
        ],
        files: &["nova/scheduler/filters/numa_topology_filter.py", "nova/compute/api.py", "nova/scheduler/manager.py", "nova/compute/resource_tracker.py"],
        code: &["if not host_state.numa_topology:", "return self._filter_hosts(hosts, spec_obj)", "LOG.debug('Rejecting host %s', host_state.host)", "limits = host_state.limits.get('numa_topology')", "weighed = self.weight_handler.get_weighed_objects(weighers, hosts, spec_obj)"],
    },
    Topic {
        tag: "[neutron]", repo: "neutron", service: "neutron-server", channel: "#openstack-neutron",
        home: DEV, cross: OPS, weight: 16, meeting: Some((1, 14)),
        terms: &["ML2/OVN", "OVS to OVN migration", "ovn-northd", "OVN DB sync", "security group logging", "distributed virtual routing", "the metadata agent", "provider networks", "port bindings", "clustered ovsdb-server", "floating IP port forwarding"],
        subjects: &[
            "[neutron] OVN migration: {term} issues",
            "[neutron][ops] Migrating from ML2/OVS to ML2/OVN in production",
            "[neutron] {term} timeouts in large deployments",
            "[neutron] Deprecating {term} in {release}",
            "[neutron] Bug {bug}: {term} leaves stale ports behind",
        ],
        sentences: &[
            "After the migration script finished, {term} left several ports in DOWN state.",
            "We run ovsdb-server as a three node RAFT cluster and {term} still stalls under load.",
            "The db sync utility in repair mode fixed most of the {term} mismatches for us.",
            "Has anyone measured the overhead of {term} on a network node with two thousand ports?",
            "{who} is working on a fix for {term}, see {review} for the current state.",
            "I would keep {term} enabled until every compute node has been migrated.",
            "The OVN metadata agent replaced the DHCP based metadata path, so check {term} first.",
            "Rolling back {term} is possible, but you need to restore the OVS bridges first.",
            "Our CI job for {term} has been flaky since the {release} branch was cut.",
        ],
        files: &["neutron/plugins/ml2/drivers/ovn/mech_driver/mech_driver.py", "neutron/agent/ovn/metadata/agent.py", "neutron/db/ovn_revision_numbers_db.py"],
        code: &["if not self._ovn_client.is_external_ports_supported():", "port = self._plugin.get_port(context, port_id)", "LOG.info('Port %s bound to chassis %s', port_id, chassis)", "txn.add(self._nb_idl.lsp_set_options(port_id, **options))"],
    },
    Topic {
        tag: "[placement]", repo: "placement", service: "placement-api", channel: "#openstack-placement",
        home: DEV, cross: OPS, weight: 10, meeting: Some((0, 15)),
        terms: &["microversion 1.39", "resource providers", "allocation candidates", "consumer generations", "nested resource providers", "required traits", "the placement database migration", "reshapes", "aggregate membership", "any-traits queries"],
        subjects: &[
            "[placement] Upgrading the placement API to {release}",
            "[placement] Weekly update: {term}",
            "[placement] {term} returns 409 after upgrade",
            "[placement][nova] Reshaping {term} for vGPU",
            "[placement] Microversion bump for {term}",
        ],
        sentences: &[
            "The 409 conflicts are expected when consumer generations change between the GET and the PUT.",
            "We should gate {term} behind a new microversion instead of changing the default behaviour.",
            "Run the online data migrations before relying on {term}.",
            "With nested providers {term} multiplies the number of allocation candidates quickly.",
            "I benchmarked {term} against five hundred resource providers and latency stayed under 200 ms.",
            "{who} proposed documenting the upgrade order for {term} in the install guide.",
            "Please run the placement-status upgrade check before moving to {release}.",
            "The API reference for {term} is out of date, I will send a docs patch.",
        ],
        files: &["placement/handlers/allocation_candidate.py", "placement/objects/research_context.py", "placement/microversion.py"],
        code: &["if want_version.matches((1, 39)):", "candidates = ac_obj.AllocationCandidates.get_by_requests(context, groups, rqparams)", "raise webob.exc.HTTPConflict(_('consumer generation conflict'))", "rp_ids = res_ctx.get_provider_ids_matching(rg_ctx)"],
    },
    Topic {
        tag: "[tc]", repo: "governance", service: "election-tools", channel: "#openstack-tc",
        home: SIGS, cross: DEV, weight: 8, meeting: Some((1, 18)),
        terms: &["TC election", "candidacy nominations", "CIVS poll", "electorate roll", "project team guide", "governance repo", "emerging technology status", "inactive project teams", "release cadence", "PTL appointments"],
        subjects: &[
            "[tc] {term} for the {release} cycle",
            "[tc][election] Candidacy for the Technical Committee",
            "[tc] Proposal: change {term}",
            "[all][tc] {term} timeline",
            "[tc] What should we do about {term}?",
        ],
        sentences: &[
            "Nominations for the {term} open next Tuesday and close a week later.",
            "Everyone with a merged change in the last two cycles is part of the electorate.",
            "I would like to run again for the TC because {term} still needs attention.",
            "The governance change for {term} is up at {review}.",
            "{who} volunteered to act as an election official this time.",
            "We have fewer candidates than seats, so the {term} may end without a poll.",
            "Let's discuss {term} at the next meeting before anyone votes on the change.",
            "The project team guide should say clearly how {term} works.",
        ],
        files: &["reference/projects.yaml", "reference/emerging-technology-and-inactive-projects.rst", "doc/source/election.rst"],
        code: &["  leadership_type: distributed", "  url: https://docs.example.org/kolla/latest/", "  mission: >", "    Deliver production-ready containers and deployment tools."],
    },
    Topic {
        tag: "[kolla]", repo: "kolla-ansible", service: "kolla-build", channel: "#openstack-kolla",
        home: DEV, cross: OPS, weight: 12, meeting: Some((2, 14)),
        terms: &["container images", "kolla-ansible", "the Rocky Linux 9 base image", "kolla-build", "image tags", "the Quay.io mirror", "multinode inventory", "Ubuntu Jammy images", "ProxySQL", "the fluentd image", "Debian bookworm support"],
        subjects: &[
            "[kolla] {term} rebuilt for {release}",
            "[kolla][ops] Problems pulling {term}",
            "[kolla] Dropping {term} in {release}",
            "[kolla] kolla-ansible upgrade fails on {term}",
            "[kolla] Nightly publishing of {term} is broken",
        ],
        sentences: &[
            "The nightly job that publishes {term} failed again because of a mirror timeout.",
            "An upgrade pulls {term} before stopping the old containers, so plan for the disk space.",
            "We pinned {term} to the previous tag until the regression is fixed.",
            "{who} is rebuilding {term} with the security fixes from last week.",
            "Switching the base distro for {term} means every downstream deployment has to test again.",
            "Please use the stable branch of kolla-ansible with {term}, not master.",
            "The change for {term} is at {review} and needs one more core review.",
            "With ProxySQL in front of the database a restart of {term} no longer drops connections.",
        ],
        files: &["kolla/image/build.py", "docker/nova/nova-compute/Dockerfile.j2", "ansible/roles/nova/tasks/upgrade.yml"],
        code: &["- name: Pull images", "  become: true", "  when: inventory_hostname in groups['compute']", "RUN dnf -y install openstack-nova-compute && dnf clean all"],
    },
    Topic {
        tag: "[release]", repo: "releases", service: "release-tools", channel: "#openstack-release",
        home: DEV, cross: SIGS, weight: 8, meeting: None,
        terms: &["milestone-2", "feature freeze", "the final RC", "requirements freeze", "stable branch creation", "cycle highlights", "release notes", "the library release deadline", "client library freeze", "the extra-ATC deadline"],
        subjects: &[
            "[release] {release} release schedule",
            "[release] Release countdown for week R-{n}",
            "[release][all] Reminder: {term} is next week",
            "[release] Missing release notes for {term}?",
            "[release][stable] Final releases of {release}",
        ],
        sentences: &[
            "This is the release countdown for the week of {date}.",
            "{term} is next week, so please get your patches merged before Thursday.",
            "Projects that miss {term} will have their last release tagged by the release team.",
            "Please review the cycle highlights for your project at {review}.",
            "{who} will process release requests while I am away.",
            "After {term} only bug fixes and translations should land on the stable branch.",
            "The schedule for {release} is published, with {term} in week R-{n}.",
        ],
        files: &["deliverables/bobcat/nova.yaml", "doc/source/bobcat/schedule.yaml", "data/release_schedule.yaml"],
        code: &["- version: 28.0.0.0rc1", "  projects:", "    - repo: openstack/nova", "      hash: 3f2a1b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"],
    },
    Topic {
        tag: "[ops]", repo: "ops-tools", service: "ops-monitoring", channel: "#openstack-operators",
        home: OPS, cross: DEV, weight: 16, meeting: None,
        terms: &["RabbitMQ quorum queues", "the Ceph RBD backend", "the ops meetup", "Prometheus exporters", "database connection pools", "upgrade rollback", "HAProxy timeouts", "Octavia amphorae", "Keystone token expiry", "the Galera cluster"],
        subjects: &[
            "[ops] Experience with {term} in production",
            "[ops] Ops meetup on {date}: agenda and etherpad",
            "[ops] {term} after upgrading to {release}",
            "[ops][nova] Anyone seeing issues with {term}?",
            "[ops] Survey: how do you run {term}?",
        ],
        sentences: &[
            "We moved to {term} last quarter and the message loss during failover is gone.",
            "Our biggest pain point after the upgrade was {term}, everything else went smoothly.",
            "Does anyone have a sane alerting rule for {term}?",
            "We had to raise the limits for {term} after adding two hundred compute nodes.",
            "{who} gave a good talk about {term} at the last ops meetup.",
            "The etherpad for the meetup is at https://etherpad.example.org/p/ops-meetup-{date} if you want to add topics.",
            "Rollback worked for us, but {term} needed a manual cleanup afterwards.",
            "We run {term} in three regions with roughly nine hundred hypervisors in total.",
        ],
        files: &["etc/haproxy/haproxy.cfg", "ansible/group_vars/all.yml", "tools/rabbitmq-policy.sh"],
        code: &["    timeout client 90s", "    timeout server 90s", "rabbitmq_quorum_queues: true", "om_enable_rabbitmq_high_availability: false"],
    },
    Topic {
        tag: "[i18n]", repo: "i18n", service: "translation-check", channel: "#openstack-i18n",
        home: SIGS, cross: DEV, weight: 5, meeting: None,
        terms: &["the Weblate migration", "string freeze", "translation statistics", "po files", "the Zanata shutdown", "documentation translation", "the Japanese documentation", "the translation check job", "the glossary"],
        subjects: &[
            "[i18n] {term} status update",
            "[i18n] {term} before {release}",
            "[i18n][docs] Help wanted with {term}",
            "[i18n] Proposal to simplify {term}",
        ],
        sentences: &[
            "The import of {term} into Weblate finished, but some projects lost their history.",
            "Please respect {term} so translators have a stable target before the release.",
            "{who} offered to review {term} for the Japanese and Korean teams.",
            "We can regenerate {term} from the source strings with a single job.",
            "The numbers for {term} are on the dashboard, most languages are above eighty percent.",
            "I proposed a change to the job for {term} at {review}.",
        ],
        files: &["doc/source/locale/ja/LC_MESSAGES/doc.po", "tools/check_translation.py", "zuul.d/jobs.yaml"],
        code: &["msgid \"Install the compute service\"", "msgstr \"\"", "    - translation-jobs-master-stable", "    - build-openstack-docs"],
    },
    Topic {
        tag: "[security-sig]", repo: "ossa", service: "vmt-tools", channel: "#openstack-security",
        home: SIGS, cross: OPS, weight: 7, meeting: None,
        terms: &["OSSA advisories", "embargoed bugs", "the vulnerability management process", "CVE assignment", "bandit checks", "image signature verification", "secure RBAC defaults", "TLS everywhere"],
        subjects: &[
            "[security-sig] {term} for {release}",
            "[security-sig][ops] Advisory process for {term}",
            "[security-sig] Meeting notes {date}",
            "[security-sig] Rolling out {term}",
        ],
        sentences: &[
            "The embargo for this issue ends next Tuesday, so please keep details off the public tracker.",
            "{term} should be enabled by default once the remaining projects have migrated.",
            "We requested a CVE for the issue and the advisory draft is ready for review.",
            "{who} is coordinating the disclosure with downstream distributions.",
            "Running {term} in the gate found three more issues in older code.",
            "The process for {term} is documented, but the wiki page is badly out of date.",
        ],
        files: &["ossa/OSSA-2023-003.yaml", "doc/source/triage.rst", "bandit.yaml"],
        code: &["  - affected-products:", "      - product: nova", "        version: \"<27.1.0\"", "  - cve: CVE-2023-2088"],
    },
];
const I18N: usize = 7;

#[rustfmt::skip]
const GENERIC: &[&str] = &[
    "Thanks for raising this, {who}.",
    "From what I can tell this only affects deployments that use {term}.",
    "I agree with {who} here, let's not rush it.",
    "Could we put this on the agenda for the next meeting?",
    "We saw the same thing in our staging cloud last month.",
    "Is there a bug open for this already?",
    "I left a few comments on {review}.",
    "That sounds reasonable to me as long as the upgrade path is documented.",
    "Let me check with the rest of the team and get back to you.",
    "+1, this would help operators a lot.",
    "Sorry for the late reply, I was travelling last week.",
    "I can take a closer look after the {release} release.",
    "We may want to revisit this at the PTG.",
    "Do you have the full traceback somewhere?",
    "It worked fine in {release}, so this looks like a regression.",
    "From the operator side this is mostly about reducing downtime during upgrades.",
    "Happy to help test a fix if someone has a patch.",
    "I think we are mixing two different problems in this thread.",
];
const RELEASES: &[&str] = &["2023.1 Antelope", "2023.2 Bobcat", "2024.1 Caracal"];
const EN_SIGNOFFS: &[&str] = &[
    "Thanks,",
    "Cheers,",
    "Regards,",
    "Best,",
    "Thanks!",
    "Best regards,",
];
const PATCH_SUBJECTS: &[&str] = &[
    "Fix {term} handling after upgrade",
    "Log {term} decisions at debug level",
    "Make {term} configurable",
    "Handle missing {term} gracefully",
];
const LOG_TEMPLATES: &[&str] = &[
    "Timed out waiting for {term} after 60 seconds",
    "Retrying {term} request, attempt {n} of 5",
    "Skipping {term} because the host is disabled",
    "Finished processing {term} in 0.{n}4 seconds",
    "Unexpected error while handling {term}",
    "Lock \"compute_resources\" acquired by \"update_available_resource\" waited 0.00{n}s",
];
const LINK_SENTENCES: &[&str] = &[
    "The current state is tracked in {review}.",
    "See {review} for the proposed change.",
    "Background is in the etherpad at https://etherpad.example.org/p/{date}-notes if you missed it.",
];
const REGIONS: &[&str] = &[
    "region-one",
    "region-two",
    "eu-west",
    "us-east",
    "ap-northeast",
];
const STATES: &[&str] = &["upgraded", "in progress", "pending", "rolled back"];

fn local_signoffs(lang: Lang) -> &'static [&'static str] {
    match lang {
        En => EN_SIGNOFFS,
        Fr => &["Cordialement,", "Merci,", "Bonne journée,"],
        De => &["Viele Grüße,", "Gruß,", "Danke und Grüße,"],
        Ru => &["С уважением,", "Спасибо,"],
        Ja => &["よろしくお願いします。"],
        Es => &["Saludos,", "Un saludo,"],
    }
}

fn local_phrases(lang: Lang) -> &'static [&'static str] {
    match lang {
        En => &[],
        Fr => &[
            "Merci pour le retour, c'est très utile.",
            "Désolé pour la réponse tardive, j'étais en congé.",
        ],
        De => &[
            "Danke für die schnelle Antwort.",
            "Entschuldigung für die späte Rückmeldung.",
        ],
        Ru => &[
            "Спасибо, посмотрю завтра утром.",
            "Извините за поздний ответ, был в отпуске.",
        ],
        Ja => &["ご確認ありがとうございます。"],
        Es => &["Gracias por la información, muy útil."],
    }
}

/// The one Japanese message, sent the way Japanese mail clients traditionally do: ISO-2022-JP,
/// 7bit. The bytes are precomputed so the generator needs no encoding tables.
const JA_SUBJECT: &str = "[i18n] 日本語ドキュメントの翻訳について";
const JA_SUBJECT_ENCODED: &str =
    "[i18n] =?ISO-2022-JP?B?GyRCRnxLXDhsJUklLSVlJWElcyVIJE5LXUx1JEskRCQkJEYbKEI=?=";
const JA_NAME_ENCODED: &str = "=?ISO-2022-JP?B?GyRCRURDZhsoQiAbJEJCQE86GyhC?=";
const JA_LINES: &[&str] = &[
    "田中です。",
    "皆さん、こんにちは。",
    "次のリリースに向けて、日本語ドキュメントの翻訳を進めています。",
    "ストリングフリーズの日程を教えていただけますか？",
    "Weblate への移行についても相談させてください。",
    "よろしくお願いします。",
];
const JA_LINES_2022: &[&[u8]] = &[
    b"\x1b$BEDCf$G$9!#\x1b(B",
    b"\x1b$B3'$5$s!\x22$3$s$K$A$O!#\x1b(B",
    b"\x1b$B<!$N%j%j!<%9$K8~$1$F!\x22F|K\x5c8l%I%-%e%a%s%H$NK]Lu$r?J$a$F$$$^$9!#\x1b(B",
    b"\x1b$B%9%H%j%s%0%U%j!<%:$NF|Dx$r65$($F$$$?$@$1$^$9$+!)\x1b(B",
    b"Weblate \x1b$B$X$N0\x5c9T$K$D$$$F$bAjCL$5$;$F$/$@$5$$!#\x1b(B",
    b"\x1b$B$h$m$7$/$*4j$$$7$^$9!#\x1b(B",
];

/// Active content in the one hostile HTML message, for testing the archive's sanitiser.
const HOSTILE_HTML: &str = "<p>The capacity dashboard is here: <a href=\"javascript:window.__pwned=1;alert(document.cookie)\">capacity report</a></p>\n\
<script>window.__pwned=1</script>\n\
<img src=x onerror=\"window.__pwned=1\">\n\
<svg onload=\"window.__pwned=1\"></svg>\n\
<iframe src=\"https://evil.example.net/frame\" style=\"display:none\"></iframe>\n\
<form action=\"https://evil.example.net/login\" method=\"post\"><input name=\"password\" type=\"password\"><button>Log in again</button></form>\n\
<p style=\"background:url(javascript:window.__pwned=1)\" onmouseover=\"window.__pwned=1\">Please log in again to see the numbers.</p>\n";

// ---------------------------------------------------------------------------------------------
// Randomness and time
// ---------------------------------------------------------------------------------------------

/// splitmix64: tiny, fast, and fully determined by its seed on every platform.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift rather than modulo to avoid bias.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.saturating_sub(lo).max(0) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
}

/// Derives an independent seed, so per-copy details never disturb the main sequence.
fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.rotate_left(29) ^ 0x6A09_E667_F3BC_C909).next()
}

const WDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
#[rustfmt::skip]
const WDAYS_FULL: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
#[rustfmt::skip]
const MONTHS_FULL: [&str; 12] = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
];

struct Civil {
    year: i64,
    /// 1..=12
    month: usize,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
    /// 0 = Sunday
    wday: usize,
}

/// Unix seconds to calendar fields (Howard Hinnant's civil_from_days), with no clock or tz data.
fn civil(t: i64) -> Civil {
    let days = t.div_euclid(DAY);
    let secs = t.rem_euclid(DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month: month as usize,
        day,
        hour: secs / 3600,
        min: secs / 60 % 60,
        sec: secs % 60,
        wday: (days + 4).rem_euclid(7) as usize,
    }
}

/// RFC 2822 date in the given UTC offset (minutes); Outlook zero-pads the day, others don't.
fn rfc2822(t: i64, tz: i64, pad_day: bool) -> String {
    let c = civil(t + tz * 60);
    let sign = if tz < 0 { '-' } else { '+' };
    let (oh, om) = (tz.abs() / 60, tz.abs() % 60);
    let day = if pad_day {
        format!("{:02}", c.day)
    } else {
        c.day.to_string()
    };
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
        WDAYS[c.wday],
        day,
        MONTHS[c.month - 1],
        c.year,
        c.hour,
        c.min,
        c.sec,
        sign,
        oh,
        om
    )
}

/// Postfix's `Received` date: space-padded day and a zone comment.
fn received_date(t: i64) -> String {
    let c = civil(t);
    format!(
        "{}, {:>2} {} {} {:02}:{:02}:{:02} +0000 (UTC)",
        WDAYS[c.wday],
        c.day,
        MONTHS[c.month - 1],
        c.year,
        c.hour,
        c.min,
        c.sec
    )
}

/// `Mon May  1 09:12:44 2023`, as in mbox separators.
fn asctime(t: i64) -> String {
    let c = civil(t);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        WDAYS[c.wday],
        MONTHS[c.month - 1],
        c.day,
        c.hour,
        c.min,
        c.sec,
        c.year
    )
}

fn ymd(t: i64) -> String {
    let c = civil(t);
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

fn hour12(hour: i64) -> (i64, &'static str) {
    let h = if hour % 12 == 0 { 12 } else { hour % 12 };
    (h, if hour < 12 { "AM" } else { "PM" })
}

fn tz_string(tz: i64) -> String {
    let sign = if tz < 0 { '-' } else { '+' };
    format!("{}{:02}{:02}", sign, tz.abs() / 60, tz.abs() % 60)
}

/// A root post's time: mostly weekday office hours in the poster's own time zone.
fn working_time(rng: &mut Rng, week_start: i64, tz: i64) -> i64 {
    let day = if rng.chance(93) {
        rng.range(0, 5)
    } else {
        rng.range(5, 7)
    };
    let hour = if rng.chance(85) {
        rng.range(8, 18)
    } else {
        rng.range(18, 23)
    };
    let local = day * DAY + hour * 3600 + rng.range(0, 3600);
    // Clamped so a post never lands in a week whose messages were already written.
    (week_start + local - tz * 60).clamp(week_start, week_start + WEEK - 1)
}

/// Replies come minutes to a couple of days later: log-uniform, so threads have bursts and tails.
fn reply_delay(rng: &mut Rng) -> i64 {
    let base = 240_i64 << rng.below(10);
    base / 2 + rng.range(0, base)
}

/// People rarely answer between midnight and 7 in the morning, local time.
fn to_daytime(t: i64, tz: i64, rng: &mut Rng) -> i64 {
    let hour = (t + tz * 60).rem_euclid(DAY) / 3600;
    if hour < 7 {
        t + (7 - hour) * 3600 + rng.range(0, 5400)
    } else {
        t
    }
}

/// Heavy-tailed: most threads are one to three messages, a few run to thirty.
fn thread_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=29 => 1,
        30..=49 => 2,
        50..=64 => 3,
        65..=74 => 4,
        75..=82 => 5 + rng.index(2),
        83..=89 => 7 + rng.index(4),
        90..=95 => 11 + rng.index(8),
        _ => 19 + rng.index(12),
    }
}

// ---------------------------------------------------------------------------------------------
// Planning: threads, replies and the rare shapes
// ---------------------------------------------------------------------------------------------

/// Rare message shapes. Each is due at fixed offsets in every cycle of distinct messages and is
/// applied to the next message that can carry it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Special {
    /// Unquoted body lines starting with `From ` in a pipermail copy.
    FromLine,
    /// ISO-2022-JP message with a Japanese subject, starting an i18n thread.
    Japanese,
    NoMessageId,
    Hostile,
    Koi8r,
    Cp1251,
    /// Attachment with a non-ASCII RFC 2231 filename split into continuations.
    Rfc2231,
    /// Remembers its Message-ID for the next `ReuseTarget`.
    ReuseSource,
    /// A different message carrying the Message-ID of the last `ReuseSource`.
    ReuseTarget,
    /// A git format-patch mail pasted in the body: `From <sha> Mon Sep 17 ...` then headers.
    FormatPatch,
}

const SPECIAL_CYCLE: u64 = 2_500;
/// All slots sit in the first 400 messages of a cycle, so the 600-message demo shows each once.
#[rustfmt::skip]
const SPECIAL_SLOTS: &[(u64, Special)] = &[
    (5, Special::FromLine), (30, Special::Japanese), (60, Special::NoMessageId),
    (90, Special::Hostile), (120, Special::Koi8r), (150, Special::Rfc2231),
    (180, Special::ReuseSource), (210, Special::Cp1251), (240, Special::NoMessageId),
    (270, Special::FormatPatch), (300, Special::ReuseTarget), (330, Special::FromLine),
];

struct Thread {
    topic: usize,
    home: usize,
    subject: String,
    meeting: bool,
}

struct GrandRef {
    author: usize,
    time: i64,
    seed: u64,
    japanese: bool,
}

/// What a reply needs to quote and address its parent; the parent's text is regenerated from
/// its seed instead of being kept around.
struct ParentRef {
    author: usize,
    time: i64,
    seed: u64,
    is_root: bool,
    japanese: bool,
    grand: Option<GrandRef>,
}

/// A planned message waiting in the time-ordered queue.
struct Pending {
    time: i64,
    seq: u64,
    thread: Rc<Thread>,
    index: usize,
    author: usize,
    seed: u64,
    /// Bit per entry of `LISTS`.
    lists: u8,
    id: Option<Rc<str>>,
    /// Ancestors' ids, root first (the full chain).
    references: Vec<Rc<str>>,
    parent: Option<ParentRef>,
    special: Option<Special>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Reversed, so the max-heap pops the earliest message (ties by planning order).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

struct Draft {
    time: i64,
    author: usize,
    parent: Option<usize>,
    lists: u8,
    seed: u64,
    has_children: bool,
    special: Option<Special>,
}

struct Generator {
    rng: Rng,
    seed: u64,
    end: i64,
    participants: Vec<Vec<usize>>,
    heap: BinaryHeap<Pending>,
    seq: u64,
    planned: u64,
    due: Vec<Special>,
    reuse: Option<Rc<str>>,
    hot_topic: usize,
}

impl Generator {
    fn new(spec: &SampleSpec, end: i64) -> Self {
        let mut rng = Rng::new(spec.seed);
        let participants = TOPICS
            .iter()
            .map(|_| {
                let mut pool: Vec<usize> = (0..PEOPLE.len()).collect();
                for i in 0..PARTICIPANTS {
                    let j = i + rng.index(pool.len() - i);
                    pool.swap(i, j);
                }
                pool.truncate(PARTICIPANTS);
                pool
            })
            .collect();
        Generator {
            rng,
            seed: spec.seed,
            end,
            participants,
            heap: BinaryHeap::new(),
            seq: 0,
            planned: 0,
            due: Vec::new(),
            reuse: None,
            hot_topic: 0,
        }
    }

    /// Plans exactly `budget` distinct messages for threads starting in this week: the weekly
    /// meeting summaries first, then ordinary threads.
    fn plan_week(&mut self, week_start: i64, week: u32, budget: usize) {
        // A topic stays hot for three weeks, like real discussions that flare up and fade.
        self.hot_topic = (mix(self.seed, u64::from(week / 3)) % TOPICS.len() as u64) as usize;
        let mut left = budget;
        for (topic, t) in TOPICS.iter().enumerate() {
            if let Some((day, hour)) = t.meeting {
                if left == 0 {
                    break;
                }
                left -= self.plan_thread(week_start, Some((topic, day, hour)), left);
            }
        }
        while left > 0 {
            left -= self.plan_thread(week_start, None, left);
        }
    }

    fn drain(&mut self, limit: i64, out: &mut Output) -> Result<()> {
        while self.heap.peek().is_some_and(|p| p.time < limit) {
            let Some(p) = self.heap.pop() else { break };
            let rendered = self.render(&p);
            out.write(&p, &rendered)?;
        }
        Ok(())
    }

    fn pick_topic(&mut self) -> usize {
        let weight = |i: usize, t: &Topic| t.weight + if i == self.hot_topic { 20 } else { 0 };
        let total: u64 = TOPICS.iter().enumerate().map(|(i, t)| weight(i, t)).sum();
        let mut r = self.rng.below(total);
        for (i, t) in TOPICS.iter().enumerate() {
            let w = weight(i, t);
            if r < w {
                return i;
            }
            r -= w;
        }
        0
    }

    fn pick_author(&mut self, topic: usize, avoid: Option<usize>) -> usize {
        let mut candidate = 0;
        for _ in 0..6 {
            candidate = if self.rng.chance(85) {
                let people = &self.participants[topic];
                people[self.rng.index(people.len())]
            } else {
                self.rng.index(PEOPLE.len())
            };
            if Some(candidate) != avoid {
                break;
            }
        }
        candidate
    }

    /// Plans one thread of at most `max` messages and queues it; returns how many were kept
    /// (at least the root; replies falling after the archive's end are dropped).
    fn plan_thread(
        &mut self,
        week_start: i64,
        meeting: Option<(usize, i64, i64)>,
        max: usize,
    ) -> usize {
        let japanese = meeting.is_none() && self.take_due(Special::Japanese);
        let (topic_idx, root_time, root_author) = match meeting {
            Some((topic, day, hour)) => {
                // The chair posts the summary within the hour after the meeting.
                let t = week_start + day * DAY + (hour + 1) * 3600 + self.rng.range(60, 1200);
                (topic, t, self.participants[topic][0])
            }
            None => {
                let topic = if japanese { I18N } else { self.pick_topic() };
                let author = if japanese {
                    TANAKA
                } else {
                    self.pick_author(topic, None)
                };
                let t = working_time(&mut self.rng, week_start, PEOPLE[author].tz);
                (topic, t, author)
            }
        };
        let topic = &TOPICS[topic_idx];
        let mut lists = 1u8 << topic.home;
        if japanese {
            lists |= 1 << DEV;
        } else if self.rng.chance(25) {
            lists |= 1 << topic.cross;
            if self.rng.chance(30) {
                lists = (1 << LISTS.len()) - 1;
            }
        }
        let size = if meeting.is_some() {
            1 + self.rng.index(3)
        } else if japanese {
            2 + self.rng.index(4)
        } else {
            thread_size(&mut self.rng)
        };
        let size = size.clamp(1, max.max(1));
        let subject = if japanese {
            JA_SUBJECT.to_string()
        } else if meeting.is_some() {
            format!("{} Weekly meeting summary {}", topic.tag, ymd(root_time))
        } else {
            let sc = Scene {
                topic,
                time: root_time,
                people: &self.participants[topic_idx],
            };
            let template = self.rng.pick(topic.subjects);
            fill(template, &sc, &mut self.rng)
        };
        let thread = Rc::new(Thread {
            topic: topic_idx,
            home: topic.home,
            subject,
            meeting: meeting.is_some(),
        });

        let mut drafts = vec![Draft {
            time: root_time,
            author: root_author,
            parent: None,
            lists,
            seed: self.rng.next(),
            has_children: false,
            special: japanese.then_some(Special::Japanese),
        }];
        let mut attempts = 0;
        while drafts.len() < size && attempts < size * 4 {
            attempts += 1;
            let n = drafts.len();
            // Mostly answer the latest message, sometimes an older one: real threads branch.
            let parent = if self.rng.chance(55) {
                n - 1
            } else {
                self.rng.index(n)
            };
            let author = self.pick_author(topic_idx, Some(drafts[parent].author));
            let delay = reply_delay(&mut self.rng);
            let time = to_daytime(
                drafts[parent].time + delay,
                PEOPLE[author].tz,
                &mut self.rng,
            );
            if time >= self.end {
                continue;
            }
            let mut reply_lists = drafts[parent].lists;
            // Some repliers trim a cross-post back to the topic's own list.
            if reply_lists.count_ones() > 1 && self.rng.chance(10) {
                reply_lists = 1 << topic.home;
            }
            drafts.push(Draft {
                time,
                author,
                parent: Some(parent),
                lists: reply_lists,
                seed: self.rng.next(),
                has_children: false,
                special: None,
            });
            drafts[parent].has_children = true;
        }
        self.apply_specials(&mut drafts);

        let mut ids: Vec<Option<Rc<str>>> = Vec::with_capacity(drafts.len());
        for d in &drafts {
            let id = match d.special {
                Some(Special::NoMessageId) => None,
                Some(Special::ReuseTarget) => self.reuse.take(),
                _ => Some(Rc::from(message_id(
                    PEOPLE[d.author].client,
                    d.time,
                    &mut self.rng,
                ))),
            };
            if d.special == Some(Special::ReuseSource) {
                self.reuse.clone_from(&id);
            }
            ids.push(id);
        }
        let mut refs: Vec<Vec<Rc<str>>> = Vec::with_capacity(drafts.len());
        for d in &drafts {
            let chain = match d.parent {
                Some(pi) => {
                    let mut chain = refs[pi].clone();
                    chain.extend(ids[pi].clone());
                    chain
                }
                None => Vec::new(),
            };
            refs.push(chain);
        }
        for (i, d) in drafts.iter().enumerate() {
            let parent = d.parent.map(|pi| {
                let pd = &drafts[pi];
                ParentRef {
                    author: pd.author,
                    time: pd.time,
                    seed: pd.seed,
                    is_root: pd.parent.is_none(),
                    japanese: pd.special == Some(Special::Japanese),
                    grand: pd.parent.map(|gi| GrandRef {
                        author: drafts[gi].author,
                        time: drafts[gi].time,
                        seed: drafts[gi].seed,
                        japanese: drafts[gi].special == Some(Special::Japanese),
                    }),
                }
            });
            self.seq += 1;
            self.heap.push(Pending {
                time: d.time,
                seq: self.seq,
                thread: Rc::clone(&thread),
                index: i,
                author: d.author,
                seed: d.seed,
                lists: d.lists,
                id: ids[i].clone(),
                references: std::mem::take(&mut refs[i]),
                parent,
                special: d.special,
            });
        }

        let n = drafts.len() as u64;
        for count in self.planned..self.planned + n {
            let pos = count % SPECIAL_CYCLE;
            for &(slot, special) in SPECIAL_SLOTS {
                if slot == pos {
                    self.due.push(special);
                }
            }
        }
        self.planned += n;
        drafts.len()
    }

    fn take_due(&mut self, special: Special) -> bool {
        match self.due.iter().position(|&s| s == special) {
            Some(i) => {
                self.due.remove(i);
                true
            }
            None => false,
        }
    }

    fn eligible(&self, special: Special, d: &Draft) -> bool {
        match special {
            Special::Japanese => false,
            // Cross-posted to both kinds of archive, so the same lines show up unquoted in
            // pipermail and `>`-quoted in mboxrd.
            Special::FromLine => {
                let unquoted = unquoted_lists_mask();
                d.lists & unquoted != 0 && d.lists & !unquoted != 0
            }
            Special::FormatPatch => d.lists & unquoted_lists_mask() == 0,
            // Leaves only, so no reply has to point at a missing or ambiguous id.
            Special::NoMessageId | Special::ReuseSource => !d.has_children,
            Special::ReuseTarget => !d.has_children && self.reuse.is_some(),
            Special::Hostile | Special::Koi8r | Special::Cp1251 | Special::Rfc2231 => true,
        }
    }

    fn apply_specials(&mut self, drafts: &mut [Draft]) {
        let mut i = 0;
        while i < self.due.len() {
            let special = self.due[i];
            let target = drafts
                .iter()
                .position(|d| d.special.is_none() && self.eligible(special, d));
            match target {
                Some(t) => {
                    drafts[t].special = Some(special);
                    match special {
                        Special::Koi8r => drafts[t].author = IVAN,
                        Special::Cp1251 => drafts[t].author = OLGA,
                        _ => {}
                    }
                    self.due.remove(i);
                }
                None => i += 1,
            }
        }
    }
}

fn alnum(rng: &mut Rng, n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| char::from(A[rng.index(A.len())])).collect()
}

fn hex(rng: &mut Rng, n: usize) -> String {
    const H: &[u8] = b"0123456789abcdef";
    (0..n).map(|_| char::from(H[rng.index(16)])).collect()
}

fn uuid(rng: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 12)
    )
}

/// Message-IDs shaped like each client's, all `@example.org`, with 90+ random bits each.
fn message_id(client: Client, time: i64, rng: &mut Rng) -> String {
    match client {
        Gmail => format!(
            "<CA{}{}@example.org>",
            rng.pick(&["J", "K", "H", "B+", "+"]),
            alnum(rng, 42)
        ),
        Thunderbird => format!("<{}@example.org>", uuid(rng)),
        Mutt => {
            let c = civil(time);
            format!(
                "<{:04}{:02}{:02}{:02}{:02}{:02}.{}@example.org>",
                c.year,
                c.month,
                c.day,
                c.hour,
                c.min,
                c.sec,
                alnum(rng, 16)
            )
        }
        Outlook => format!(
            "<{}{}@example.org>",
            rng.pick(&["AM0PR07MB", "DB9PR02MB", "PH0PR11MB", "VI1PR04MB"]),
            hex(rng, 36).to_uppercase()
        ),
        Apple => format!("<{}@example.org>", uuid(rng).to_uppercase()),
        Evolution => format!("<{}.camel@example.org>", hex(rng, 40)),
    }
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Scene<'a> {
    topic: &'static Topic,
    time: i64,
    people: &'a [usize],
}

fn first_name(name: &str) -> &str {
    name.split(' ').next().unwrap_or(name)
}

fn nick(person: &Person) -> &'static str {
    let local = person.addr.split('@').next().unwrap_or(person.addr);
    local.split('.').next().unwrap_or(local)
}

/// Expands `{placeholder}`s in a template from the topic's vocabulary.
fn fill(template: &str, sc: &Scene, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(template.len() + 40);
    let mut rest = template;
    let mut last_term = usize::MAX;
    let terms = sc.topic.terms;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        match &after[..close] {
            "term" => {
                last_term = rng.index(terms.len());
                out.push_str(terms[last_term]);
            }
            "term2" => {
                let mut i = rng.index(terms.len());
                if i == last_term {
                    i = (i + 1) % terms.len();
                }
                out.push_str(terms[i]);
            }
            "release" => out.push_str(rng.pick::<&str>(RELEASES)),
            "bug" => {
                let _ = write!(out, "#20{:05}", rng.below(100_000));
            }
            "review" => {
                let _ = write!(
                    out,
                    "https://review.example.org/c/openstack/{}/+/{}",
                    sc.topic.repo,
                    880_000 + rng.below(20_000)
                );
            }
            "who" => out.push_str(first_name(PEOPLE[*rng.pick(sc.people)].name)),
            "date" => out.push_str(&ymd(sc.time)),
            "n" => {
                let _ = write!(out, "{}", 1 + rng.below(9));
            }
            "file" => out.push_str(rng.pick::<&str>(sc.topic.files)),
            other => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// `used` holds the templates this message already said; a few redraws avoid repeating them.
fn paragraph(sc: &Scene, rng: &mut Rng, sentences: usize, used: &mut Vec<&'static str>) -> String {
    let mut p = String::new();
    for i in 0..sentences {
        let pool = if i == 0 || rng.chance(60) {
            sc.topic.sentences
        } else {
            GENERIC
        };
        let mut template = *rng.pick(pool);
        for _ in 0..8 {
            if !used.contains(&template) {
                break;
            }
            template = *rng.pick(pool);
        }
        used.push(template);
        if i > 0 {
            p.push(' ');
        }
        let sentence = fill(template, sc, rng);
        // Capitalise a sentence opening with a plain word, not with an identifier.
        let first_word = sentence.split(' ').next().unwrap_or("");
        let identifier = first_word.contains(['_', '-', '/', '.']);
        match sentence.chars().next() {
            Some(c) if c.is_ascii_lowercase() && !identifier => {
                p.push(c.to_ascii_uppercase());
                p.push_str(&sentence[1..]);
            }
            _ => p.push_str(&sentence),
        }
    }
    p
}

/// A message's first paragraph depends only on its seed, so replies can quote it exactly.
fn lead_paragraph(sc: &Scene, seed: u64, used: &mut Vec<&'static str>) -> String {
    let mut rng = Rng::new(seed ^ 0x1EAD_1EAD_1EAD_1EAD);
    let n = 2 + rng.index(2);
    paragraph(sc, &mut rng, n, used)
}

fn quoted_lead(sc: &Scene, seed: u64) -> String {
    lead_paragraph(sc, seed, &mut Vec::new())
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut len = 0;
    for word in text.split_whitespace() {
        let wl = word.chars().count();
        if len > 0 && len + 1 + wl > width {
            lines.push(std::mem::take(&mut line));
            len = 0;
        }
        if len > 0 {
            line.push(' ');
            len += 1;
        }
        line.push_str(word);
        len += wl;
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A body is composed once as blocks, then rendered as text and/or HTML, so the two parts of a
/// multipart/alternative say the same thing.
enum Block {
    Para(String),
    Lines(Vec<String>),
    Pre(Vec<String>),
    Quote(Quote),
    Table(Vec<Vec<String>>),
    Sig(Vec<String>),
}

struct Quote {
    attribution: String,
    /// Apple Mail puts the attribution inside the quote.
    inside: bool,
    lines: Vec<String>,
    prefix: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Irc,
    Meeting,
    Patch,
    Html,
    Alt,
    Mixed,
}

struct MsgCtx<'a> {
    p: &'a Pending,
    person: &'static Person,
    sc: Scene<'a>,
}

impl MsgCtx<'_> {
    fn scene_at(&self, time: i64) -> Scene<'_> {
        Scene { time, ..self.sc }
    }
}

fn choose_kind(p: &Pending, person: &Person, rng: &mut Rng) -> Kind {
    match p.special {
        Some(Special::Hostile) => return Kind::Html,
        Some(Special::Rfc2231) => return Kind::Mixed,
        Some(Special::FormatPatch) => return Kind::Patch,
        Some(Special::FromLine | Special::Koi8r | Special::Cp1251) => return Kind::Plain,
        _ => {}
    }
    if p.thread.meeting && p.index == 0 {
        return Kind::Meeting;
    }
    let kind = match rng.below(100) {
        0..=61 => Kind::Plain,
        62..=65 => Kind::Irc,
        66..=71 => Kind::Patch,
        72..=81 => Kind::Html,
        82..=91 => Kind::Alt,
        _ => Kind::Mixed,
    };
    if person.client == Mutt && matches!(kind, Kind::Html | Kind::Alt) {
        Kind::Plain
    } else {
        kind
    }
}

fn attribution_line(client: Client, who: &Person, t: i64, tz: i64) -> String {
    let c = civil(t + tz * 60);
    let (h12, ampm) = hour12(c.hour);
    let wday = WDAYS[c.wday];
    let mon = MONTHS[c.month - 1];
    match client {
        Gmail => format!(
            "On {wday}, {mon} {}, {} at {}:{:02} {ampm} {} <{}> wrote:",
            c.day, c.year, h12, c.min, who.name, who.addr
        ),
        Thunderbird => format!(
            "On {:04}-{:02}-{:02} {:02}:{:02}, {} wrote:",
            c.year, c.month, c.day, c.hour, c.min, who.name
        ),
        Mutt => format!(
            "On {wday}, {mon} {:02}, {} at {:02}:{:02}:{:02}{ampm} {}, {} wrote:",
            c.day,
            c.year,
            h12,
            c.min,
            c.sec,
            tz_string(tz),
            who.name
        ),
        Evolution => format!(
            "On {wday}, {:04}-{:02}-{:02} at {:02}:{:02} {}, {} wrote:",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.min,
            tz_string(tz),
            who.name
        ),
        Apple | Outlook => format!(
            "On {} {mon} {}, at {:02}:{:02}, {} <{}> wrote:",
            c.day, c.year, c.hour, c.min, who.name, who.addr
        ),
    }
}

fn quote_block(m: &MsgCtx, parent: &ParentRef, rng: &mut Rng) -> Quote {
    let pp = &PEOPLE[parent.author];
    let mut lines = Vec::new();
    if let Some(g) = &parent.grand {
        if rng.chance(40) {
            let gp = &PEOPLE[g.author];
            lines.push(attribution_line(pp.client, gp, g.time, pp.tz));
            let quoted = if g.japanese {
                JA_LINES.iter().map(|s| s.to_string()).collect()
            } else {
                wrap(&quoted_lead(&m.scene_at(g.time), g.seed), 68)
            };
            lines.extend(quoted.into_iter().map(|l| format!("> {l}")));
            lines.push(String::new());
        }
    }
    if parent.japanese {
        lines.extend(JA_LINES.iter().map(|s| s.to_string()));
    } else {
        lines.extend(wrap(
            &quoted_lead(&m.scene_at(parent.time), parent.seed),
            70,
        ));
    }
    Quote {
        attribution: attribution_line(m.person.client, pp, parent.time, m.person.tz),
        inside: m.person.client == Apple,
        lines,
        prefix: if m.person.tight { ">" } else { "> " },
    }
}

fn irc_log(rng: &mut Rng, sc: &Scene, chair: usize, start: i64, full: bool) -> Vec<String> {
    let stamp = |t: i64| {
        let c = civil(t);
        format!("[{:02}:{:02}]", c.hour, c.min)
    };
    let attendees: Vec<usize> = (0..3 + rng.index(3))
        .map(|_| *rng.pick(sc.people))
        .collect();
    let chair_nick = nick(&PEOPLE[chair]);
    let mut t = start + rng.range(0, 30);
    let mut out = Vec::new();
    let chat = |rng: &mut Rng, out: &mut Vec<String>, t: &mut i64, count: usize| {
        for _ in 0..count {
            *t += rng.range(15, 150);
            let who = nick(&PEOPLE[*rng.pick(&attendees)]);
            let line = fill(rng.pick::<&str>(sc.topic.sentences), sc, rng);
            out.push(format!("{} <{}> {}", stamp(*t), who, line));
        }
    };
    if full {
        out.push(format!(
            "{} <{chair_nick}> #startmeeting {}",
            stamp(t),
            sc.topic.repo
        ));
        out.push(format!(
            "{} <meetbot> Meeting started {} UTC and is due to finish in 60 minutes.  The chair is {chair_nick}.",
            stamp(t),
            asctime(t)
        ));
        for &a in &attendees {
            t += rng.range(5, 40);
            let hello = rng.pick(&["o/", "\\o", "hi", "o/ morning"]);
            out.push(format!("{} <{}> {hello}", stamp(t), nick(&PEOPLE[a])));
        }
        for _ in 0..2 + rng.index(2) {
            t += rng.range(30, 120);
            let topic = fill("{term}", sc, rng);
            out.push(format!("{} <{chair_nick}> #topic {topic}", stamp(t)));
            let n = 2 + rng.index(4);
            chat(rng, &mut out, &mut t, n);
            if rng.chance(50) {
                let owner = nick(&PEOPLE[*rng.pick(&attendees)]);
                let review = fill("{review}", sc, rng);
                out.push(format!(
                    "{} <{chair_nick}> #action {owner} to update {review}",
                    stamp(t)
                ));
            }
        }
        t += rng.range(60, 300);
        out.push(format!(
            "{} <{chair_nick}> #topic open discussion",
            stamp(t)
        ));
        t += rng.range(60, 600);
        out.push(format!("{} <{chair_nick}> #endmeeting", stamp(t)));
        out.push(format!(
            "{} <meetbot> Meeting ended {} UTC.  Information about MeetBot at https://wiki.example.org/MeetBot",
            stamp(t),
            asctime(t)
        ));
    } else {
        let topic = fill("{term}", sc, rng);
        out.push(format!("{} <{chair_nick}> #topic {topic}", stamp(t)));
        let n = 4 + rng.index(6);
        chat(rng, &mut out, &mut t, n);
    }
    out
}

fn patch_lines(m: &MsgCtx, rng: &mut Rng, format_patch: bool) -> Vec<String> {
    let sc = &m.sc;
    let file = rng.pick::<&str>(sc.topic.files);
    let code = sc.topic.code;
    let indent = if file.ends_with(".py") {
        "        "
    } else {
        ""
    };
    let context = 3;
    let removed = 1 + rng.index(2);
    let added = 1 + rng.index(3);
    let mut out = Vec::new();
    if format_patch {
        let author = m.person;
        let summary = fill(rng.pick::<&str>(PATCH_SUBJECTS), sc, rng);
        out.push(format!("From {} Mon Sep 17 00:00:00 2001", hex(rng, 40)));
        out.push(format!("From: {} <{}>", author.name, author.addr));
        let written = m.p.time - rng.range(3600, 3 * DAY);
        out.push(format!("Date: {}", rfc2822(written, author.tz, false)));
        out.push(format!("Subject: [PATCH] {summary}"));
        out.push(String::new());
        out.extend(wrap(&paragraph(sc, rng, 2, &mut Vec::new()), 72));
        out.push(String::new());
        out.push(format!("Closes-Bug: {}", fill("{bug}", sc, rng)));
        out.push(format!("Change-Id: I{}", hex(rng, 40)));
        out.push(format!("Signed-off-by: {} <{}>", author.name, author.addr));
        out.push("---".to_string());
        out.push(format!(
            " {file} | {} {}{}",
            added + removed,
            "+".repeat(added),
            "-".repeat(removed)
        ));
        out.push(format!(
            " 1 file changed, {added} insertions(+), {removed} deletions(-)"
        ));
        out.push(String::new());
    }
    let line = 40 + rng.below(1200);
    let stem = file
        .rsplit('/')
        .next()
        .unwrap_or(file)
        .split('.')
        .next()
        .unwrap_or(file);
    let heading = if file.ends_with(".py") {
        format!(" def _{stem}(self, context):")
    } else {
        String::new()
    };
    out.push(format!("diff --git a/{file} b/{file}"));
    out.push(format!("index {}..{} 100644", hex(rng, 7), hex(rng, 7)));
    out.push(format!("--- a/{file}"));
    out.push(format!("+++ b/{file}"));
    out.push(format!(
        "@@ -{line},{} +{line},{} @@{heading}",
        2 * context + removed,
        2 * context + added
    ));
    for _ in 0..context {
        out.push(format!(" {indent}{}", rng.pick(code)));
    }
    for _ in 0..removed {
        out.push(format!("-{indent}{}", rng.pick(code)));
    }
    for _ in 0..added {
        out.push(format!("+{indent}{}", rng.pick(code)));
    }
    for _ in 0..context {
        out.push(format!(" {indent}{}", rng.pick(code)));
    }
    if format_patch {
        out.push("-- ".to_string());
        out.push("2.39.2".to_string());
    }
    out
}

/// Body lines starting with `From ` that are not separators: one inside a paragraph, one
/// opening a paragraph but followed by plain prose.
fn from_line_block(sc: &Scene, rng: &mut Rng, variant: u64) -> Block {
    let term = fill("{term}", sc, rng);
    if variant == 0 {
        Block::Lines(vec![
            "We rolled the change out to two of our regions last week.".to_string(),
            format!("From what I can tell {term} behaves now, but we still"),
            "see the occasional timeout when the control plane is busy.".to_string(),
        ])
    } else {
        let release = rng.pick(RELEASES);
        Block::Lines(vec![
            format!("From our side the upgrade to {release} went smoothly, apart from a"),
            format!("short outage of {term} that we traced to a config typo."),
        ])
    }
}

fn table_block(rng: &mut Rng) -> Block {
    let mut rows = vec![vec![
        "Region".to_string(),
        "Computes".to_string(),
        "Release".to_string(),
        "Status".to_string(),
    ]];
    for region in REGIONS.iter().take(2 + rng.index(3)) {
        rows.push(vec![
            region.to_string(),
            (20 + rng.below(400)).to_string(),
            rng.pick(RELEASES).to_string(),
            rng.pick(STATES).to_string(),
        ]);
    }
    Block::Table(rows)
}

fn compose(m: &MsgCtx, kind: Kind, rng: &mut Rng) -> Vec<Block> {
    let (p, person, sc) = (m.p, m.person, &m.sc);
    let mut blocks = Vec::new();
    // Outlook users top-post above a header block; everyone else quotes first, then answers.
    let top_post = person.client == Outlook && p.parent.is_some();
    if let Some(parent) = &p.parent {
        if !top_post {
            blocks.push(Block::Quote(quote_block(m, parent, rng)));
        }
    }
    if p.parent.is_none() || top_post || rng.chance(20) {
        let greeting = match (&p.parent, rng.below(3)) {
            (Some(parent), 0) => format!("Hi {},", first_name(PEOPLE[parent.author].name)),
            (None, 0) | (_, 1) => "Hi all,".to_string(),
            _ => "Hello,".to_string(),
        };
        blocks.push(Block::Lines(vec![greeting]));
    }
    let mut used = Vec::new();
    blocks.push(Block::Para(lead_paragraph(sc, p.seed, &mut used)));
    match kind {
        Kind::Meeting => {
            blocks.push(Block::Para(fill(
                "The log of this week's meeting is below. The next one is at the usual time and {who} will chair it.",
                sc,
                rng,
            )));
            blocks.push(Block::Lines(vec![format!(
                "Minutes: https://meetings.example.org/{}/{}.html",
                sc.topic.repo,
                ymd(p.time)
            )]));
            // Posted in the hour after the meeting, which started on the hour.
            let start = p.time - p.time.rem_euclid(3600) - 3600;
            blocks.push(Block::Pre(irc_log(rng, sc, p.author, start, true)));
        }
        Kind::Irc => {
            blocks.push(Block::Lines(vec![format!(
                "This came up in {} earlier today, pasting the relevant part.",
                sc.topic.channel
            )]));
            let start = p.time - rng.range(1800, 14_400);
            blocks.push(Block::Pre(irc_log(rng, sc, p.author, start, false)));
        }
        Kind::Patch => {
            let format_patch = p.special == Some(Special::FormatPatch)
                || (p.lists & unquoted_lists_mask() == 0 && rng.chance(30));
            let intro = rng.pick(&[
                "Something like this seems to fix it for us.",
                "Untested, but this is what I have in mind.",
                "Here is the patch we carry locally.",
            ]);
            blocks.push(Block::Lines(vec![intro.to_string()]));
            blocks.push(Block::Pre(patch_lines(m, rng, format_patch)));
        }
        _ => {}
    }
    let extra = if kind == Kind::Meeting {
        0
    } else {
        rng.index(3)
    };
    for _ in 0..extra {
        let n = 2 + rng.index(3);
        blocks.push(Block::Para(paragraph(sc, rng, n, &mut used)));
    }
    if p.special == Some(Special::FromLine) {
        blocks.push(from_line_block(sc, rng, 0));
        blocks.push(from_line_block(sc, rng, 1));
        // A bare-`>` quote of such a line: mboxrd must write it as `>>From `.
        let term = fill("{term}", sc, rng);
        blocks.push(Block::Lines(vec![
            "The release notes were blunt about it:".to_string(),
            format!(">From this release on, {term} is enabled by default."),
        ]));
    } else if rng.chance(3) {
        let variant = rng.below(2);
        blocks.push(from_line_block(sc, rng, variant));
    }
    let force_local = matches!(p.special, Some(Special::Koi8r | Special::Cp1251));
    let phrases = local_phrases(person.lang);
    if !phrases.is_empty() && (force_local || rng.chance(30)) {
        blocks.push(Block::Para(rng.pick(phrases).to_string()));
    }
    if matches!(kind, Kind::Html | Kind::Alt | Kind::Mixed) {
        // Rich mail is where links and tables show up; give the renderer both to chew on.
        blocks.push(Block::Para(fill(rng.pick::<&str>(LINK_SENTENCES), sc, rng)));
        if rng.chance(60) {
            blocks.push(table_block(rng));
        }
    }
    let signoff = if person.lang != En && (force_local || rng.chance(60)) {
        rng.pick(local_signoffs(person.lang))
    } else {
        rng.pick(EN_SIGNOFFS)
    };
    blocks.push(Block::Lines(vec![
        signoff.to_string(),
        first_name(person.name).to_string(),
    ]));
    if person.client == Outlook {
        if !person.org.is_empty() {
            blocks.push(Block::Lines(vec![
                person.name.to_string(),
                person.org.to_string(),
            ]));
        }
    } else if rng.chance(55) {
        let mut sig = vec![person.name.to_string()];
        if !person.org.is_empty() {
            sig.push(person.org.to_string());
        }
        if rng.chance(30) {
            sig.push(format!("IRC: {}", nick(person)));
        }
        blocks.push(Block::Sig(sig));
    }
    if let (Some(parent), true) = (&p.parent, top_post) {
        let pp = &PEOPLE[parent.author];
        let c = civil(parent.time + person.tz * 60);
        let (h12, ampm) = hour12(c.hour);
        let subject = if parent.is_root {
            p.thread.subject.clone()
        } else {
            format!("RE: {}", p.thread.subject)
        };
        blocks.push(Block::Lines(vec![
            "________________________________".to_string(),
            format!("From: {} <{}>", pp.name, pp.addr),
            format!(
                "Sent: {}, {} {}, {} {}:{:02} {}",
                WDAYS_FULL[c.wday],
                MONTHS_FULL[c.month - 1],
                c.day,
                c.year,
                h12,
                c.min,
                ampm
            ),
            format!("To: {}@{}", LISTS[p.thread.home].name, LIST_HOST),
            format!("Subject: {subject}"),
        ]));
        if parent.japanese {
            blocks.push(Block::Lines(
                JA_LINES.iter().map(|s| s.to_string()).collect(),
            ));
        } else {
            blocks.push(Block::Para(quoted_lead(
                &m.scene_at(parent.time),
                parent.seed,
            )));
        }
    }
    blocks
}

fn render_text(blocks: &[Block]) -> String {
    let mut out = String::new();
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match block {
            Block::Para(p) => {
                for line in wrap(p, 72) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            Block::Lines(lines) | Block::Pre(lines) => {
                for line in lines {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Block::Quote(q) => {
                let mut quoted = Vec::with_capacity(q.lines.len() + 2);
                if q.inside {
                    quoted.push(q.attribution.as_str());
                    quoted.push("");
                } else if q.attribution.chars().count() > 76 && q.attribution.ends_with(" wrote:") {
                    // Gmail wraps a long attribution before "wrote:".
                    let head = &q.attribution[..q.attribution.len() - " wrote:".len()];
                    out.push_str(head);
                    out.push_str("\nwrote:\n");
                } else {
                    out.push_str(&q.attribution);
                    out.push('\n');
                }
                quoted.extend(q.lines.iter().map(String::as_str));
                for line in quoted {
                    if line.is_empty() {
                        out.push('>');
                    } else {
                        out.push_str(q.prefix);
                        out.push_str(line);
                    }
                    out.push('\n');
                }
            }
            Block::Table(rows) => {
                let cols = rows.first().map_or(0, Vec::len);
                let widths: Vec<usize> = (0..cols)
                    .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
                    .collect();
                for (ri, row) in rows.iter().enumerate() {
                    let mut line = String::new();
                    for (c, cell) in row.iter().enumerate() {
                        let _ = write!(line, "{:<w$}  ", cell, w = widths[c]);
                    }
                    out.push_str(line.trim_end());
                    out.push('\n');
                    if ri == 0 {
                        let dashes: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
                        out.push_str(&dashes.join("  "));
                        out.push('\n');
                    }
                }
            }
            Block::Sig(lines) => {
                out.push_str("-- \n");
                for line in lines {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Turns bare https URLs of an already escaped paragraph into links.
fn linkify(escaped: &str) -> String {
    let words: Vec<String> = escaped
        .split(' ')
        .map(|w| match w.strip_prefix("https://") {
            Some(_) => {
                let url = w.trim_end_matches(['.', ',']);
                format!("<a href=\"{url}\">{url}</a>{}", &w[url.len()..])
            }
            None => w.to_string(),
        })
        .collect();
    words.join(" ")
}

fn render_html(blocks: &[Block], client: Client, charset: &str, hostile: bool) -> String {
    let mut h = String::new();
    let document = client != Gmail;
    if document {
        let _ = write!(
            h,
            "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset={charset}\">\n</head>\n<body>\n"
        );
    } else {
        h.push_str("<div dir=\"ltr\">\n");
    }
    let joined = |lines: &[String], sep: &str| {
        lines
            .iter()
            .map(|l| escape_html(l))
            .collect::<Vec<_>>()
            .join(sep)
    };
    for block in blocks {
        match block {
            Block::Para(p) => {
                let _ = writeln!(h, "<p>{}</p>", linkify(&escape_html(p)));
            }
            Block::Lines(lines) => {
                let _ = writeln!(h, "<div>{}</div>", joined(lines, "<br>\n"));
            }
            Block::Pre(lines) => {
                let _ = writeln!(h, "<pre>{}</pre>", joined(lines, "\n"));
            }
            Block::Quote(q) => {
                let _ = writeln!(
                    h,
                    "<div class=\"quote\">{}<br>\n<blockquote style=\"margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex\">\n{}\n</blockquote>\n</div>",
                    escape_html(&q.attribution),
                    joined(&q.lines, "<br>\n")
                );
            }
            Block::Table(rows) => {
                h.push_str(
                    "<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\n",
                );
                for (ri, row) in rows.iter().enumerate() {
                    let tag = if ri == 0 { "th" } else { "td" };
                    h.push_str("<tr>");
                    for cell in row {
                        let _ = write!(h, "<{tag}>{}</{tag}>", escape_html(cell));
                    }
                    h.push_str("</tr>\n");
                }
                h.push_str("</table>\n");
            }
            Block::Sig(lines) => {
                let _ = writeln!(
                    h,
                    "<div class=\"signature\">-- <br>\n{}</div>",
                    joined(lines, "<br>\n")
                );
            }
        }
    }
    if hostile {
        h.push_str(HOSTILE_HTML);
    }
    h.push_str(if document {
        "</body>\n</html>\n"
    } else {
        "</div>\n"
    });
    h
}

// ---------------------------------------------------------------------------------------------
// Encodings
// ---------------------------------------------------------------------------------------------

/// KOI8-R puts lowercase Cyrillic at 0xC0..0xDF in this (phonetic) order, uppercase at 0xE0.
const KOI8_ORDER: &str = "юабцдефгхийклмнопярстужвьызшэщчъ";

fn encode_char(cs: Charset, ch: char) -> Option<u8> {
    if ch.is_ascii() {
        return Some(ch as u8);
    }
    let c = u32::from(ch);
    match cs {
        Utf8 => None,
        Latin1 => u8::try_from(c).ok(),
        Cp1251 => match c {
            0x410..=0x44F => Some((c - 0x410 + 0xC0) as u8),
            0x401 => Some(0xA8),
            0x451 => Some(0xB8),
            _ => None,
        },
        Koi8r => match c {
            0x401 => Some(0xB3),
            0x451 => Some(0xA3),
            0x410..=0x44F => {
                let lower = if c < 0x430 { c + 0x20 } else { c };
                let base = if c < 0x430 { 0xE0 } else { 0xC0 };
                let lower = char::from_u32(lower)?;
                let pos = KOI8_ORDER.chars().position(|k| k == lower)?;
                Some(base + pos as u8)
            }
            _ => None,
        },
    }
}

fn encodable(cs: Charset, text: &str) -> bool {
    cs == Utf8 || text.chars().all(|ch| encode_char(cs, ch).is_some())
}

/// Lossy: characters the charset lacks become `?`, as old clients did.
fn encode_charset(cs: Charset, text: &str) -> Vec<u8> {
    if cs == Utf8 {
        return text.as_bytes().to_vec();
    }
    text.chars()
        .map(|ch| encode_char(cs, ch).unwrap_or(b'?'))
        .collect()
}

fn charset_label(cs: Charset, client: Client) -> &'static str {
    let upper = matches!(client, Gmail | Thunderbird | Evolution);
    match (cs, upper) {
        (Utf8, true) => "UTF-8",
        (Utf8, false) => "utf-8",
        (Latin1, true) => "ISO-8859-1",
        (Latin1, false) => "iso-8859-1",
        (Koi8r, true) => "KOI8-R",
        (Koi8r, false) => "koi8-r",
        (Cp1251, _) => "windows-1251",
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        out.push(char::from(B64[(n >> 18) as usize & 63]));
        out.push(char::from(B64[(n >> 12) as usize & 63]));
        out.push(if chunk.len() > 1 {
            char::from(B64[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            char::from(B64[n as usize & 63])
        } else {
            '='
        });
    }
    out
}

/// Base64 body in 76-column lines.
fn base64_body(data: &[u8]) -> Vec<u8> {
    let encoded = base64(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 + 1);
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// Text in base64 is CRLF-terminated in canonical form (RFC 2045), as real clients send it.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 40 + 1);
    for &b in data {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn quoted_printable(raw: &[u8]) -> Vec<u8> {
    const H: &[u8] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 8 + 8);
    let text = raw.strip_suffix(b"\n").unwrap_or(raw);
    for line in text.split(|&b| b == b'\n') {
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                ((b == b' ' || b == b'\t') && !last) || ((33..=126).contains(&b) && b != b'=');
            let width = if literal { 1 } else { 3 };
            if col + width > 75 {
                out.extend_from_slice(b"=\n");
                col = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', H[usize::from(b >> 4)], H[usize::from(b & 15)]]);
            }
            col += width;
        }
        out.push(b'\n');
    }
    out
}

fn apply_cte(raw: &[u8], cte: Cte) -> (&'static str, Vec<u8>) {
    match cte {
        Bit8 => (if raw.is_ascii() { "7bit" } else { "8bit" }, raw.to_vec()),
        Qp => ("quoted-printable", quoted_printable(raw)),
        Base64 => ("base64", base64_body(&crlf(raw))),
    }
}

fn q_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!*+-/".contains(&b)
}

/// RFC 2047 encoded words, split on character boundaries to stay within 75 columns each.
fn encoded_words(text: &str, cs: Charset, label: &str, q: bool) -> String {
    let budget = 75 - (label.len() + 7);
    let encoded_len = |bytes: &[u8]| {
        if q {
            bytes
                .iter()
                .map(|&b| if q_safe(b) || b == b' ' { 1 } else { 3 })
                .sum()
        } else {
            bytes.len().div_ceil(3) * 4
        }
    };
    let word = |bytes: &[u8]| {
        if q {
            let mut w = format!("=?{label}?Q?");
            for &b in bytes {
                if q_safe(b) {
                    w.push(char::from(b));
                } else if b == b' ' {
                    w.push('_');
                } else {
                    let _ = write!(w, "={b:02X}");
                }
            }
            w.push_str("?=");
            w
        } else {
            format!("=?{label}?B?{}?=", base64(bytes))
        }
    };
    let mut words = Vec::new();
    let mut chunk: Vec<u8> = Vec::new();
    for ch in text.chars() {
        let bytes = encode_charset(cs, ch.encode_utf8(&mut [0u8; 4]));
        let mut trial = chunk.clone();
        trial.extend_from_slice(&bytes);
        if !chunk.is_empty() && encoded_len(&trial) > budget {
            words.push(word(&chunk));
            chunk.clear();
        }
        chunk.extend_from_slice(&bytes);
    }
    if !chunk.is_empty() {
        words.push(word(&chunk));
    }
    words.join(" ")
}

/// Header text as `sender`'s client would write it: raw ASCII, or encoded words in the
/// sender's charset when it fits, else UTF-8.
fn header_text(text: &str, sender: &Person) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let cs = if encodable(sender.cs, text) {
        sender.cs
    } else {
        Utf8
    };
    let q = cs == Latin1 || matches!(sender.client, Thunderbird | Evolution | Mutt);
    encoded_words(text, cs, charset_label(cs, sender.client), q)
}

fn mailbox(who: &Person, sender: &Person) -> String {
    let name = if !who.name.is_ascii() {
        header_text(who.name, sender)
    } else if who
        .name
        .contains(['.', ',', '(', ')', '"', ':', ';', '@', '<', '>'])
    {
        format!("\"{}\"", who.name)
    } else {
        who.name.to_string()
    };
    format!("{name} <{}>", who.addr)
}

/// Appends `Name: value`, folded at spaces to keep lines near 78 columns.
fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    let mut col = name.len() + 1;
    for (i, token) in value.split(' ').enumerate() {
        let len = token.chars().count();
        if i > 0 && col + 1 + len > 78 && col > name.len() + 2 {
            out.push_str("\n ");
            col = 1;
        } else {
            out.push(' ');
            col += 1;
        }
        out.push_str(token);
        col += len;
    }
    out.push('\n');
}

// ---------------------------------------------------------------------------------------------
// MIME entities
// ---------------------------------------------------------------------------------------------

struct Entity {
    /// Header lines without the final newline; may contain folds.
    headers: Vec<String>,
    body: Vec<u8>,
}

/// A single-part text/plain body kept decodable, so Mailman 2 can append its footer to the
/// text itself the way it really does (re-encoding with the same transfer encoding).
struct TextPart {
    raw: Vec<u8>,
    cte: Cte,
    content_type: String,
}

struct Enc {
    cs: Charset,
    label: &'static str,
    cte: Cte,
}

/// The sender's preferred charset when it can carry the text (or when the message is meant to
/// show that charset), else UTF-8.
fn resolve_enc(person: &Person, text: &str, force: bool) -> Enc {
    let cs = if force || encodable(person.cs, text) {
        person.cs
    } else {
        Utf8
    };
    let cte = match cs {
        Latin1 => Qp,
        Koi8r | Cp1251 => Bit8,
        Utf8 => person.cte,
    };
    Enc {
        cs,
        label: charset_label(cs, person.client),
        cte,
    }
}

fn text_entity(text: &str, enc: &Enc, client: Client) -> (Entity, TextPart) {
    let raw = encode_charset(enc.cs, text);
    let label = if raw.is_ascii() && client == Mutt {
        "us-ascii"
    } else {
        enc.label
    };
    let content_type = match client {
        Thunderbird => format!("Content-Type: text/plain; charset={label}; format=flowed"),
        Mutt => format!("Content-Type: text/plain; charset={label}"),
        Apple => format!("Content-Type: text/plain;\n\tcharset={label}"),
        _ => format!("Content-Type: text/plain; charset=\"{label}\""),
    };
    let (cte, body) = apply_cte(&raw, enc.cte);
    let entity = Entity {
        headers: vec![
            content_type.clone(),
            format!("Content-Transfer-Encoding: {cte}"),
        ],
        body,
    };
    (
        entity,
        TextPart {
            raw,
            cte: enc.cte,
            content_type,
        },
    )
}

/// HTML lines run long, so clients send them quoted-printable unless they prefer base64. The
/// hostile message goes out raw, so its payload is also found verbatim in the archive file.
fn html_entity(html: &str, enc: &Enc, raw_8bit: bool) -> Entity {
    let raw = encode_charset(enc.cs, html);
    let cte = match enc.cte {
        Base64 => Base64,
        _ if raw_8bit => Bit8,
        _ => Qp,
    };
    let (label, body) = apply_cte(&raw, cte);
    Entity {
        headers: vec![
            format!("Content-Type: text/html; charset=\"{}\"", enc.label),
            format!("Content-Transfer-Encoding: {label}"),
        ],
        body,
    }
}

fn multipart(subtype: &str, boundary: &str, preamble: Option<&str>, parts: &[&Entity]) -> Entity {
    let mut body = Vec::new();
    if let Some(text) = preamble {
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(b"\n\n");
    }
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\n").as_bytes());
        for h in &part.headers {
            body.extend_from_slice(h.as_bytes());
            body.push(b'\n');
        }
        body.push(b'\n');
        body.extend_from_slice(&part.body);
        if !part.body.ends_with(b"\n") {
            body.push(b'\n');
        }
    }
    body.extend_from_slice(format!("--{boundary}--\n").as_bytes());
    Entity {
        headers: vec![format!(
            "Content-Type: multipart/{subtype};\n boundary=\"{boundary}\""
        )],
        body,
    }
}

fn boundary(client: Client, rng: &mut Rng) -> String {
    match client {
        Gmail => format!("000000000000{}", hex(rng, 12)),
        Thunderbird => format!("------------{}", alnum(rng, 24)),
        Outlook => format!("_000_{}_", alnum(rng, 32)),
        Apple => format!("Apple-Mail={}", uuid(rng).to_uppercase()),
        Mutt => alnum(rng, 16),
        Evolution => format!("=-{}", alnum(rng, 20)),
    }
}

fn preamble(client: Client) -> Option<&'static str> {
    matches!(client, Thunderbird | Outlook | Evolution)
        .then_some("This is a multi-part message in MIME format.")
}

fn fake_png(rng: &mut Rng) -> Vec<u8> {
    let mut png =
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x80\x00\x00\x01\xe0\x08\x06\x00\x00\x00"
            .to_vec();
    let n = 300 + rng.index(600);
    png.extend((0..n).map(|_| rng.next() as u8));
    png.extend_from_slice(b"\x00\x00\x00\x00IEND\xaeB`\x82");
    png
}

fn fake_pdf(rng: &mut Rng, title: &str) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n".to_vec();
    pdf.extend_from_slice(
        format!("3 0 obj\n<< /Title ({title}) /Filter /FlateDecode >>\nstream\n").as_bytes(),
    );
    let n = 400 + rng.index(800);
    pdf.extend((0..n).map(|_| rng.next() as u8));
    pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
    pdf
}

fn log_text(m: &MsgCtx, rng: &mut Rng) -> String {
    let sc = &m.sc;
    let file = sc.topic.files[0];
    let module = file
        .strip_suffix(".py")
        .unwrap_or(sc.topic.service)
        .replace('/', ".");
    let pid = 1000 + rng.below(30_000);
    let mut t = m.p.time - rng.range(600, 7200);
    let mut out = String::new();
    let mut traceback = false;
    for _ in 0..15 + rng.index(30) {
        t += rng.range(0, 20);
        let c = civil(t);
        let level = *rng.pick(&["DEBUG", "INFO", "INFO", "WARNING", "ERROR"]);
        let text = fill(rng.pick::<&str>(LOG_TEMPLATES), sc, rng);
        let _ = writeln!(
            out,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} {pid} {level} {module} [req-{}] {text}",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.min,
            c.sec,
            rng.below(1000),
            uuid(rng)
        );
        if level == "ERROR" && !traceback {
            traceback = true;
            let _ = writeln!(out, "Traceback (most recent call last):");
            let _ = writeln!(
                out,
                "  File \"/usr/lib/python3/dist-packages/{file}\", line {}, in _run",
                40 + rng.below(900)
            );
            let _ = writeln!(out, "    {}", rng.pick(sc.topic.code).trim());
            let _ = writeln!(
                out,
                "oslo_messaging.exceptions.MessagingTimeout: Timed out waiting for a reply"
            );
        }
    }
    out
}

/// RFC 2231 `filename*0*=`/`filename*1*=` continuations, percent-encoded UTF-8, the way
/// Thunderbird writes long non-ASCII names.
fn rfc2231_disposition(filename: &str) -> String {
    let mut tokens = Vec::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            tokens.push(char::from(b).to_string());
        } else {
            tokens.push(format!("%{b:02X}"));
        }
    }
    let half = tokens.len() / 2;
    format!(
        "Content-Disposition: attachment;\n filename*0*=UTF-8''{};\n filename*1*={}",
        tokens[..half].concat(),
        tokens[half..].concat()
    )
}

fn attachment(m: &MsgCtx, rng: &mut Rng) -> Entity {
    let sc = &m.sc;
    let gmail_ids = |rng: &mut Rng, headers: &mut Vec<String>| {
        if m.person.client == Gmail {
            let id = format!("f_{}", alnum(rng, 9).to_lowercase());
            headers.push(format!("Content-ID: <{id}>"));
            headers.push(format!("X-Attachment-Id: {id}"));
        }
    };
    if m.p.special == Some(Special::Rfc2231) {
        let name = format!("compte-rendu_réunion_opérateurs_{}.pdf", ymd(m.p.time));
        let headers = vec![
            format!(
                "Content-Type: application/pdf;\n name=\"{}\"",
                encoded_words(&name, Utf8, "UTF-8", true)
            ),
            rfc2231_disposition(&name),
            "Content-Transfer-Encoding: base64".to_string(),
        ];
        return Entity {
            headers,
            body: base64_body(&fake_pdf(rng, "Compte rendu")),
        };
    }
    let (content_type, name, data) = match rng.below(4) {
        0 | 1 => {
            let name = format!("{}.log", sc.topic.service);
            let data = crlf(log_text(m, rng).as_bytes());
            ("text/x-log; charset=\"UTF-8\"", name, data)
        }
        2 => ("image/png", "screenshot.png".to_string(), fake_png(rng)),
        _ => {
            let name = format!("{}-report-{}.pdf", sc.topic.repo, ymd(m.p.time));
            let data = fake_pdf(rng, &name);
            ("application/pdf", name, data)
        }
    };
    let mut headers = vec![
        format!("Content-Type: {content_type}; name=\"{name}\""),
        format!("Content-Disposition: attachment; filename=\"{name}\""),
        "Content-Transfer-Encoding: base64".to_string(),
    ];
    gmail_ids(rng, &mut headers);
    Entity {
        headers,
        body: base64_body(&data),
    }
}

fn japanese_entity() -> (Entity, TextPart) {
    let mut raw = Vec::new();
    let blank_after = [1, 4];
    for (i, line) in JA_LINES_2022.iter().enumerate() {
        raw.extend_from_slice(line);
        raw.push(b'\n');
        if blank_after.contains(&i) {
            raw.push(b'\n');
        }
    }
    raw.extend_from_slice(b"\n-- \nTaro Tanaka\n");
    let content_type = "Content-Type: text/plain; charset=ISO-2022-JP; format=flowed".to_string();
    let entity = Entity {
        headers: vec![
            content_type.clone(),
            "Content-Transfer-Encoding: 7bit".to_string(),
        ],
        body: raw.clone(),
    };
    (
        entity,
        TextPart {
            raw,
            cte: Bit8,
            content_type,
        },
    )
}

fn body_entity(m: &MsgCtx, rng: &mut Rng) -> (Entity, Option<TextPart>) {
    let person = m.person;
    let kind = choose_kind(m.p, person, rng);
    let force = matches!(m.p.special, Some(Special::Koi8r | Special::Cp1251));
    let blocks = compose(m, kind, rng);
    let text = render_text(&blocks);
    let enc = resolve_enc(person, &text, force);
    let hostile = m.p.special == Some(Special::Hostile);
    let html = || render_html(&blocks, person.client, enc.label, hostile);
    let alternative = |rng: &mut Rng| {
        let (plain, _) = text_entity(&text, &enc, person.client);
        let rich = html_entity(&html(), &enc, false);
        multipart(
            "alternative",
            &boundary(person.client, rng),
            preamble(person.client),
            &[&plain, &rich],
        )
    };
    match kind {
        Kind::Plain | Kind::Irc | Kind::Meeting | Kind::Patch => {
            let (entity, part) = text_entity(&text, &enc, person.client);
            (entity, Some(part))
        }
        Kind::Html => (html_entity(&html(), &enc, hostile), None),
        Kind::Alt => (alternative(rng), None),
        Kind::Mixed => {
            // Gmail nests the alternative inside the mixed; other clients attach to plain text.
            let body = if person.client == Gmail {
                alternative(rng)
            } else {
                text_entity(&text, &enc, person.client).0
            };
            let file = attachment(m, rng);
            let outer = boundary(person.client, rng);
            (
                multipart("mixed", &outer, preamble(person.client), &[&body, &file]),
                None,
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering a message and writing its copies
// ---------------------------------------------------------------------------------------------

/// Everything about a message that is the same in every list's copy.
struct Rendered {
    sender: &'static str,
    from: String,
    from_pipermail: String,
    /// As sent (encoded, unfolded); lists may prefix it.
    subject: String,
    /// Folded To/Cc lines.
    recipients: String,
    /// Folded Date .. MIME-Version lines.
    rest: String,
    entity: Entity,
    text_part: Option<TextPart>,
    submit_received: String,
    submit_time: i64,
    relay: (&'static str, &'static str),
}

fn relay_for(addr: &str) -> (&'static str, &'static str) {
    if addr.ends_with("example.com") {
        ("smtp.example.com", "198.51.100.20")
    } else if addr.ends_with("example.net") {
        ("mx.example.net", "198.51.100.30")
    } else {
        ("mail.example.org", "198.51.100.10")
    }
}

fn queue_id(rng: &mut Rng) -> String {
    format!("{:010X}", rng.next() & 0xFF_FFFF_FFFF)
}

fn list_addr(list: usize) -> String {
    format!("{}@{}", LISTS[list].name, LIST_HOST)
}

impl Generator {
    fn render(&self, p: &Pending) -> Rendered {
        let person = &PEOPLE[p.author];
        let m = MsgCtx {
            p,
            person,
            sc: Scene {
                topic: &TOPICS[p.thread.topic],
                time: p.time,
                people: &self.participants[p.thread.topic],
            },
        };
        let mut rng = Rng::new(p.seed);
        let japanese = p.special == Some(Special::Japanese);
        let (entity, text_part) = if japanese {
            let (entity, part) = japanese_entity();
            (entity, Some(part))
        } else {
            body_entity(&m, &mut rng)
        };

        let subject = if japanese {
            JA_SUBJECT_ENCODED.to_string()
        } else if p.index == 0 {
            header_text(&p.thread.subject, person)
        } else {
            let re = match (person.client, person.lang) {
                (Outlook, De) => "AW: ",
                (Outlook, _) => "RE: ",
                _ => "Re: ",
            };
            header_text(&format!("{re}{}", p.thread.subject), person)
        };
        let display = if japanese {
            JA_NAME_ENCODED.to_string()
        } else {
            header_text(person.name, person)
        };
        let from = if japanese {
            format!("{display} <{}>", person.addr)
        } else {
            mailbox(person, person)
        };
        let from_pipermail = format!("{} ({display})", person.addr.replace('@', " at "));

        let mut lists: Vec<usize> = vec![p.thread.home];
        lists.extend((0..LISTS.len()).filter(|&l| p.lists & (1 << l) != 0 && l != p.thread.home));
        lists.retain(|&l| p.lists & (1 << l) != 0);
        let list_mailbox = |l: usize| {
            if person.client == Outlook {
                format!("\"{0}\" <{0}>", list_addr(l))
            } else {
                list_addr(l)
            }
        };
        let all: Vec<String> = lists.iter().map(|&l| list_mailbox(l)).collect();
        let (to, cc) = match &p.parent {
            Some(parent) if parent.author != p.author && rng.chance(50) => {
                (vec![mailbox(&PEOPLE[parent.author], person)], all)
            }
            _ if rng.chance(30) => (all, Vec::new()),
            _ => (all[..1].to_vec(), all[1..].to_vec()),
        };
        let mut recipients = String::new();
        push_header(&mut recipients, "To", &to.join(", "));
        if !cc.is_empty() {
            push_header(&mut recipients, "Cc", &cc.join(", "));
        }

        let mut rest = String::new();
        push_header(
            &mut rest,
            "Date",
            &rfc2822(p.time, person.tz, person.client == Outlook),
        );
        if let Some(id) = &p.id {
            push_header(&mut rest, "Message-ID", id);
        }
        if let (Some(parent_id), Some(_)) = (p.references.last(), &p.parent) {
            push_header(&mut rest, "In-Reply-To", parent_id);
        }
        if !p.references.is_empty() {
            let chain: Vec<&str> = p.references.iter().map(|r| &**r).collect();
            push_header(&mut rest, "References", &chain.join(" "));
        }
        match person.client {
            Thunderbird => rest.push_str("User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:102.0) Gecko/20100101\n Thunderbird/102.11.0\n"),
            Mutt => rest.push_str("User-Agent: Mutt/2.2.9 (2022-11-12)\n"),
            Outlook => rest.push_str("X-Mailer: Microsoft Outlook 16.0\nContent-Language: en-US\n"),
            Apple => rest.push_str("X-Mailer: Apple Mail (2.3731.500.231)\n"),
            Evolution => rest.push_str("User-Agent: Evolution 3.46.4-2\n"),
            Gmail => {}
        }
        rest.push_str("MIME-Version: 1.0\n");

        let relay = relay_for(person.addr);
        let submit_time = p.time + rng.range(0, 3);
        let client_ip = 10 + p.author;
        let submit_received = format!(
            "Received: from [192.168.1.{}] (host-203-0-113-{client_ip}.example.net [203.0.113.{client_ip}])\n\tby {} (Postfix) with ESMTPSA id {}\n\tfor <{}>; {}\n",
            2 + rng.below(200),
            relay.0,
            queue_id(&mut rng),
            list_addr(lists[0]),
            received_date(submit_time)
        );
        Rendered {
            sender: person.addr,
            from,
            from_pipermail,
            subject,
            recipients,
            rest,
            entity,
            text_part,
            submit_received,
            submit_time,
            relay,
        }
    }
}

fn footer(list: &ListDef) -> String {
    format!(
        "_______________________________________________\n{0} mailing list\n{0}@{1}\nhttps://{1}/mailman/listinfo/{0}\n",
        list.name, LIST_HOST
    )
}

/// Mailman 2's decoration: the footer goes into a single text/plain body; anything else is
/// wrapped in a new multipart/mixed with the footer as a second part.
fn decorate(r: &Rendered, list: &ListDef, rng: &mut Rng) -> Entity {
    let footer = footer(list);
    if let Some(part) = &r.text_part {
        let mut raw = part.raw.clone();
        if !raw.ends_with(b"\n") {
            raw.push(b'\n');
        }
        raw.extend_from_slice(footer.as_bytes());
        let (cte, body) = apply_cte(&raw, part.cte);
        return Entity {
            headers: vec![
                part.content_type.clone(),
                format!("Content-Transfer-Encoding: {cte}"),
            ],
            body,
        };
    }
    let footer_part = Entity {
        headers: vec![
            "Content-Type: text/plain; charset=\"us-ascii\"".to_string(),
            "MIME-Version: 1.0".to_string(),
            "Content-Transfer-Encoding: 7bit".to_string(),
            "Content-Disposition: inline".to_string(),
        ],
        body: footer.into_bytes(),
    };
    let boundary = format!(
        "==============={:019}==",
        rng.next() % 10_000_000_000_000_000_000
    );
    multipart("mixed", &boundary, None, &[&r.entity, &footer_part])
}

fn list_headers(h: &mut String, list: &ListDef) {
    let name = list.name;
    if list.mailman2 {
        let _ = write!(
            h,
            "X-BeenThere: {name}@{LIST_HOST}\n\
             X-Mailman-Version: 2.1.29\n\
             Precedence: list\n\
             List-Id: {} <{name}.{LIST_HOST}>\n\
             List-Unsubscribe: <https://{LIST_HOST}/mailman/options/{name}>,\n <mailto:{name}-request@{LIST_HOST}?subject=unsubscribe>\n\
             List-Archive: <https://{LIST_HOST}/pipermail/{name}/>\n\
             List-Post: <mailto:{name}@{LIST_HOST}>\n\
             List-Help: <mailto:{name}-request@{LIST_HOST}?subject=help>\n\
             List-Subscribe: <https://{LIST_HOST}/mailman/listinfo/{name}>,\n <mailto:{name}-request@{LIST_HOST}?subject=subscribe>\n\
             Errors-To: {name}-bounces@{LIST_HOST}\n\
             Sender: \"{name}\" <{name}-bounces@{LIST_HOST}>\n",
            list.description
        );
    } else {
        let _ = write!(
            h,
            "X-Mailman-Version: 3.3.8\n\
             Precedence: list\n\
             List-Id: <{name}.{LIST_HOST}>\n\
             List-Archive: <https://{LIST_HOST}/archives/list/{name}@{LIST_HOST}/>\n\
             List-Help: <mailto:{name}-request@{LIST_HOST}?subject=help>\n\
             List-Owner: <mailto:{name}-owner@{LIST_HOST}>\n\
             List-Post: <mailto:{name}@{LIST_HOST}>\n\
             List-Subscribe: <mailto:{name}-join@{LIST_HOST}>\n\
             List-Unsubscribe: <mailto:{name}-leave@{LIST_HOST}>\n"
        );
    }
}

struct CopyTimes {
    inbound: i64,
    outbound: i64,
    delivered: i64,
}

/// One list's copy: delivery headers on top, the author's headers, then the list's own.
fn build_copy(r: &Rendered, list_idx: usize, times: &CopyTimes, rng: &mut Rng) -> Vec<u8> {
    let list = &LISTS[list_idx];
    let name = list.name;
    let mut h = String::with_capacity(3072);
    let _ = write!(
        h,
        "Return-Path: <{name}-bounces+archive+{name}=example.org@{LIST_HOST}>\n\
         Delivered-To: archive+{name}@example.org\n\
         Received: from {LIST_HOST} ({LIST_HOST} [192.0.2.25])\n\tby archive.example.org (Postfix) with ESMTPS id {}\n\tfor <archive+{name}@example.org>; {}\n\
         Received: from {LIST_HOST} (localhost [127.0.0.1])\n\tby {LIST_HOST} (Postfix) with ESMTP id {};\n\t{}\n\
         Received: from {relay} ({relay} [{relay_ip}])\n\tby {LIST_HOST} (Postfix) with ESMTPS id {}\n\tfor <{name}@{LIST_HOST}>; {}\n",
        queue_id(rng),
        received_date(times.delivered),
        queue_id(rng),
        received_date(times.outbound),
        queue_id(rng),
        received_date(times.inbound),
        relay = r.relay.0,
        relay_ip = r.relay.1,
    );
    h.push_str(&r.submit_received);
    let from = if list.format == SampleFormat::Pipermail {
        &r.from_pipermail
    } else {
        &r.from
    };
    push_header(&mut h, "From", from);
    h.push_str(&r.recipients);
    let subject = match list.subject_prefix {
        Some(prefix) => format!("{prefix}{}", r.subject),
        None => r.subject.clone(),
    };
    push_header(&mut h, "Subject", &subject);
    h.push_str(&r.rest);
    let decorated;
    let entity = if list.mailman2 {
        decorated = decorate(r, list, rng);
        &decorated
    } else {
        &r.entity
    };
    for line in &entity.headers {
        h.push_str(line);
        h.push('\n');
    }
    list_headers(&mut h, list);
    h.push('\n');
    let mut out = h.into_bytes();
    out.extend_from_slice(&entity.body);
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

enum Sink {
    Plain(BufWriter<File>),
    Gz(GzEncoder<BufWriter<File>>),
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(bytes),
            Sink::Gz(w) => w.write_all(bytes),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gz(w) => w.finish()?.flush(),
        }
    }
}

struct OpenFile {
    month: (i64, usize),
    path: PathBuf,
    sink: Sink,
    messages: usize,
}

#[derive(Default)]
struct ListOut {
    /// Latest delivery time written; later copies never go before it, so files stay in
    /// arrival order and a month's file is never reopened.
    last: i64,
    open: Option<OpenFile>,
    done: Vec<SampleFile>,
}

impl ListOut {
    fn close(&mut self, list: &ListDef) -> Result<()> {
        if let Some(file) = self.open.take() {
            file.sink
                .finish()
                .with_context(|| format!("finishing {}", file.path.display()))?;
            self.done.push(SampleFile {
                path: file.path,
                list: list.name.to_string(),
                messages: file.messages,
                format: list.format,
            });
        }
        Ok(())
    }

    fn append(
        &mut self,
        root: &Path,
        list: &ListDef,
        t: i64,
        sender: &str,
        msg: &[u8],
    ) -> Result<()> {
        let c = civil(t);
        let month = (c.year, c.month);
        if self.open.as_ref().is_some_and(|f| f.month != month) {
            self.close(list)?;
        }
        let file = match self.open.take() {
            Some(file) => file,
            None => open_file(root, list, month)?,
        };
        let file = self.open.insert(file);
        let mut buf = Vec::with_capacity(msg.len() + msg.len() / 30 + 96);
        if list.format == SampleFormat::Pipermail {
            let envelope = format!("From {}  {}\n", sender.replace('@', " at "), asctime(t));
            buf.extend_from_slice(envelope.as_bytes());
            buf.extend_from_slice(msg);
        } else {
            buf.extend_from_slice(format!("From {sender} {}\n", asctime(t)).as_bytes());
            let body = msg.strip_suffix(b"\n").unwrap_or(msg);
            for line in body.split(|&b| b == b'\n') {
                let depth = line.iter().take_while(|&&b| b == b'>').count();
                if line[depth..].starts_with(b"From ") {
                    buf.push(b'>');
                }
                buf.extend_from_slice(line);
                buf.push(b'\n');
            }
        }
        buf.push(b'\n');
        if list.format == SampleFormat::MboxrdCrlf {
            buf = crlf(&buf);
        }
        file.sink
            .write_all(&buf)
            .with_context(|| format!("writing {}", file.path.display()))?;
        file.messages += 1;
        Ok(())
    }
}

fn open_file(root: &Path, list: &ListDef, month: (i64, usize)) -> Result<OpenFile> {
    let dir = root.join(list.name);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = match list.format {
        SampleFormat::Pipermail => format!("{:04}-{}.txt.gz", month.0, MONTHS_FULL[month.1 - 1]),
        SampleFormat::Mboxrd | SampleFormat::MboxrdCrlf => {
            format!("{:04}-{:02}.mbox", month.0, month.1)
        }
    };
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let writer = BufWriter::with_capacity(1 << 16, file);
    let sink = match list.format {
        // GzEncoder writes mtime 0 and no file name, so the bytes depend on content only.
        SampleFormat::Pipermail => Sink::Gz(GzEncoder::new(writer, Compression::default())),
        SampleFormat::Mboxrd | SampleFormat::MboxrdCrlf => Sink::Plain(writer),
    };
    Ok(OpenFile {
        month,
        path,
        sink,
        messages: 0,
    })
}

struct Output {
    dir: PathBuf,
    lists: Vec<ListOut>,
}

impl Output {
    fn write(&mut self, p: &Pending, r: &Rendered) -> Result<()> {
        for (li, list) in LISTS.iter().enumerate() {
            if p.lists & (1 << li) == 0 {
                continue;
            }
            let mut rng = Rng::new(mix(p.seed, li as u64 + 1));
            let inbound = r.submit_time + rng.range(1, 20);
            let outbound = inbound + rng.range(1, 40);
            let out = &mut self.lists[li];
            let delivered = (outbound + rng.range(0, 4)).max(out.last);
            out.last = delivered;
            let times = CopyTimes {
                inbound,
                outbound,
                delivered,
            };
            let msg = build_copy(r, li, &times, &mut rng);
            out.append(&self.dir, list, delivered, r.sender, &msg)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<SampleFile>> {
        let mut files = Vec::new();
        for (li, list) in LISTS.iter().enumerate() {
            let out = &mut self.lists[li];
            out.close(list)?;
            files.append(&mut out.done);
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Read;

    /// A fresh folder under the system temp dir, removed again when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("archivist-sample-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    struct Message {
        /// Lower-cased names, unfolded values, in order.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Message {
        fn get(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    struct Split {
        messages: Vec<Message>,
        /// Body lines starting with `From ` left unquoted (pipermail only).
        stray_from: usize,
        /// Body lines that mboxrd quoting turned into `>From `, `>>From `, ...
        quoted_from: usize,
        /// Those with two or more `>`: a body line that already started with `>From `.
        deep_quoted_from: usize,
    }

    fn contents(f: &SampleFile) -> Result<Vec<u8>> {
        let raw = fs::read(&f.path)?;
        if f.format != SampleFormat::Pipermail {
            return Ok(raw);
        }
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
        Ok(out)
    }

    fn lossy(line: &[u8]) -> String {
        String::from_utf8_lossy(line).into_owned()
    }

    fn header_like(line: &[u8]) -> bool {
        match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                colon > 0
                    && line[..colon]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                    && line.get(colon + 1) == Some(&b' ')
            }
            None => false,
        }
    }

    fn asctime_like(s: &str) -> bool {
        s.len() == 24 && WDAYS.contains(&&s[..3]) && MONTHS.contains(&&s[4..7])
    }

    /// `From alice@example.org Mon May  1 09:12:44 2023`, or for pipermail
    /// `From alice at example.org  Mon May  1 09:12:44 2023`.
    fn is_separator(line: &[u8], format: SampleFormat) -> bool {
        let Ok(s) = std::str::from_utf8(line) else {
            return false;
        };
        let Some(rest) = s.strip_prefix("From ") else {
            return false;
        };
        match format {
            SampleFormat::Pipermail => rest.split_once("  ").is_some_and(|(who, date)| {
                let parts: Vec<&str> = who.split(' ').collect();
                parts.len() == 3 && parts[1] == "at" && asctime_like(date)
            }),
            _ => rest
                .split_once(' ')
                .is_some_and(|(who, date)| who.contains('@') && asctime_like(date)),
        }
    }

    /// Splits a file at its separators, asserting on the way that every line starting with
    /// `From ` is an intended separator (at the start or after a blank line, followed by a
    /// header) or, in pipermail only, a body line that cannot pass for one.
    fn split(f: &SampleFile) -> Result<Split> {
        let data = contents(f)?;
        let crlf = f.format == SampleFormat::MboxrdCrlf;
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(
                    crlf,
                    i > 0 && data[i - 1] == b'\r',
                    "line ending in {:?}",
                    f.path
                );
            }
        }
        let text = data.strip_suffix(b"\n").unwrap_or(&data);
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .map(|l| {
                if crlf {
                    l.strip_suffix(b"\r").unwrap_or(l)
                } else {
                    l
                }
            })
            .collect();
        assert!(
            is_separator(lines[0], f.format),
            "{:?} must open with a separator",
            f.path
        );
        assert!(
            lines[lines.len() - 1].is_empty(),
            "{:?} must end with a blank line",
            f.path
        );
        let mut starts = Vec::new();
        let mut stray_from = 0;
        let mut quoted_from = 0;
        let mut deep_quoted_from = 0;
        for (i, line) in lines.iter().enumerate() {
            let depth = line.iter().take_while(|&&b| b == b'>').count();
            if depth > 0 && line[depth..].starts_with(b"From ") {
                quoted_from += 1;
                deep_quoted_from += usize::from(depth > 1);
            }
            if !line.starts_with(b"From ") {
                continue;
            }
            let after_blank = i == 0 || lines[i - 1].is_empty();
            let before_header = lines.get(i + 1).is_some_and(|l| header_like(l));
            if is_separator(line, f.format) && after_blank && before_header {
                starts.push(i);
            } else {
                assert_eq!(
                    f.format,
                    SampleFormat::Pipermail,
                    "{:?} line {}: unquoted body line {:?}",
                    f.path,
                    i + 1,
                    lossy(line)
                );
                assert!(
                    !(after_blank && before_header),
                    "{:?} line {} looks like a separator: {:?}",
                    f.path,
                    i + 1,
                    lossy(line)
                );
                stray_from += 1;
            }
        }
        let mut messages = Vec::new();
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(lines.len());
            let block = &lines[start + 1..end];
            let blank = block
                .iter()
                .position(|l| l.is_empty())
                .unwrap_or(block.len());
            let mut headers: Vec<(String, String)> = Vec::new();
            for line in &block[..blank] {
                assert!(
                    line.is_ascii(),
                    "8-bit header in {:?}: {:?}",
                    f.path,
                    lossy(line)
                );
                let text = lossy(line);
                if text.starts_with([' ', '\t']) {
                    if let Some(last) = headers.last_mut() {
                        last.1.push(' ');
                        last.1.push_str(text.trim());
                    }
                } else if let Some((name, value)) = text.split_once(':') {
                    headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
                }
            }
            let body = block[(blank + 1).min(block.len())..].join(&b'\n');
            messages.push(Message { headers, body });
        }
        Ok(Split {
            messages,
            stray_from,
            quoted_from,
            deep_quoted_from,
        })
    }

    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    }

    /// Parses the RFC 2822 dates this module writes.
    fn parse_date(s: &str) -> Option<i64> {
        let f: Vec<&str> = s.split_whitespace().collect();
        let day: i64 = f.get(1)?.parse().ok()?;
        let month = MONTHS.iter().position(|m| Some(m) == f.get(2))? as i64 + 1;
        let year: i64 = f.get(3)?.parse().ok()?;
        let hms: Vec<i64> = f
            .get(4)?
            .split(':')
            .filter_map(|x| x.parse().ok())
            .collect();
        let zone = f.get(5)?;
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let offset =
            sign * (zone[1..3].parse::<i64>().ok()? * 60 + zone[3..5].parse::<i64>().ok()?);
        let local = days_from_civil(year, month, day) * DAY + hms[0] * 3600 + hms[1] * 60 + hms[2];
        Some(local - offset * 60)
    }

    /// List names addressed in To and Cc.
    fn addressed(m: &Message) -> BTreeSet<String> {
        let mut lists = BTreeSet::new();
        for value in [m.get("to"), m.get("cc")].into_iter().flatten() {
            let suffix = format!("@{LIST_HOST}");
            let mut rest = value;
            while let Some(at) = rest.find(&suffix) {
                let local: String = rest[..at]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                lists.insert(local.chars().rev().collect());
                rest = &rest[at + suffix.len()..];
            }
        }
        lists
    }

    /// Undoes quoted-printable across a whole file; good enough to search decoded text.
    fn qp_decode(data: &[u8]) -> Vec<u8> {
        let hex = |b: u8| (b as char).to_digit(16);
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if data[i] == b'=' {
                if data.get(i + 1) == Some(&b'\n') {
                    i += 2;
                    continue;
                }
                if let (Some(h), Some(l)) = (
                    data.get(i + 1).and_then(|&b| hex(b)),
                    data.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(data[i]);
            i += 1;
        }
        out
    }

    /// The demo archive, generated and split; the folder goes away with it.
    struct Demo {
        dir: Scratch,
        files: Vec<(SampleFile, Split)>,
    }

    fn demo(name: &str) -> Result<Demo> {
        let dir = Scratch::new(name);
        let mut files = Vec::new();
        for f in write_sample(&dir.0, &SampleSpec::demo())? {
            let split = split(&f)?;
            files.push((f, split));
        }
        Ok(Demo { dir, files })
    }

    #[test]
    fn same_spec_gives_identical_bytes() -> Result<()> {
        let (a, b, c) = (
            Scratch::new("det-a"),
            Scratch::new("det-b"),
            Scratch::new("det-c"),
        );
        let spec = SampleSpec::demo();
        let fa = write_sample(&a.0, &spec)?;
        let fb = write_sample(&b.0, &spec)?;
        assert!(!fa.is_empty());
        assert_eq!(fa.len(), fb.len());
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!(x.path.strip_prefix(&a.0)?, y.path.strip_prefix(&b.0)?);
            assert_eq!((x.messages, &x.list), (y.messages, &y.list));
            assert!(
                fs::read(&x.path)? == fs::read(&y.path)?,
                "{:?} differs",
                x.path
            );
        }
        let other = SampleSpec {
            seed: spec.seed + 1,
            ..spec
        };
        let fc = write_sample(&c.0, &other)?;
        assert_ne!(fs::read(&fa[0].path)?, fs::read(&fc[0].path)?);
        Ok(())
    }

    #[test]
    fn counts_match_separators_which_sit_only_where_intended() -> Result<()> {
        let Demo { dir, files } = demo("separators")?;
        let mut stray = 0;
        let mut quoted = 0;
        let mut deep = 0;
        for (f, s) in &files {
            assert_eq!(s.messages.len(), f.messages, "{:?}", f.path);
            assert_eq!(f.path.parent(), Some(dir.0.join(&f.list).as_path()));
            if f.format == SampleFormat::Pipermail {
                stray += s.stray_from;
            } else {
                quoted += s.quoted_from;
                deep += s.deep_quoted_from;
            }
        }
        assert!(deep > 0, "mboxrd copies should carry `>>From ` lines");
        assert!(
            stray > 0,
            "pipermail copies should carry unquoted body From lines"
        );
        assert!(
            quoted > 0,
            "mboxrd copies should carry quoted body From lines"
        );
        let lists: BTreeSet<&str> = files.iter().map(|(f, _)| f.list.as_str()).collect();
        assert_eq!(lists, BTreeSet::from(["dev", "operators", "sigs"]));
        let names: Vec<String> = files
            .iter()
            .filter_map(|(f, _)| f.path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        for expected in [
            "2023-05.mbox",
            "2023-06.mbox",
            "2023-May.txt.gz",
            "2023-June.txt.gz",
        ] {
            assert!(names.iter().any(|n| n == expected), "missing {expected}");
        }
        Ok(())
    }

    #[test]
    fn pipermail_files_decompress_and_carry_mailman_decoration() -> Result<()> {
        let Demo { dir: _dir, files } = demo("pipermail")?;
        let mut seen = 0;
        for (f, s) in files
            .iter()
            .filter(|(f, _)| f.format == SampleFormat::Pipermail)
        {
            assert!(f.path.to_string_lossy().ends_with(".txt.gz"));
            for m in &s.messages {
                seen += 1;
                let from = m.get("from").unwrap_or("");
                assert!(from.contains(" at ") && !from.contains('@'), "{from}");
                assert!(m.get("subject").unwrap_or("").starts_with("[Operators] "));
                let body = String::from_utf8_lossy(&m.body);
                let footer = "operators mailing list\noperators@lists.example.org\n";
                // Base64 bodies carry the footer encoded; every other shape shows it as text.
                let encoded = m.get("content-transfer-encoding") == Some("base64");
                assert!(
                    encoded || body.contains(footer),
                    "no footer: {:?}",
                    m.get("message-id")
                );
            }
        }
        assert!(seen > 50);
        Ok(())
    }

    #[test]
    fn cross_posted_ids_appear_in_every_addressed_list() -> Result<()> {
        let Demo { dir: _dir, files } = demo("crosspost")?;
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (f, s) in &files {
            for m in &s.messages {
                let list_id = m.get("list-id").unwrap_or("");
                assert!(
                    list_id.contains(&format!("<{}.{LIST_HOST}>", f.list)),
                    "{list_id}"
                );
                let Some(id) = m.get("message-id") else {
                    continue;
                };
                seen.entry(id.to_string())
                    .or_default()
                    .insert(f.list.clone());
                wanted
                    .entry(id.to_string())
                    .or_default()
                    .extend(addressed(m));
            }
        }
        assert_eq!(seen, wanted);
        let crossposted = seen.values().filter(|lists| lists.len() >= 2).count();
        assert!(
            crossposted * 10 > seen.len(),
            "{crossposted} of {}",
            seen.len()
        );
        assert!(seen.values().any(|lists| lists.len() == 3));
        Ok(())
    }

    #[test]
    fn replies_follow_parents_and_totals_match_the_spec() -> Result<()> {
        let Demo { dir: _dir, files } = demo("threads")?;
        let spec = SampleSpec::demo();
        let end = spec.start + i64::from(spec.weeks) * WEEK;
        // Distinct messages are (Message-ID or From, Date) pairs: copies share both.
        let mut distinct: BTreeSet<(String, i64)> = BTreeSet::new();
        let mut dates: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        let mut replies = Vec::new();
        let mut longest = 0;
        for (_, s) in &files {
            for m in &s.messages {
                let date = m.get("date").and_then(parse_date);
                let Some(date) = date else {
                    panic!("bad Date {:?}", m.get("date"));
                };
                assert!((spec.start..end).contains(&date));
                let from = m.get("from").unwrap_or("").replace(" at ", "@");
                let sender = from
                    .split([' ', '<', '>', '(', ')'])
                    .find(|w| w.contains('@'))
                    .unwrap_or("")
                    .to_string();
                let key = m.get("message-id").map_or(sender, str::to_string);
                distinct.insert((key, date));
                if let Some(id) = m.get("message-id") {
                    dates.entry(id.to_string()).or_default().insert(date);
                }
                if let Some(parent) = m.get("in-reply-to") {
                    replies.push((parent.to_string(), date));
                    let refs = m.get("references").unwrap_or("");
                    assert!(
                        refs.ends_with(parent),
                        "References must end with the parent"
                    );
                    longest = longest.max(refs.split_whitespace().count());
                }
            }
        }
        assert_eq!(distinct.len() as u64, spec.total_messages());
        assert!(
            longest >= 5,
            "threads should run deep, longest chain {longest}"
        );
        let reused = dates.values().filter(|d| d.len() > 1).count();
        assert_eq!(reused, 1, "exactly one Message-ID is reused in the demo");
        assert!(!replies.is_empty());
        for (parent, date) in replies {
            if let Some(parent_dates) = dates.get(&parent).filter(|d| d.len() == 1) {
                assert!(
                    parent_dates.iter().all(|&p| p < date),
                    "reply before {parent}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn demo_shows_every_kind_of_message() -> Result<()> {
        let Demo { dir: _dir, files } = demo("features")?;
        let mut all = Vec::new();
        for (f, _) in &files {
            all.extend(contents(f)?);
        }
        let text = String::from_utf8_lossy(&all);
        let decoded = String::from_utf8_lossy(&qp_decode(&all)).into_owned();
        for needle in [
            "<script>window.__pwned=1</script>",
            "<img src=x onerror=",
            "href=\"javascript:",
            "Content-Type: text/html",
            "<table",
            "multipart/alternative",
            "multipart/mixed",
            "text/x-log",
            "image/png",
            "application/pdf",
            "filename*0*=UTF-8''",
            "charset=ISO-2022-JP",
            "=?ISO-2022-JP?B?",
            "charset=KOI8-R",
            "charset=\"windows-1251\"",
            "ISO-8859-1",
            "quoted-printable",
            "Content-Transfer-Encoding: base64",
            "Content-Transfer-Encoding: 8bit",
            "=?UTF-8?B?",
            "=?UTF-8?Q?",
            "diff --git a/",
            "\n+++ b/",
            "\n@@ -",
            "#topic",
            "#startmeeting",
            " wrote:\n> ",
            "\n-- \n",
            "Subject: [Operators] Re: [",
            "Subject: RE: ",
            "Subject: AW: ",
            "Subject: Re: ",
            "In-Reply-To: <",
            "Mon Sep 17 00:00:00 2001",
            "_______________________________________________\noperators mailing list",
        ] {
            assert!(
                text.contains(needle) || decoded.contains(needle),
                "demo lacks {needle:?}"
            );
        }
        for (cs, words) in [
            (Koi8r, "С уважением"),
            (Cp1251, "С уважением"),
            (Latin1, "é"),
        ] {
            let bytes = encode_charset(cs, words);
            assert!(
                all.windows(bytes.len()).any(|w| w == bytes),
                "no {words} in charset"
            );
        }
        let no_id = files
            .iter()
            .flat_map(|(_, s)| &s.messages)
            .filter(|m| m.get("message-id").is_none())
            .count();
        assert!(no_id >= 2);
        Ok(())
    }

    #[test]
    fn tiny_and_empty_specs() -> Result<()> {
        let dir = Scratch::new("tiny");
        let empty = SampleSpec {
            weeks: 0,
            ..SampleSpec::demo()
        };
        assert!(write_sample(&dir.0, &empty)?.is_empty());
        let one = SampleSpec {
            weeks: 1,
            messages_per_week: 1,
            ..SampleSpec::demo()
        };
        let files = write_sample(&dir.0, &one)?;
        let copies: usize = files.iter().map(|f| f.messages).sum();
        assert!((1..=3).contains(&copies));
        Ok(())
    }

    #[test]
    fn encoders_match_known_vectors() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(
            encode_charset(Koi8r, "Привет"),
            [0xF0, 0xD2, 0xC9, 0xD7, 0xC5, 0xD4]
        );
        assert_eq!(
            encode_charset(Cp1251, "Привет"),
            [0xCF, 0xF0, 0xE8, 0xE2, 0xE5, 0xF2]
        );
        assert_eq!(
            quoted_printable(&encode_charset(Latin1, "café \n")),
            b"caf=E9=20\n"
        );
        let long = "x".repeat(200);
        let qp = quoted_printable(long.as_bytes());
        assert!(qp.split(|&b| b == b'\n').all(|l| l.len() <= 76));
        assert_eq!(
            encoded_words("José", Utf8, "UTF-8", true),
            "=?UTF-8?Q?Jos=C3=A9?="
        );
        assert!(encoded_words(&"é".repeat(60), Utf8, "UTF-8", false)
            .split(' ')
            .all(|w| w.len() <= 75));
        assert_eq!(
            asctime(SampleSpec::DEFAULT_START + 9 * 3600 + 12 * 60 + 44),
            "Mon May  1 09:12:44 2023"
        );
        assert_eq!(
            rfc2822(SampleSpec::DEFAULT_START, 120, false),
            "Mon, 1 May 2023 02:00:00 +0200"
        );
        assert_eq!(PEOPLE[IVAN].cs as u8, Koi8r as u8);
        assert_eq!(PEOPLE[OLGA].cs as u8, Cp1251 as u8);
        assert_eq!(PEOPLE[TANAKA].lang as u8, Ja as u8);
        assert_eq!(TOPICS[I18N].tag, "[i18n]");
    }
}
