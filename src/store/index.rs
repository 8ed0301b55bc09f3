//! The index over all groups: per metric name, the types, HELP texts and
//! series every group contributes, kept up to date incrementally.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::num::NonZeroU64;
use std::sync::{Arc, OnceLock};

use super::*;
use crate::model::{Label, MetricType, merged};

/// Index entry for one metric name across all groups.
#[derive(Debug, Default)]
pub(super) struct FamilyIndex {
    /// How many groups contribute this family, per type (indexed by
    /// `type_slot`). With the consistency check on, one slot at most is
    /// non-zero.
    pub(super) type_counts: TypeCounts,
    /// HELP texts pushed for this name and how many groups pushed each; the
    /// most recently pushed one is exposed. Families pushed without HELP
    /// are not counted: they never decide what is exposed, and most big
    /// pushes have none.
    pub(super) helps: Helps,
    /// Every series with its owning group, for the consistency check (a
    /// series may not be in two groups). Its lines live with the group.
    pub(super) series: Owners,
    /// The store's generation when any group's part of this family last
    /// changed: a scrape's cached rendering of the family is good while
    /// this stays the same.
    pub(super) version: u64,
    /// The bytes its series take in a text scrape, over all groups.
    pub(super) exposed: usize,
}

/// A series' identity in the index: a 64-bit hash of its labels, keyed
/// at random per process so that no client can aim collisions.
///
/// The index keeps this hash, not the labels (8 bytes a series, not a
/// 16-byte label pointer), and a hit against another group is confirmed
/// against that group's own series before a push is refused (see
/// `Check::no_series_in_other_group`). Two distinct series of one family
/// sharing a hash (about one chance in 10^7 with a million of them) can
/// therefore never refuse a good push; at worst one conflicting push
/// after such a pair's removal goes unnoticed, as with the check off.
///
/// A stored series is hashed with its group's labels ([`merged`]), so
/// that it hashes as the same labels written out would.
pub(super) fn series_hash(own: &[Label], shared: &[Label]) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let mut h = KEYS.get_or_init(RandomState::new).build_hasher();
    let labels = merged(own, shared);
    h.write_usize(labels.count_exact());
    for l in labels {
        l.hash(&mut h);
    }
    h.finish()
}

/// The identity hasher for keys that already are hashes.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Which group owns each series of a family, by [`series_hash`]: a hash
/// map, so a push or a restore of a million series costs a hash per
/// series, not a walk down a tree of label comparisons. With the
/// consistency check on, a series has one owner; pushes that skip the
/// check can give it more, kept in [`OwnerMaps::more`] and reported by
/// `Store::inconsistencies`.
///
/// Most families of most groups hold one series: that one is kept
/// inline, without a map's allocation. Every family's index entry has
/// one of these, so anything more sits behind one box, and none is no
/// box: 16 bytes in all (group ids start at 1, and the zero the inline
/// id never is tells the two apart), where a variant of its own for none
/// took 24.
#[derive(Debug)]
pub(super) enum Owners {
    /// One series (hash, group), with no other owner.
    One(u64, NonZeroU64),
    /// Any other number: none without the box.
    Maps(Option<Box<OwnerMaps>>),
}

impl Default for Owners {
    fn default() -> Self {
        Owners::Maps(None)
    }
}

type HashToGroup = HashMap<u64, u64, BuildHasherDefault<Prehashed>>;

/// The owners of a family with more than one series, or a shared one.
#[derive(Debug, Default)]
pub(super) struct OwnerMaps {
    /// The first owner of each series.
    first: HashToGroup,
    /// (hash, group) of each owner beyond the first: empty unless pushes
    /// skipped the check, and ordered, so that a push of many shared
    /// series stays O(n log n).
    more: BTreeSet<(u64, u64)>,
}

impl Owners {
    /// Forgets every owner: the family's only group took it out whole.
    fn clear(&mut self) {
        *self = Owners::default();
    }

    /// The maps, made from what is inline if need be, with room for `n`
    /// more first owners.
    fn maps(&mut self, n: usize) -> &mut OwnerMaps {
        if !matches!(self, Owners::Maps(Some(_))) {
            let mut maps = Box::<OwnerMaps>::default();
            maps.first.reserve(n + 1);
            if let Owners::One(k, g) = *self {
                maps.first.insert(k, g.get());
            }
            *self = Owners::Maps(Some(maps));
        }
        match self {
            Owners::Maps(Some(m)) => m,
            _ => unreachable!("just made"),
        }
    }

    /// Room for `n` more series, so that a big family is not rehashed
    /// again and again as it is indexed.
    pub(super) fn reserve(&mut self, n: usize) {
        if n >= 2 {
            self.maps(n).first.reserve(n);
        }
    }

    /// The first owner of a series with this hash.
    pub(super) fn owner(&self, key: u64) -> Option<u64> {
        match self {
            Owners::One(k, g) => (*k == key).then_some(g.get()),
            Owners::Maps(Some(m)) => m.first.get(&key).copied(),
            Owners::Maps(None) => None,
        }
    }

    /// Sets the first owner of `key`, whether it had one or not.
    fn set_first(&mut self, key: u64, gid: u64) {
        match (&mut *self, NonZeroU64::new(gid)) {
            (Owners::Maps(None), Some(g)) => *self = Owners::One(key, g),
            (Owners::One(k, g), Some(new)) if *k == key => *g = new,
            _ => {
                self.maps(1).first.insert(key, gid);
            }
        }
    }

    pub(super) fn insert(&mut self, key: u64, gid: u64) {
        match self.owner(key) {
            None => self.set_first(key, gid),
            Some(owner) if owner != gid => {
                self.maps(0).more.insert((key, gid));
            }
            Some(_) => {}
        }
    }

    pub(super) fn remove(&mut self, key: u64, gid: u64) {
        if self.more_remove(key, gid) {
            return;
        }
        if self.owner(key) == Some(gid) {
            let next = self.extra_owners(key).next();
            match next {
                // Another group still has it: it becomes the owner.
                Some(g) => {
                    self.more_remove(key, g);
                    self.set_first(key, g);
                }
                None => match self {
                    Owners::One(..) => self.clear(),
                    Owners::Maps(Some(m)) => {
                        m.first.remove(&key);
                    }
                    Owners::Maps(None) => {}
                },
            }
        }
    }

    /// Removes an extra owner; false if `gid` was not one of `key`.
    fn more_remove(&mut self, key: u64, gid: u64) -> bool {
        match self {
            Owners::Maps(Some(m)) => m.more.remove(&(key, gid)),
            _ => false,
        }
    }

    /// The extra owners of every series (empty unless pushes skipped the
    /// check).
    fn more(&self) -> impl Iterator<Item = &(u64, u64)> + '_ {
        match self {
            Owners::Maps(Some(m)) => Some(&m.more),
            _ => None,
        }
        .into_iter()
        .flatten()
    }

    /// The owners of `key` beyond the first.
    fn extra_owners(&self, key: u64) -> impl Iterator<Item = u64> + '_ {
        let more = match self {
            Owners::Maps(Some(m)) => Some(m.more.range((key, 0)..=(key, u64::MAX))),
            _ => None,
        };
        more.into_iter().flatten().map(|(_, g)| *g)
    }

    /// Every group other than `gid` that has a series with this hash:
    /// candidates, to be confirmed against their labels.
    pub(super) fn other_owners(
        &self,
        key: u64,
        gid: Option<u64>,
    ) -> impl Iterator<Item = u64> + '_ {
        let first = self.owner(key);
        first
            .into_iter()
            .chain(self.extra_owners(key))
            .filter(move |g| Some(*g) != gid)
    }

    /// (hash, extra owner) of series with more than one owner (unchecked
    /// pushes only).
    pub(super) fn shared(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.more().copied()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        match self {
            Owners::One(..) => false,
            Owners::Maps(Some(m)) => m.first.is_empty() && m.more.is_empty(),
            Owners::Maps(None) => true,
        }
    }
}

pub(super) fn type_slot(t: MetricType) -> usize {
    t.number()
}

pub(super) const SLOT_TYPES: [MetricType; 6] = MetricType::ALL;

/// How many groups push a family as each type, indexed by `type_slot`.
///
/// Every family's index entry has one, and all but inconsistent stores
/// (pushes that skipped the check) give a family one type: that type and
/// its count are kept inline (16 bytes, not the 24 of all six counts); a
/// second type moves the counts to a box of their own.
#[derive(Debug)]
pub(super) enum TypeCounts {
    /// `n` groups, all with the type of `slot`.
    One {
        slot: u8,
        n: u32,
    },
    Mixed(Box<[u32; 6]>),
}

impl Default for TypeCounts {
    fn default() -> Self {
        TypeCounts::One { slot: 0, n: 0 }
    }
}

impl TypeCounts {
    /// All six counts, by slot.
    pub(super) fn to_array(&self) -> [u32; 6] {
        match self {
            TypeCounts::One { slot, n } => {
                let mut a = [0; 6];
                a[usize::from(*slot)] = *n;
                a
            }
            TypeCounts::Mixed(a) => **a,
        }
    }
}

impl std::ops::Index<usize> for TypeCounts {
    type Output = u32;

    fn index(&self, slot: usize) -> &u32 {
        match self {
            TypeCounts::One { slot: s, n } if usize::from(*s) == slot => n,
            TypeCounts::One { .. } => &0,
            TypeCounts::Mixed(a) => &a[slot],
        }
    }
}

impl std::ops::IndexMut<usize> for TypeCounts {
    /// The count of `slot`, to change: a zero count takes the slot over,
    /// a second type with groups goes to [`TypeCounts::Mixed`].
    fn index_mut(&mut self, slot: usize) -> &mut u32 {
        if let TypeCounts::One { slot: s, n } = self
            && usize::from(*s) != slot
        {
            if *n == 0 {
                *s = u8::try_from(slot).expect("a type slot");
            } else {
                *self = TypeCounts::Mixed(Box::new(self.to_array()));
            }
        }
        match self {
            TypeCounts::One { n, .. } => n,
            TypeCounts::Mixed(a) => &mut a[slot],
        }
    }
}

impl FamilyIndex {
    pub(super) fn groups(&self) -> u32 {
        self.type_counts.to_array().iter().sum()
    }

    /// The type exposed: the most common one (the only one when consistent).
    pub(super) fn metric_type(&self) -> MetricType {
        let mut best = 0;
        for i in 1..SLOT_TYPES.len() {
            if self.type_counts[i] > self.type_counts[best] {
                best = i;
            }
        }
        SLOT_TYPES[best]
    }

    pub(super) fn help(&self) -> Option<&Arc<str>> {
        self.helps.latest()
    }

    pub(super) fn add_help(&mut self, help: Option<&str>) {
        if let Some(help) = help {
            self.helps.add(help);
        }
    }

    pub(super) fn remove_help(&mut self, help: Option<&str>) {
        if let Some(help) = help {
            self.helps.remove(help);
        }
    }
}

/// Up to this many distinct HELP texts of one name are kept in a list;
/// more (one per group, pushed on purpose) go to maps, so that a push
/// costs a lookup per family, not a scan of every group's text.
const FEW_HELPS: usize = 8;

/// The HELP texts of one name with how many groups pushed each, the most
/// recent exposed.
///
/// Behind one thin pointer, absent when no group pushed a HELP text:
/// most big pushes have none, and every family's index entry has one of
/// these (8 bytes, not 24).
#[derive(Debug, Default)]
pub(super) struct Helps(Option<Box<HelpTexts>>);

/// The texts of a family that has some (see [`Helps`]).
#[derive(Debug)]
enum HelpTexts {
    /// Oldest first. `Arc`s, so that a scrape's list of families
    /// ([`FamilyMeta`]) shares the text instead of copying it.
    Few(Vec<(Arc<str>, u32)>),
    Many(Box<ManyHelps>),
}

#[derive(Debug, Default)]
pub(super) struct ManyHelps {
    /// Each text's count and the sequence number of its latest push.
    by_text: HashMap<Arc<str>, (u32, u64)>,
    /// The texts by the sequence number of their latest push.
    by_seq: BTreeMap<u64, Arc<str>>,
    next: u64,
}

impl Helps {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The most recently pushed text.
    fn latest(&self) -> Option<&Arc<str>> {
        self.0.as_ref().and_then(|t| t.latest())
    }

    /// One more group pushed `help`: it becomes the latest.
    pub(super) fn add(&mut self, help: &str) {
        self.0
            .get_or_insert_with(|| Box::new(HelpTexts::Few(Vec::new())))
            .add(help);
    }

    /// One group less has `help`; the texts go when none is left.
    fn remove(&mut self, help: &str) {
        if let Some(t) = &mut self.0 {
            t.remove(help);
            if t.is_empty() {
                self.0 = None;
            }
        }
    }
}

impl HelpTexts {
    fn is_empty(&self) -> bool {
        match self {
            HelpTexts::Few(v) => v.is_empty(),
            HelpTexts::Many(m) => m.by_text.is_empty(),
        }
    }

    fn latest(&self) -> Option<&Arc<str>> {
        match self {
            HelpTexts::Few(v) => v.last().map(|(h, _)| h),
            HelpTexts::Many(m) => m.by_seq.last_key_value().map(|(_, h)| h),
        }
    }

    fn add(&mut self, help: &str) {
        match self {
            HelpTexts::Few(v) => {
                if let Some(i) = v.iter().position(|(h, _)| &**h == help) {
                    let mut e = v.remove(i);
                    e.1 += 1;
                    v.push(e);
                } else if v.len() < FEW_HELPS {
                    if v.is_empty() {
                        // One HELP text is the rule: no room for three more.
                        v.reserve_exact(1);
                    }
                    v.push((help.into(), 1));
                } else {
                    let mut many = Box::<ManyHelps>::default();
                    for (h, n) in v.drain(..) {
                        many.push(h, n);
                    }
                    many.push(help.into(), 1);
                    *self = HelpTexts::Many(many);
                }
            }
            HelpTexts::Many(m) => match m.by_text.get(help).copied() {
                Some((n, seq)) => {
                    let text = m.by_seq.remove(&seq).unwrap_or_else(|| help.into());
                    m.by_text.remove(help);
                    m.push(text, n + 1);
                }
                None => m.push(help.into(), 1),
            },
        }
    }

    fn remove(&mut self, help: &str) {
        match self {
            HelpTexts::Few(v) => {
                if let Some(i) = v.iter().position(|(h, _)| &**h == help) {
                    v[i].1 -= 1;
                    if v[i].1 == 0 {
                        v.remove(i);
                    }
                }
            }
            HelpTexts::Many(m) => {
                let Some(e) = m.by_text.get_mut(help) else {
                    return;
                };
                e.0 -= 1;
                if e.0 == 0 {
                    let seq = e.1;
                    m.by_text.remove(help);
                    m.by_seq.remove(&seq);
                }
            }
        }
    }
}

impl ManyHelps {
    /// Adds `help` as the latest, pushed by `n` groups.
    fn push(&mut self, help: Arc<str>, n: u32) {
        let seq = self.next;
        self.next += 1;
        self.by_text.insert(help.clone(), (n, seq));
        self.by_seq.insert(seq, help);
    }
}

/// A family's name, HELP and type as a scrape exposes them; shared with
/// the scrape's renderer off the loop.
#[derive(Clone, Debug)]
pub(crate) struct FamilyMeta {
    pub name: Arc<str>,
    pub help: Option<Arc<str>>,
    pub metric_type: MetricType,
    /// Changes whenever the family's series, HELP or type change.
    pub version: u64,
    /// The bytes its pushed series take in a text scrape.
    pub exposed: usize,
}

/// Every family's index entry by name, and the scrapes' list of them
/// ([`MetaCache`]) kept in step: read through `Deref`, changed only
/// through the methods below, which tell the list what changed, so no
/// change can leave a stale entry in it.
#[derive(Default)]
pub(super) struct Families {
    map: BTreeMap<Arc<str>, FamilyIndex>,
    metas: MetaCache,
}

impl std::ops::Deref for Families {
    type Target = BTreeMap<Arc<str>, FamilyIndex>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Families {
    /// The entry of `name`, created if new, about to change; with the
    /// name as the index holds it, for the group to share.
    pub(super) fn changing(&mut self, name: &str) -> (Arc<str>, &mut FamilyIndex) {
        self.changing_or_new(name, || Arc::from(name))
    }

    /// [`Families::changing`] with the name already shared: a new entry
    /// takes this one, no copy of it.
    pub(super) fn changing_shared(&mut self, name: &Arc<str>) -> (Arc<str>, &mut FamilyIndex) {
        self.changing_or_new(name, || Arc::clone(name))
    }

    fn changing_or_new(
        &mut self,
        name: &str,
        new: impl FnOnce() -> Arc<str>,
    ) -> (Arc<str>, &mut FamilyIndex) {
        let key = match self.map.get_key_value(name) {
            Some((k, _)) => Arc::clone(k),
            None => new(),
        };
        self.metas.touched(&key);
        let idx = self.map.entry(Arc::clone(&key)).or_default();
        (key, idx)
    }

    /// The existing entry of `name`, about to change.
    fn existing(&mut self, name: &str) -> Option<&mut FamilyIndex> {
        let (key, idx) = self.map.get_mut_keyed(name)?;
        self.metas.touched(key);
        Some(idx)
    }

    /// Forgets `name` once no group contributes it. Separate from
    /// [`Families::unindex`]: a push that replaces a group's family takes
    /// the old one out and puts the new one in, and the name in between
    /// is not gone (its entry, HELP counts and version stay).
    pub(super) fn drop_if_unused(&mut self, name: &str) {
        if self.map.get(name).is_some_and(|idx| idx.groups() == 0)
            && let Some((key, _)) = self.map.remove_entry(name)
        {
            self.metas.touched(&key);
        }
    }

    /// Everything, handed over (a wipe).
    pub(super) fn take(&mut self) -> BTreeMap<Arc<str>, FamilyIndex> {
        self.metas.forget();
        std::mem::take(&mut self.map)
    }

    /// One group less has gauge family `name`, its series of hash `h`:
    /// the push-time gauges of a deleted group.
    pub(super) fn remove_gauge(&mut self, name: &str, h: u64, gid: u64) {
        if let Some(idx) = self.existing(name) {
            idx.series.remove(h, gid);
            idx.type_counts[type_slot(MetricType::Gauge)] -= 1;
        }
        self.drop_if_unused(name);
    }

    /// Takes group `gid`'s family `name` out of the index; the caller
    /// then drops the name if unused.
    pub(super) fn unindex(
        &mut self,
        name: &str,
        fam: &StoredFamily,
        (gid, shared): (u64, &[Label]),
        generation: u64,
    ) {
        let Some(idx) = self.existing(name) else {
            return;
        };
        idx.version = generation;
        idx.exposed -= fam.exposed;
        if idx.groups() == 1 {
            // This group is the family's only one: every owner is this
            // group, and none of its series needs hashing again to be
            // found (a PUT replacing a family of 400,000 series).
            idx.series.clear();
        } else {
            for m in &fam.metrics {
                idx.series.remove(series_hash(&m.labels, shared), gid);
            }
        }
        idx.type_counts[type_slot(fam.metric_type)] -= 1;
        idx.remove_help(fam.help.as_deref());
    }

    /// Every family's name, HELP and type in name order, as a scrape
    /// shows them (see [`MetaCache`]).
    pub(super) fn metas(&mut self, own: &dyn OwnFamilies) -> FamilyMetas {
        self.metas.current(&self.map, own)
    }
}

/// `BTreeMap::get_mut`, also giving the stored key (std has no
/// `get_key_value_mut`).
trait GetMutKeyed<V> {
    fn get_mut_keyed(&mut self, name: &str) -> Option<(&Arc<str>, &mut V)>;
}

impl<V> GetMutKeyed<V> for BTreeMap<Arc<str>, V> {
    fn get_mut_keyed(&mut self, name: &str) -> Option<(&Arc<str>, &mut V)> {
        use std::ops::Bound::Included;
        self.range_mut::<str, _>((Included(name), Included(name)))
            .next()
    }
}

/// What a scrape shows of one family (see [`Families::metas`]): the
/// gateway's own type and HELP for names it exposes itself. Pointers
/// only: the name and HELP are the index's.
fn meta_of(name: &Arc<str>, idx: &FamilyIndex, own: &dyn OwnFamilies) -> FamilyMeta {
    let (metric_type, help) = match own.own_family(name) {
        Some((t, h)) => (t, Some(Arc::from(h))),
        None => (idx.metric_type(), idx.help().cloned()),
    };
    FamilyMeta {
        name: Arc::clone(name),
        help,
        metric_type,
        version: idx.version,
        exposed: idx.exposed,
    }
}

/// Entries per piece of the scrapes' list ([`FamilyMetas`]): a change
/// copies one piece of about this many at most, a scrape's copy of the
/// list one pointer per piece.
const PIECE: usize = 512;

/// Every family's [`FamilyMeta`] in name order, in pieces shared between
/// the store and the scrapes that read it. Cloning copies one pointer per
/// piece; a change to one family copies its piece (if a reader shares
/// it), never the list.
#[derive(Clone, Debug, Default)]
pub(crate) struct FamilyMetas {
    pieces: Vec<Arc<Vec<FamilyMeta>>>,
    /// The index of each piece's first entry in the whole list.
    starts: Vec<usize>,
    len: usize,
}

impl FamilyMetas {
    fn from_sorted(all: impl Iterator<Item = FamilyMeta>) -> FamilyMetas {
        let mut metas = FamilyMetas::default();
        let mut piece = Vec::with_capacity(PIECE);
        for m in all {
            piece.push(m);
            if piece.len() == PIECE {
                metas.pieces.push(Arc::new(std::mem::take(&mut piece)));
            }
        }
        if !piece.is_empty() {
            metas.pieces.push(Arc::new(piece));
        }
        metas.recount();
        metas
    }

    fn recount(&mut self) {
        self.starts.clear();
        self.len = 0;
        for p in &self.pieces {
            self.starts.push(self.len);
            self.len += p.len();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &FamilyMeta> + '_ {
        self.pieces.iter().flat_map(|p| p.iter())
    }

    pub(crate) fn get(&self, i: usize) -> Option<&FamilyMeta> {
        let piece = self.starts.partition_point(|&s| s <= i).checked_sub(1)?;
        self.pieces[piece].get(i - self.starts[piece])
    }

    /// The index of family `name`, if listed.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        let piece = self.piece_of(name);
        let at = self.pieces.get(piece)?;
        let i = at.binary_search_by(|m| (*m.name).cmp(name)).ok()?;
        Some(self.starts[piece] + i)
    }

    /// The piece where `name` is or would go.
    fn piece_of(&self, name: &str) -> usize {
        let after = self
            .pieces
            .partition_point(|p| p.last().is_some_and(|m| *m.name < *name));
        after.min(self.pieces.len().saturating_sub(1))
    }

    /// Puts `meta` in its place, replacing the entry of its name, or takes
    /// out the entry of `name` when `meta` is `None`. O(piece).
    fn set(&mut self, name: &str, meta: Option<FamilyMeta>) {
        if self.pieces.is_empty() {
            self.pieces.push(Arc::default());
        }
        let p = self.piece_of(name);
        let piece = Arc::make_mut(&mut self.pieces[p]);
        match (piece.binary_search_by(|m| (*m.name).cmp(name)), meta) {
            (Ok(i), Some(meta)) => piece[i] = meta,
            (Ok(i), None) => {
                piece.remove(i);
            }
            (Err(i), Some(meta)) => piece.insert(i, meta),
            (Err(_), None) => {}
        }
        if piece.is_empty() {
            self.pieces.remove(p);
        } else if piece.len() >= 2 * PIECE {
            let rest = piece.split_off(PIECE);
            self.pieces.insert(p + 1, Arc::new(rest));
        }
    }
}

impl std::ops::Index<usize> for FamilyMetas {
    type Output = FamilyMeta;

    fn index(&self, i: usize) -> &FamilyMeta {
        self.get(i).expect("family index within the list")
    }
}

/// The scrapes' list of families, kept between scrapes rather than built
/// by each: building it is O(families) on the request loop, bound by
/// memory latency whether the strings are copied or shared (800,000
/// families held pushes up for a quarter of a second a scrape).
///
/// A scrape takes a copy of the list as it is, one pointer per piece
/// ([`FamilyMetas`]); the names whose entries changed since the last
/// scrape (series, HELP, type, a name come or gone) are brought up to
/// date first, O(changed names * piece). Only many changes at once
/// rebuild it. The list assumes one [`OwnFamilies`] for the store's life,
/// as the gateway has.
#[derive(Default)]
struct MetaCache {
    /// The list as of the last scrape; `None`: rebuild at the next.
    list: Option<FamilyMetas>,
    /// Names whose entries changed since (repeats possible).
    dirty: Vec<Arc<str>>,
}

impl MetaCache {
    /// Family `name`'s entry changed, came or went.
    fn touched(&mut self, name: &Arc<str>) {
        let Some(list) = &self.list else {
            return;
        };
        // Past this, a rebuild costs less than the updates.
        if self.dirty.len() >= list.len() / 4 + 64 {
            self.forget();
        } else {
            self.dirty.push(Arc::clone(name));
        }
    }

    /// Everything changed: the list is rebuilt at the next scrape.
    fn forget(&mut self) {
        self.list = None;
        self.dirty.clear();
    }

    fn current(
        &mut self,
        map: &BTreeMap<Arc<str>, FamilyIndex>,
        own: &dyn OwnFamilies,
    ) -> FamilyMetas {
        let dirty = std::mem::take(&mut self.dirty);
        let list = self.list.get_or_insert_with(|| {
            FamilyMetas::from_sorted(map.iter().map(|(name, idx)| meta_of(name, idx, own)))
        });
        for name in &dirty {
            let meta = map
                .get_key_value(&**name)
                .map(|(k, idx)| meta_of(k, idx, own));
            list.set(name, meta);
        }
        if !dirty.is_empty() {
            list.recount();
        }
        list.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;

    #[test]
    fn owners_keep_extra_owners_of_unchecked_pushes() {
        let k = series_hash(&[Label::new("job", "a")], &[]);
        let others = |o: &Owners, gid| o.other_owners(k, gid).collect::<Vec<_>>();
        let mut o = Owners::default();
        o.insert(k, 1);
        o.insert(k, 1);
        assert_eq!(others(&o, Some(1)), []);
        assert_eq!(others(&o, None), [1]);
        o.insert(k, 2);
        assert_eq!(others(&o, Some(1)), [2]);
        assert_eq!(o.shared().count(), 1);
        // The first owner goes: the second takes over.
        o.remove(k, 1);
        assert_eq!(others(&o, None), [2]);
        assert_eq!(o.shared().count(), 0);
        o.remove(k, 2);
        assert_eq!(others(&o, None), []);
        assert!(o.is_empty());
    }

    #[test]
    fn series_hashes_follow_the_labels() {
        let a = [Label::new("job", "a"), Label::new("x", "1")];
        let b = [Label::new("job", "a"), Label::new("x", "1")];
        let c = [Label::new("job", "a"), Label::new("x", "2")];
        assert_eq!(series_hash(&a, &[]), series_hash(&b, &[]));
        assert_ne!(series_hash(&a, &[]), series_hash(&c, &[]));
        // Moving a character between name and value is another series.
        let d = [Label::new("joba", ""), Label::new("x", "1")];
        assert_ne!(series_hash(&a, &[]), series_hash(&d, &[]));
        // A stored series hashes as its labels written out: its own
        // merged with its group's, its own instance replacing the group's.
        let own = [Label::new("instance", "i"), Label::new("x", "1")];
        let shared = [Label::new("instance", ""), Label::new("job", "a")];
        let full = [
            Label::new("instance", "i"),
            Label::new("job", "a"),
            Label::new("x", "1"),
        ];
        assert_eq!(series_hash(&own, &shared), series_hash(&full, &[]));
        assert_eq!(series_hash(&[], &full), series_hash(&full, &[]));
        assert_ne!(series_hash(&own[1..], &shared), series_hash(&full, &[]));
    }

    /// The pieced list stays sorted and whole through inserts, updates
    /// and removals that split and empty pieces, and finds every name.
    #[test]
    fn family_metas_keep_order_through_changes() {
        let meta = |name: &str, version: u64| FamilyMeta {
            name: name.into(),
            help: None,
            metric_type: MetricType::Gauge,
            version,
            exposed: 0,
        };
        let names = |range: std::ops::Range<usize>| range.map(|i| format!("f{i:05}"));
        let mut want: BTreeMap<String, u64> = names(0..3000).step_by(2).map(|n| (n, 0)).collect();
        let mut list = FamilyMetas::from_sorted(want.keys().map(|n| meta(n, 0)));
        let reader = list.clone();
        for (i, n) in names(0..3000).enumerate() {
            match i % 5 {
                0 | 1 => {
                    list.set(&n, Some(meta(&n, 1)));
                    want.insert(n, 1);
                }
                2 => {
                    list.set(&n, None);
                    want.remove(&n);
                }
                _ => {}
            }
        }
        for n in names(0..600) {
            list.set(&n, None);
            want.remove(&n);
        }
        list.recount();
        let got: Vec<(String, u64)> = list
            .iter()
            .map(|m| (m.name.to_string(), m.version))
            .collect();
        assert_eq!(got, want.clone().into_iter().collect::<Vec<_>>());
        assert_eq!(list.len(), want.len());
        for (i, n) in want.keys().enumerate() {
            assert_eq!(list.position(n), Some(i), "{n}");
            assert_eq!(&*list[i].name, n.as_str());
        }
        assert_eq!(list.position("f00001"), None);
        assert!(list.get(want.len()).is_none());
        assert!(
            list.pieces
                .iter()
                .all(|p| !p.is_empty() && p.len() < 2 * PIECE)
        );
        assert_eq!(reader.len(), 1500, "a reader's copy is untouched");
        assert!(reader.iter().all(|m| m.version == 0));
    }

    /// Many groups with their own HELP text for one name: the latest
    /// pushed is exposed, and removing groups brings back the latest of
    /// those left, as with few.
    #[test]
    fn many_help_texts_keep_the_latest() {
        let mut idx = FamilyIndex::default();
        for i in 0..100 {
            idx.add_help(Some(&format!("help {i}")));
        }
        assert!(matches!(idx.helps.0.as_deref(), Some(HelpTexts::Many(_))));
        let help = |idx: &FamilyIndex| idx.help().map(|h| h.to_string());
        assert_eq!(help(&idx).as_deref(), Some("help 99"));
        idx.add_help(Some("help 5"));
        idx.add_help(None);
        assert_eq!(help(&idx).as_deref(), Some("help 5"));
        idx.remove_help(Some("help 5"));
        assert_eq!(
            help(&idx).as_deref(),
            Some("help 5"),
            "another group still has it"
        );
        idx.remove_help(Some("help 5"));
        assert_eq!(help(&idx).as_deref(), Some("help 99"));
        for i in 0..100 {
            idx.remove_help(Some(&format!("help {i}")));
        }
        assert!(idx.helps.is_empty());
        assert_eq!(idx.help(), None);
    }
}
