//! The [`Store`]: every group, the index over them, and what a push,
//! a delete or a wipe does to both.

use crate::model::{Label, Labels, MetricType, SeriesLabels};
use crate::wire::exposition;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::*;

pub(crate) const PUSH_TIME: &str = "push_time_seconds";
pub(crate) const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
pub(crate) const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
pub(crate) const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// The store as the web page sees it, detached from the loop.
pub(crate) struct StoreView {
    pub groups: Vec<(GroupKey, Arc<Group>)>,
    /// Every family name, sorted (the page's filter table).
    pub names: Vec<Arc<str>>,
    pub series: usize,
}

/// What a wipe took out of the store, to be dropped where freeing it holds
/// nobody up.
pub(crate) struct Wiped {
    _groups: BTreeMap<GroupKey, Arc<Group>>,
    _families: BTreeMap<Arc<str>, FamilyIndex>,
    _due: std::collections::BTreeSet<(Nanos, GroupKey)>,
}

/// A grouping key: `job` plus the URL's label pairs, sorted by name.
pub(crate) type GroupKey = Arc<[Label]>;

pub(crate) use crate::time::Nanos;

/// The gateway's own metric families, which pushed metrics must stay
/// consistent with (same type, no suffix collisions), and whose HELP text
/// wins over a pushed one.
pub(crate) trait OwnFamilies {
    fn own_family(&self, name: &str) -> Option<(MetricType, &'static str)>;

    /// Whether a pushed family of this name must carry the own family's
    /// HELP. The reference replaces the HELP of pushed families named
    /// like its metrics that exist at start-up, but not of those that only
    /// appear with the first request (its HTTP counters and summaries): a
    /// push of those with another HELP, or none, fails its gathering.
    fn help_checked(&self, _name: &str) -> bool {
        false
    }
}

/// Families a push replaced, handed over by [`Store::apply_keeping`] to be
/// freed off the loop.
pub(crate) struct Replaced {
    _families: Arc<FamilyMap>,
}

/// Series a push must replace before their freeing is handed over.
const FREE_OFF_LOOP_FROM: usize = 10_000;

/// How many pushed families are applied before their list is shrunk:
/// each shrink of a big list is a `mremap`, not a copy, and frees about
/// a megabyte.
const APPLY_SLICE: usize = 16_384;

/// All groups and the index over them.
pub(crate) struct Store {
    pub(super) groups: BTreeMap<GroupKey, Arc<Group>>,
    /// Each group's key by its id: the index names a series' owner by
    /// id, and a refused push names that group (without this, a walk
    /// over every group per refusal).
    pub(super) keys: HashMap<u64, GroupKey>,
    pub(super) families: Families,
    pub(super) next_id: u64,
    pub(super) series_count: usize,
    /// Sample lines stored (see `limits`), kept as series come and go.
    pub(super) samples: usize,
    /// Bytes of pushed series in a text scrape, kept likewise: a scrape
    /// is charged this before it is rendered.
    pub(super) exposed: usize,
    pub(super) deadlines: expiry::Deadlines,
    /// Bumped on every change, so persistence knows when to write.
    pub(super) generation: u64,
    pub(super) interner: Interner,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            groups: BTreeMap::new(),
            keys: HashMap::new(),
            families: Families::default(),
            next_id: 1,
            series_count: 0,
            samples: 0,
            exposed: 0,
            deadlines: expiry::Deadlines::default(),
            generation: 0,
            interner: Interner::default(),
        }
    }

    pub(crate) fn groups(&self) -> impl Iterator<Item = (&GroupKey, &Group)> {
        self.groups.iter().map(|(k, g)| (k, &**g))
    }

    /// Every group, shared: O(groups) pointer copies. The snapshot writer
    /// renders these on its own thread while the loop goes on.
    pub(crate) fn snapshot(&self) -> Vec<(GroupKey, Arc<Group>)> {
        self.groups
            .iter()
            .map(|(k, g)| (k.clone(), Arc::clone(g)))
            .collect()
    }

    /// What the web page reads, shared: the groups (as for a snapshot), the
    /// family names and the series count, in O(groups + names), so the page
    /// renders off the loop.
    pub(crate) fn view(&self) -> StoreView {
        StoreView {
            groups: self.snapshot(),
            names: self.families.keys().cloned().collect(),
            series: self.series_count,
        }
    }

    /// Changes so far; compare two readings to see whether anything changed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The group with exactly this grouping key.
    pub(crate) fn group(&self, key: &[Label]) -> Option<&Group> {
        self.groups.get(key).map(|g| &**g)
    }

    /// The group of `key` as a shared snapshot, to read off the loop.
    pub(crate) fn group_shared(&self, key: &[Label]) -> Option<Arc<Group>> {
        self.groups.get(key).map(Arc::clone)
    }

    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The bytes the pushed series take in a text scrape (without the
    /// headers, push-time gauges and the gateway's own metrics).
    pub(crate) fn exposed_bytes(&self) -> usize {
        self.exposed
    }

    /// Pushed series, not counting the push-time gauges.
    pub(crate) fn series_count(&self) -> usize {
        self.series_count
    }

    /// Applies a checked push. `now` becomes the group's push time.
    pub(crate) fn apply(&mut self, push: PreparedPush, now: Nanos) {
        drop(self.apply_keeping(push, now));
    }

    /// [`Store::apply`], handing back the families the push replaced when
    /// they hold many series, for the caller to free off the loop (freeing
    /// 400,000 series was a fifth of such a PUT's time on the loop). Their
    /// labels stay interned until a later sweep finds them unused.
    pub(crate) fn apply_keeping(&mut self, push: PreparedPush, now: Nanos) -> Option<Replaced> {
        let key = push.key.clone();
        let ttl = push.ttl;
        let gid = self.ensure_group(&key, now, Some(&push.key_text));
        self.generation += 1;
        let entry = self.groups.get_mut(&key)?;
        // Copy-on-write when a reader (a scrape, a snapshot write) shares
        // the group: its fields and, below, the map's pointers, never a
        // family.
        let group = Arc::make_mut(entry);
        group.push_time = Some(now);
        if ttl.is_some() {
            group.ttl = ttl;
        }
        let shared = Arc::clone(&group.time_labels);
        let mut families = std::mem::take(&mut group.families);
        // A PUT replaces every family: the old map is taken whole, not
        // copied first when shared (the reader frees it, off the loop).
        let mut removed: Arc<FamilyMap> = if push.replace {
            std::mem::take(&mut families)
        } else {
            let families = Arc::make_mut(&mut families);
            let pushed = push.families.iter();
            Arc::new(
                pushed
                    .filter_map(|f| families.remove_entry(&*f.name))
                    .collect(),
            )
        };
        let mut removed_series = 0;
        for (name, fam) in removed.iter() {
            self.families
                .unindex(name, fam, (gid, &shared[..]), self.generation);
            removed_series += fam.metrics.len();
            self.series_count -= fam.metrics.len();
            self.samples -= limits::stored_samples(fam);
            self.exposed -= fam.exposed;
        }
        let intern = !push.labels_shared;
        let map = Arc::make_mut(&mut families);
        // Taken from the end a slice at a time, the list shrunk after
        // each: a push of hundreds of thousands of families gives back
        // their list (48 bytes a family) as they go into the store, not
        // after, at the store's own peak. Their names are distinct and
        // sorted (`prepare_push`); within a slice they go in in the order
        // that fills the B-trees' nodes (`fill`).
        let mut pushed = push.families;
        while !pushed.is_empty() {
            let from = pushed.len().saturating_sub(APPLY_SLICE);
            let slice = pushed.split_off(from);
            pushed.shrink_to_fit();
            fill::in_fill_order(slice, |fam| {
                let hashes = &push.hashes[fam.first_hash()..][..fam.metrics.len()];
                let (name, stored) = self.index_family(fam, hashes, gid, intern, now);
                map.insert(name, stored);
            });
        }
        for name in removed.keys() {
            self.families.drop_if_unused(name);
        }
        // Unshared since the copy above: no second copy.
        if let Some(entry) = self.groups.get_mut(&key) {
            Arc::make_mut(entry).families = families;
        }
        // Freed (when no reader holds them) before the sweep, so that
        // their labels no longer count as in use.
        let replaced = if removed_series >= FREE_OFF_LOOP_FROM {
            Some(Replaced {
                _families: std::mem::take(&mut removed),
            })
        } else {
            None
        };
        drop(removed);
        self.interner.sweep_if_due();
        self.reschedule(&key);
        replaced
    }

    /// Adds one prepared family of group `gid`, whose series have these
    /// `hashes`, to the index and the counts; what the group stores, under
    /// the index's name.
    fn index_family(
        &mut self,
        fam: PreparedFamily,
        hashes: &[u64],
        gid: u64,
        intern: bool,
        now: Nanos,
    ) -> (Arc<str>, Arc<StoredFamily>) {
        let (name, idx) = self.families.changing_shared(&fam.name);
        idx.version = self.generation;
        idx.exposed += fam.exposed;
        idx.type_counts[type_slot(fam.metric_type)] += 1;
        idx.add_help(fam.help.as_deref());
        idx.series.reserve(hashes.len());
        for &h in hashes {
            idx.series.insert(h, gid);
        }
        self.series_count += fam.metrics.len();
        self.samples += limits::stored_samples(&fam);
        self.exposed += fam.exposed;
        let pushed_at = fam.pushed_at.unwrap_or(now);
        // Built off the loop and not shared yet: completed in place.
        let mut stored = fam.family;
        let family = Arc::make_mut(&mut stored);
        family.pushed_at = pushed_at;
        if intern {
            for m in &mut family.metrics {
                self.interner.labels(&mut m.labels);
            }
        }
        (name, stored)
    }

    /// Records a rejected push: the group's failure time becomes `now`,
    /// creating the group if needed (as the reference does), unless that
    /// would make its push-time series collide with another group's.
    pub(crate) fn record_failure(&mut self, key: &GroupKey, now: Nanos) {
        if !self.groups.contains_key(key) && self.check_group_collision(key).is_err() {
            return;
        }
        self.ensure_group(key, now, None);
        self.generation += 1;
        if let Some(group) = self.groups.get_mut(key).map(Arc::make_mut) {
            group.failure_time = Some(now);
        }
        // A new group is due from its creation; a failure never refreshes.
        self.reschedule(key);
    }

    /// Puts back a group read from a snapshot, with its recorded times.
    /// The same consistency rules as for a push apply, so a hand-edited
    /// snapshot cannot smuggle an inconsistent state in.
    pub(crate) fn restore_group(
        &mut self,
        push: PreparedPush,
        push_time: Option<Nanos>,
        failure_time: Option<Nanos>,
        own: &dyn OwnFamilies,
    ) -> Result<(), PushError> {
        self.check(&push, own)?;
        let key = push.key.clone();
        let created = push_time.or(failure_time).unwrap_or(0);
        self.apply(push, created);
        if let Some(group) = self.groups.get_mut(&key).map(Arc::make_mut) {
            group.push_time = push_time;
            group.failure_time = failure_time;
        }
        self.reschedule(&key);
        Ok(())
    }

    /// Makes labels already in the store (a restore's, which skipped the
    /// interner) the ones later pushes share.
    pub(crate) fn adopt_labels(&mut self, labels: impl Iterator<Item = Label>) {
        for l in labels {
            self.interner.adopt(l);
        }
    }

    /// Deletes exactly the group with this key; true if it existed.
    pub(crate) fn delete(&mut self, key: &GroupKey) -> bool {
        self.take(key).is_some()
    }

    /// Deletes exactly the group with this key and hands it over: a mass
    /// delete frees its groups off the loop.
    pub(crate) fn take(&mut self, key: &GroupKey) -> Option<Arc<Group>> {
        let group = self.groups.remove(key)?;
        self.keys.remove(&group.id);
        self.unschedule(key, group.deadline);
        self.generation += 1;
        for (name, fam) in group.families.iter() {
            let owner = (group.id, group.time_label_slice());
            self.families.unindex(name, fam, owner, self.generation);
            self.families.drop_if_unused(name);
            self.series_count -= fam.metrics.len();
            self.samples -= limits::stored_samples(fam);
            self.exposed -= fam.exposed;
        }
        let h = series_hash(&[], &group.time_labels);
        for name in [PUSH_TIME, PUSH_FAILURE_TIME] {
            self.families.remove_gauge(name, h, group.id);
        }
        Some(group)
    }

    /// Deletes every group; returns how many there were and what they
    /// held, for the caller to free off the loop (a million series take a
    /// while to free).
    pub(crate) fn wipe(&mut self) -> (usize, Wiped) {
        let n = self.groups.len();
        if n > 0 {
            self.generation += 1;
        }
        let wiped = Wiped {
            _groups: std::mem::take(&mut self.groups),
            _families: self.families.take(),
            _due: std::mem::take(&mut self.deadlines.due),
        };
        self.keys.clear();
        self.series_count = 0;
        self.samples = 0;
        self.exposed = 0;
        (n, wiped)
    }

    /// The id of the group with this key, created if needed with the
    /// rendered labels of a prepared push (rendered here otherwise).
    fn ensure_group(&mut self, key: &GroupKey, now: Nanos, text: Option<&Arc<[u8]>>) -> u64 {
        if let Some(g) = self.groups.get(key) {
            return g.id;
        }
        let id = self.next_id;
        self.next_id += 1;
        let labels = time_labels(key);
        let key_text = match text {
            Some(t) => Arc::clone(t),
            None => Arc::clone(crate::wire::template::KeyText::new(&labels).text()),
        };
        self.groups.insert(
            key.clone(),
            Arc::new(Group {
                id,
                key_text,
                time_labels: labels.clone(),
                families: Arc::default(),
                push_time: None,
                failure_time: None,
                created: now,
                ttl: None,
                deadline: None,
            }),
        );
        self.keys.insert(id, key.clone());
        for (name, help) in [
            (PUSH_TIME, PUSH_TIME_HELP),
            (PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP),
        ] {
            let (_, idx) = self.families.changing(name);
            if idx.helps.is_empty() {
                idx.helps.add(help);
            }
            idx.type_counts[type_slot(MetricType::Gauge)] += 1;
            idx.series.insert(series_hash(&[], &labels), id);
        }
        id
    }

    /// Every family's name, HELP and type in name order, for a scrape;
    /// `own` supplies the HELP text of names the gateway itself exposes.
    /// Kept between scrapes and shared in pieces: O(names / 512) pointer
    /// copies and O(changed names * 512) updates; never O(series).
    pub(crate) fn family_metas(&mut self, own: &dyn OwnFamilies) -> FamilyMetas {
        self.families.metas(own)
    }

    /// Problems that make the store inconsistent; only possible when pushes
    /// skip the consistency check. The reference fails scrapes in that state.
    pub(crate) fn inconsistencies(&self, own: &dyn OwnFamilies) -> Vec<String> {
        let mut out = Vec::new();
        let mut lookup = SeriesLookup::new(self);
        for (name, idx) in self.families.iter() {
            let types: Vec<MetricType> = (0..SLOT_TYPES.len())
                .filter(|&i| idx.type_counts[i] > 0)
                .map(|i| SLOT_TYPES[i])
                .collect();
            if types.len() > 1 {
                out.push(format!(
                    "metric {name:?} is pushed with several types: {types:?}"
                ));
            }
            if let Some((t, _)) = own.own_family(name)
                && types.iter().any(|x| *x != t)
            {
                out.push(format!(
                    "metric {name:?} has a type other than the gateway's own {t}"
                ));
            }
            // One line per owner beyond the first, as before; confirmed
            // by the labels (the index holds hashes), looked up in maps
            // built once per scrape, not by a walk per shared series.
            let mut shared: Vec<SeriesKey> = Vec::new();
            for (h, extra) in idx.series.shared() {
                let Some(first) = idx.series.owner(h) else {
                    continue;
                };
                let labels = lookup.labels(extra, name, h);
                if labels.is_some() && labels == lookup.labels(first, name, h) {
                    shared.extend(labels.map(|l| SeriesKey(l.into())));
                }
            }
            shared.sort_unstable();
            for k in shared {
                out.push(format!(
                    "metric {name:?} with labels {} was pushed by more than one group",
                    show_labels(&k.0)
                ));
            }
        }
        out
    }
}

impl Store {
    /// The group with this id, for the rare paths that follow the index
    /// from a series to its owner (conflicts): O(log groups).
    pub(super) fn group_by_id(&self, id: u64) -> Option<(&GroupKey, &Group)> {
        let key = self.keys.get(&id)?;
        self.groups.get_key_value(key).map(|(k, g)| (k, &**g))
    }

    /// Whether group `gid` has a series of family `name` with exactly
    /// these labels (all of them, the group's merged in): the push-time
    /// gauges for those two names. The family's series are sorted by
    /// [`stored_order`], so this is a binary search, O(log series): a
    /// refused push costs what it sent, not what the other group holds.
    pub(super) fn has_series(&self, gid: u64, name: &str, labels: &[Label]) -> bool {
        let Some((_, group)) = self.group_by_id(gid) else {
            return false;
        };
        let shared = &group.time_labels;
        if name == PUSH_TIME || name == PUSH_FAILURE_TIME {
            return shared[..] == *labels;
        }
        group.families.get(name).is_some_and(|fam| {
            let order = |m: &crate::model::Metric| stored_order_to(&m.labels, shared, labels);
            fam.metrics.binary_search_by(order).is_ok()
        })
    }
}

/// The series of groups by id and hash, for confirming many index hits
/// at once (the inconsistencies of an unchecked store): each group's
/// family is hashed once, when first asked about.
struct SeriesLookup<'s> {
    store: &'s Store,
    groups: Option<HashMap<u64, &'s Group>>,
    series: HashMap<(u64, &'s str), HashMap<u64, &'s crate::model::Metric>>,
}

impl<'s> SeriesLookup<'s> {
    fn new(store: &'s Store) -> SeriesLookup<'s> {
        SeriesLookup {
            store,
            groups: None,
            series: HashMap::new(),
        }
    }

    /// The labels of group `gid`'s series of family `name` whose
    /// [`series_hash`] is `h`, if it has one (the push-time gauges' for
    /// those two names), in O(1) once built.
    fn labels(&mut self, gid: u64, name: &'s str, h: u64) -> Option<SeriesLabels> {
        let store = self.store;
        let groups = self
            .groups
            .get_or_insert_with(|| store.groups.values().map(|g| (g.id, &**g)).collect());
        let group = *groups.get(&gid)?;
        let shared = &group.time_labels;
        if name == PUSH_TIME || name == PUSH_FAILURE_TIME {
            return (series_hash(&[], shared) == h).then(|| shared.to_vec().into());
        }
        let by_hash = self.series.entry((gid, name)).or_insert_with(|| {
            let metrics = group.families.get(name).map(|f| &f.metrics[..]);
            let metrics = metrics.unwrap_or_default().iter();
            metrics
                .map(|m| (series_hash(&m.labels, shared), m))
                .collect()
        });
        by_hash.get(&h).map(|m| group.series_labels(m))
    }
}

pub(super) fn time_labels(key: &[Label]) -> Labels {
    group_labels(key)
}

/// A group's push-time or failure-time gauge line, rendered when scraped:
/// the times change on every push, the rest of the group does not.
pub(crate) fn render_time(out: &mut Vec<u8>, name: &str, labels: &Labels, t: Option<Nanos>) {
    let secs = t.map(|n| n as f64 / 1e9).unwrap_or(0.0);
    exposition::write_gauge(out, name, labels, secs);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the gateway's own families (the telemetry module's),
    /// so the store is tested on its own: one gauge.
    struct Own;

    impl OwnFamilies for Own {
        fn own_family(&self, name: &str) -> Option<(MetricType, &'static str)> {
            (name == "process_open_fds").then_some((MetricType::Gauge, "Open descriptors."))
        }
    }

    fn push(store: &mut Store, key: &[(&str, &str)], body: &str) -> Result<(), PushError> {
        let mut key: Vec<Label> = key.iter().map(|(n, v)| Label::new(n, v)).collect();
        key.sort();
        let fams = crate::wire::text_format::parse(body.as_bytes()).expect("test body parses");
        let p = prepare_push(key.into(), fams, true)?;
        store.check(&p, &Own)?;
        store.apply(p, 1);
        Ok(())
    }

    /// A PUT to a group a reader shares (a scrape in flight) leaves the
    /// reader's copy whole and the store and its index exactly as after
    /// an unshared PUT.
    #[test]
    fn replacing_a_shared_group_keeps_the_readers_copy() {
        let mut s = Store::new();
        push(&mut s, &[("job", "a")], "x{instance=\"i\"} 1\ny 2\n").unwrap();
        push(&mut s, &[("job", "b")], "z 3\n").unwrap();
        // Group a's x is the series another group, {instance="i",job="a"},
        // would push as x: refused while a has it.
        assert!(push(&mut s, &[("job", "a"), ("instance", "i")], "x 1\n").is_err());
        let reader = s.snapshot();
        push(&mut s, &[("job", "a")], "w 4\n").unwrap();
        let (_, old) = &reader[0];
        assert_eq!(
            old.families.keys().map(|k| &**k).collect::<Vec<_>>(),
            ["x", "y"]
        );
        let now = s.group(&[Label::new("job", "a")]).unwrap();
        assert_eq!(now.families.keys().map(|k| &**k).collect::<Vec<_>>(), ["w"]);
        assert_eq!((s.series_count(), s.sample_count()), (2, 2));
        let names: Vec<String> = s
            .family_metas(&Own)
            .iter()
            .map(|m| m.name.to_string())
            .collect();
        assert_eq!(
            names,
            ["push_failure_time_seconds", "push_time_seconds", "w", "z"]
        );
        // The old series are gone from the index: the other group may push x.
        push(&mut s, &[("job", "a"), ("instance", "i")], "x 1\n").unwrap();
    }

    /// The scrapes' list of families, kept between scrapes and patched,
    /// always equals one built afresh from the index, whatever changed
    /// and whether or not a reader still held the last list.
    #[test]
    fn kept_family_list_matches_the_index() {
        type Row = (String, Option<String>, MetricType, u64, usize);
        fn fresh(s: &Store) -> Vec<Row> {
            let rows = s.families.iter().map(|(name, idx)| {
                let (t, help) = match Own.own_family(name) {
                    Some((t, h)) => (t, Some(h.to_string())),
                    None => (idx.metric_type(), idx.help().map(|h| h.to_string())),
                };
                (name.to_string(), help, t, idx.version, idx.exposed)
            });
            rows.collect()
        }
        fn kept(s: &mut Store) -> Vec<Row> {
            let metas = s.family_metas(&Own);
            let rows = metas.iter().map(|m| {
                let help = m.help.as_ref().map(|h| h.to_string());
                (
                    m.name.to_string(),
                    help,
                    m.metric_type,
                    m.version,
                    m.exposed,
                )
            });
            rows.collect()
        }
        let mut s = Store::new();
        let mut held = Vec::new();
        let steps: [(&[(&str, &str)], &str); 7] = [
            (&[("job", "a")], "# HELP m one\nm 1\nn 1\n"),
            (&[("job", "a")], "# HELP m two\nm{x=\"1\"} 1\nn 1\n"),
            (&[("job", "b")], "# HELP m three\nm{x=\"2\"} 1\n"),
            (&[("job", "a")], "n 2\n"),
            (
                &[("job", "a")],
                "# TYPE process_open_fds gauge\nprocess_open_fds 3\n",
            ),
            (&[("job", "c")], "o 1\n"),
            (&[("job", "b")], "# HELP m four\nm{x=\"2\"} 2\n"),
        ];
        for (i, (key, body)) in steps.iter().enumerate() {
            // POSTs, as the loop applies them (a PUT would replace).
            let mut k: Vec<Label> = key.iter().map(|(n, v)| Label::new(n, v)).collect();
            k.sort();
            let fams = crate::wire::text_format::parse(body.as_bytes()).unwrap();
            let p = prepare_push(k.into(), fams, false).unwrap();
            s.check(&p, &Own).unwrap();
            s.apply(p, 1);
            assert_eq!(kept(&mut s), fresh(&s), "after step {i}");
            if i % 3 == 1 {
                held.push(s.family_metas(&Own));
            }
        }
        s.delete(&Arc::from(vec![Label::new("job", "b")]));
        assert_eq!(kept(&mut s), fresh(&s), "after a delete");
        s.record_failure(&Arc::from(vec![Label::new("job", "d")]), 2);
        assert_eq!(kept(&mut s), fresh(&s), "after a failure");
        s.wipe();
        assert_eq!(kept(&mut s), fresh(&s), "after a wipe");
        assert!(held.iter().all(|l| l.len() > 0), "readers keep theirs");
    }

    #[test]
    fn consistency_rules() {
        let mut s = Store::new();
        push(
            &mut s,
            &[("job", "a")],
            "# TYPE m counter\nm 1\n# TYPE s summary\ns_sum 1\ns_count 1\n",
        )
        .unwrap();
        let e = push(&mut s, &[("job", "b")], "# TYPE m gauge\nm 1\n").unwrap_err();
        assert!(matches!(e, PushError::TypeMismatch { .. }), "{e}");
        let e = push(&mut s, &[("job", "b")], "s_count 3\n").unwrap_err();
        assert!(matches!(e, PushError::SuffixCollision { .. }), "{e}");
        push(
            &mut s,
            &[("job", "a")],
            "# TYPE m counter\nm{x=\"1\"} 1\n# TYPE s summary\ns_sum 1\ns_count 1\n",
        )
        .unwrap();
        let e = push(
            &mut s,
            &[("job", "a"), ("x", "1")],
            "# TYPE m counter\nm 1\n",
        )
        .unwrap_err();
        assert!(matches!(e, PushError::SeriesInOtherGroup { .. }), "{e}");
        let e = push(&mut s, &[("job", "a"), ("instance", "")], "x 1\n").unwrap_err();
        assert!(matches!(e, PushError::GroupCollision { .. }), "{e}");
        let e = push(
            &mut s,
            &[("job", "b")],
            "# TYPE process_open_fds counter\nprocess_open_fds 1\n",
        )
        .unwrap_err();
        assert!(
            matches!(e, PushError::TypeMismatch { .. }),
            "own metric types count: {e}"
        );
        // Replacing its own group is no conflict with itself.
        push(&mut s, &[("job", "a")], "# TYPE m gauge\nm 2\n").unwrap();
        assert_eq!(s.series_count(), 1);
        assert!(s.delete(&Arc::from(vec![Label::new("job", "a")])));
        assert_eq!(s.series_count(), 0);
        assert_eq!(s.family_metas(&Own).len(), 0, "index emptied");
    }

    #[test]
    fn equal_label_strings_are_shared_and_swept() {
        let mut s = Store::new();
        push(&mut s, &[("job", "a")], "m{region=\"eu-west-1\"} 1\n").unwrap();
        push(&mut s, &[("job", "b")], "m{region=\"eu-west-1\"} 1\n").unwrap();
        let values: Vec<Label> = s
            .groups()
            .map(|(_, g)| {
                g.families["m"].metrics[0]
                    .labels
                    .iter()
                    .find(|l| &*l.name == "region")
                    .unwrap()
                    .clone()
            })
            .collect();
        assert!(values[0].same_pair(&values[1]), "one pair for both");
        assert!(
            Arc::ptr_eq(&values[0].name, &values[1].name),
            "one allocation for both"
        );
        drop(values);
        for i in 0..3000 {
            push(
                &mut s,
                &[("job", "c")],
                &format!("m{{region=\"r{i}\"}} 1\n"),
            )
            .unwrap();
        }
        assert!(
            s.interner.names.len() < 2100 && s.interner.pairs.len() < 2100,
            "unused names and pairs are swept: {} / {}",
            s.interner.names.len(),
            s.interner.pairs.len()
        );
    }

    /// Labels a restore put in past the interner are the ones later
    /// pushes share once adopted.
    #[test]
    fn adopted_labels_are_shared_with_later_pushes() {
        let mut s = Store::new();
        let restored = Label::new("region", "eu-west-1");
        s.adopt_labels([restored.clone()].into_iter());
        push(&mut s, &[("job", "a")], "m{region=\"eu-west-1\"} 1\n").unwrap();
        let (_, g) = s.groups().next().unwrap();
        let label = g.families["m"].metrics[0]
            .labels
            .iter()
            .find(|l| &*l.name == "region")
            .unwrap();
        assert!(label.same_pair(&restored));
    }
}
