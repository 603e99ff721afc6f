//! Checkpoints in object storage (a GCS bucket or a local directory), for a warehouse
//! whose own transactions cannot hold them (BigQuery). Each instance keeps a log under
//! `<staging>/_checkpoints/<warehouse>/<instance>/`, where `<warehouse>` names what the
//! instances write together (`project.dataset`), so that pipelines of other datasets
//! sharing a bucket never read each other's offsets: state objects (`state/`), each the changed
//! records of one checkpoint or a base that folds the earlier ones together, and
//! manifests (`manifests/`), small JSON objects numbered in order that name the state
//! objects in force, the source offsets and a fencing epoch. Writing the next manifest
//! is the commit point.
//!
//! Manifests are created, never overwritten: Cloud Storage refuses to create a name that
//! exists (`ifGenerationMatch=0`), as a local directory does. An instance starting up
//! claims the log by creating the next manifest with the next epoch, so a pipeline still
//! running under the same instance name finds its next number taken and stops instead of
//! committing over the newer one.

use std::collections::HashMap;
use std::time::Instant;

use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{CheckpointCost, Offsets, Staging, unreadable_format};
use crate::error::{Cause, PipelineError};
use crate::transforms::state::{Records, State};

/// The version of the manifests' JSON and of the state objects' layout around the
/// records (which carry their own format byte).
pub const MANIFEST_FORMAT: u32 = 1;
/// The first byte of every state object.
const OBJECT_FORMAT: u8 = 1;
/// Where the logs live under the staging location.
const ROOT: &str = "_checkpoints";
/// A checkpoint folds the log into one base once its objects hold this many records
/// per record of the state, as DuckDB's record tables are compacted: restoring then
/// reads at most a few times the state.
const COMPACT_RATIO: u64 = 3;
/// And only from this many records on, so that a small state is not rewritten often.
const COMPACT_FROM: u64 = 10_000;

/// One commit of the log.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    instance: String,
    sequence: u64,
    /// Raised by every start of the instance: whose manifests these are.
    epoch: u64,
    /// The next offset to read of every partition this instance has written from.
    offsets: Vec<PartitionOffset>,
    /// The state objects in force, oldest first; later records of a key win.
    state: Vec<StateObject>,
    /// The sink's write streams and how many of their rows this checkpoint covers
    /// (empty for a sink without streams).
    #[serde(default)]
    streams: Vec<StreamRows>,
}

/// A sink's write stream at a checkpoint: its rows up to `rows` belong to the
/// checkpoint, any after it to a batch the checkpoint does not cover.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StreamRows {
    /// What the stream writes to, for people reading the manifest.
    pub table: String,
    pub stream: String,
    pub rows: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct PartitionOffset {
    topic: String,
    partition: i32,
    next: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct StateObject {
    /// Under the instance's folder.
    name: String,
    records: u64,
    bytes: u64,
}

/// A state object's content, as written: the records of [`Records`] without its counts.
#[derive(Serialize)]
struct Body<'a> {
    clocks: &'a [u8],
    sessions: &'a [(i64, Option<Vec<u8>>)],
    session_events: &'a [(i64, Vec<u8>)],
    users: &'a [(i64, Option<Vec<u8>>)],
}

/// [`Body`] as read back: the same encoding, owned.
#[derive(Deserialize)]
struct OwnedBody {
    clocks: Vec<u8>,
    sessions: Vec<(i64, Option<Vec<u8>>)>,
    session_events: Vec<(i64, Vec<u8>)>,
    users: Vec<(i64, Option<Vec<u8>>)>,
}

impl Body<'_> {
    fn of(records: &Records) -> Body<'_> {
        Body {
            clocks: &records.clocks,
            sessions: &records.sessions,
            session_events: &records.session_events,
            users: &records.users,
        }
    }

    fn to_owned(&self) -> OwnedBody {
        OwnedBody {
            clocks: self.clocks.to_vec(),
            sessions: self.sessions.to_vec(),
            session_events: self.session_events.to_vec(),
            users: self.users.to_vec(),
        }
    }

    fn records(&self) -> u64 {
        (self.sessions.len() + self.session_events.len() + self.users.len()) as u64
    }

    fn encode(&self) -> Result<Vec<u8>, PipelineError> {
        let bytes = vec![OBJECT_FORMAT];
        postcard::to_extend(self, bytes)
            .map_err(|e| PipelineError::Bug(format!("a state object does not encode: {e}")))
    }
}

/// The records of several state objects folded together: the latest of each key, and
/// the events appended to a session since its latest whole record.
#[derive(Default)]
struct Folded {
    clocks: Vec<u8>,
    sessions: HashMap<i64, Option<Vec<u8>>>,
    session_events: HashMap<i64, Vec<Vec<u8>>>,
    users: HashMap<i64, Option<Vec<u8>>>,
}

impl Folded {
    fn add(&mut self, body: OwnedBody) {
        self.clocks = body.clocks;
        for (key, record) in body.sessions {
            // A session written whole holds every event appended before.
            self.session_events.remove(&key);
            self.sessions.insert(key, record);
        }
        for (key, events) in body.session_events {
            self.session_events.entry(key).or_default().push(events);
        }
        self.users.extend(body.users);
    }

    /// The live records in key order, deletions dropped: what a base holds.
    fn into_records(self) -> Records {
        let live = |map: HashMap<i64, Option<Vec<u8>>>| {
            let mut records: Vec<_> = map
                .into_iter()
                .filter(|(_, record)| record.is_some())
                .collect();
            records.sort_unstable_by_key(|(key, _)| *key);
            records
        };
        let mut session_events: Vec<(i64, Vec<u8>)> = self
            .session_events
            .into_iter()
            .flat_map(|(key, events)| events.into_iter().map(move |e| (key, e)))
            .collect();
        // Stable, so that one session's events keep the order they were appended in.
        session_events.sort_by_key(|(key, _)| *key);
        let sessions = live(self.sessions);
        let users = live(self.users);
        Records {
            live_sessions: sessions.len(),
            live_users: users.len(),
            clocks: self.clocks,
            sessions,
            session_events,
            users,
        }
    }
}

/// One instance's log, claimed: the manifest it last committed.
pub struct CheckpointLog {
    /// Its store, runtime and request counts.
    staging: Staging,
    /// `<staging>/_checkpoints/<warehouse>`, holding its instances' folders.
    root: ObjectPath,
    /// This instance's folder.
    folder: ObjectPath,
    /// For messages: where the folder is.
    place: String,
    head: Manifest,
}

impl std::fmt::Debug for CheckpointLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointLog")
            .field("place", &self.place)
            .field("sequence", &self.head.sequence)
            .field("epoch", &self.head.epoch)
            .finish()
    }
}

impl CheckpointLog {
    /// Reads the instance's last manifest among the logs of `warehouse` and claims it
    /// with the next epoch; a pipeline that still writes as this instance is fenced out
    /// from then on. Removes what an interrupted commit or clean-up left behind.
    pub fn open(
        staging: &Staging,
        warehouse: &str,
        instance: &str,
    ) -> Result<CheckpointLog, PipelineError> {
        let root: ObjectPath = staging
            .prefix()
            .parts()
            .chain([ROOT.into(), PathPart::from(warehouse)])
            .collect();
        let folder: ObjectPath = root.parts().chain([PathPart::from(instance)]).collect();
        let mut log = CheckpointLog {
            staging: staging.clone(),
            place: format!("{}/{folder}", staging.url()),
            root,
            folder,
            head: Manifest::default(),
        };
        let last = log.last_manifest(&log.folder)?.unwrap_or_default();
        let claim = Manifest {
            format: MANIFEST_FORMAT,
            instance: instance.to_owned(),
            sequence: last.sequence + 1,
            epoch: last.epoch + 1,
            ..last
        };
        log.create_manifest(&claim)?;
        log.head = claim;
        if let Err(e) = log.leftovers().and_then(|stale| log.delete(stale)) {
            tracing::warn!("{}", crate::error::chain(&e));
        }
        tracing::info!(
            place = %log.place,
            sequence = log.head.sequence,
            epoch = log.head.epoch,
            "claimed the checkpoint log"
        );
        Ok(log)
    }

    /// The state of the last checkpoint, if the instance ever wrote one.
    pub fn state(&self) -> Result<Option<State>, PipelineError> {
        if self.head.state.is_empty() {
            return Ok(None);
        }
        let records = self.fold(&self.head.state)?.into_records();
        State::from_records(
            &records.clocks,
            records
                .sessions
                .into_iter()
                .filter_map(|(k, r)| Some((k, r?))),
            records.session_events,
            records.users.into_iter().filter_map(|(k, r)| Some((k, r?))),
        )
        .map(Some)
        .map_err(|e| PipelineError::Incompatible(format!("{}: {e}", self.place)))
    }

    /// The next offset of every partition any instance of the warehouse wrote from: the
    /// furthest, as a partition moves between instances only forward.
    pub fn offsets(&self) -> Result<Offsets, PipelineError> {
        let listed = self
            .call("objects.list", |store| {
                store.list_with_delimiter(Some(&self.root))
            })
            .map_err(|e| self.error(format!("cannot list {}", self.root), e.into()))?;
        let mut offsets = Offsets::new();
        for folder in listed.common_prefixes {
            let manifest = if folder == self.folder {
                Some(self.head.clone())
            } else {
                self.last_manifest(&folder)?
            };
            for o in manifest.map(|m| m.offsets).unwrap_or_default() {
                let next = offsets.entry((o.topic, o.partition)).or_insert(o.next);
                *next = (*next).max(o.next);
            }
        }
        Ok(offsets)
    }

    /// Commits a checkpoint: writes the changed records as a state object (or, once the
    /// log has grown, a base of the whole state), then the next manifest. A write that
    /// fails before the manifest leaves the last checkpoint in force; retrying it is
    /// safe, also when the manifest was written but its answer lost.
    pub fn commit(
        &mut self,
        records: &Records,
        offsets: &[(String, i32, i64)],
        streams: &[StreamRows],
    ) -> Result<CheckpointCost, PipelineError> {
        let began = Instant::now();
        let sequence = self.head.sequence + 1;
        let body = Body::of(records);
        let held: u64 = self.head.state.iter().map(|o| o.records).sum();
        let live = (records.live_sessions + records.live_users) as u64;
        let compact = !self.head.state.is_empty()
            && held + body.records() > COMPACT_FROM.max(COMPACT_RATIO * live);
        let (bytes, count, mut state) = if compact {
            let mut folded = self.fold(&self.head.state)?;
            folded.add(body.to_owned());
            let base = folded.into_records();
            let base_body = Body::of(&base);
            (base_body.encode()?, base_body.records(), Vec::new())
        } else {
            (body.encode()?, body.records(), self.head.state.clone())
        };
        // The epoch in the name keeps a fenced pipeline's objects apart from ours.
        let name = format!("state/{sequence:020}-{}.records", self.head.epoch);
        let object = StateObject {
            name,
            records: count,
            bytes: bytes.len() as u64,
        };
        let path = self.path(&object.name);
        self.call("objects.put", |store| {
            store.put(&path, PutPayload::from(bytes))
        })
        .map_err(|e| self.error(format!("cannot write {path}"), e.into()))?;
        state.push(object.clone());
        let manifest = Manifest {
            sequence,
            state,
            offsets: merge_offsets(&self.head.offsets, offsets),
            streams: streams.to_vec(),
            ..self.head.clone()
        };
        let manifest_bytes = self.create_manifest(&manifest)?;
        let mut stale: Vec<ObjectPath> = self
            .head
            .state
            .iter()
            .filter(|o| !manifest.state.contains(o))
            .map(|o| self.path(&o.name))
            .collect();
        stale.push(self.manifest_path(self.head.sequence));
        self.head = manifest;
        if let Err(e) = self.delete(stale) {
            tracing::warn!("{}", crate::error::chain(&e));
        }
        Ok(CheckpointCost {
            bytes: object.bytes + manifest_bytes,
            took: began.elapsed(),
        })
    }

    /// The committed manifest's number and epoch.
    pub fn head(&self) -> (u64, u64) {
        (self.head.sequence, self.head.epoch)
    }

    /// The write streams of the committed manifest.
    pub fn streams(&self) -> &[StreamRows] {
        &self.head.streams
    }

    /// How many state objects the committed manifest names.
    pub fn objects(&self) -> usize {
        self.head.state.len()
    }

    fn path(&self, name: &str) -> ObjectPath {
        self.folder
            .parts()
            .chain(name.split('/').map(PathPart::from))
            .collect()
    }

    fn manifest_path(&self, sequence: u64) -> ObjectPath {
        self.path(&format!("manifests/{sequence:020}.json"))
    }

    /// The highest-numbered manifest in an instance's folder.
    fn last_manifest(&self, folder: &ObjectPath) -> Result<Option<Manifest>, PipelineError> {
        let manifests: ObjectPath = folder.parts().chain(["manifests".into()]).collect();
        let listed = self
            .call("objects.list", |store| {
                store.list_with_delimiter(Some(&manifests))
            })
            .map_err(|e| self.error(format!("cannot list {manifests}"), e.into()))?;
        let Some(last) = listed
            .objects
            .into_iter()
            .map(|o| o.location)
            .filter(|p| p.extension() == Some("json"))
            .max_by(|a, b| a.as_ref().cmp(b.as_ref()))
        else {
            return Ok(None);
        };
        self.read_manifest(&last).map(Some)
    }

    fn read_manifest(&self, path: &ObjectPath) -> Result<Manifest, PipelineError> {
        let bytes = self.read(path)?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            PipelineError::Incompatible(format!("{}: {path} does not read: {e}", self.place))
        })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(unreadable_format(
                &format!("{} ({path})", self.place),
                i32::try_from(manifest.format).unwrap_or(i32::MAX),
                &format!("format {MANIFEST_FORMAT}"),
            ));
        }
        Ok(manifest)
    }

    fn read(&self, path: &ObjectPath) -> Result<Vec<u8>, PipelineError> {
        self.call("objects.get", |store| async move {
            store.get(path).await?.bytes().await
        })
        .map(|bytes| bytes.to_vec())
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => PipelineError::Incompatible(format!(
                "{}: {path} is gone, though the last manifest names it",
                self.place
            )),
            e => self.error(format!("cannot read {path}"), e.into()),
        })
    }

    /// Creates the manifest's object, refusing to replace one: returns its size. A
    /// manifest found there already is ours if it is the same (a retried write whose
    /// answer was lost); otherwise another pipeline took the instance over.
    fn create_manifest(&self, manifest: &Manifest) -> Result<u64, PipelineError> {
        let path = self.manifest_path(manifest.sequence);
        let bytes = serde_json::to_vec_pretty(manifest)
            .map_err(|e| PipelineError::Bug(format!("a manifest does not encode: {e}")))?;
        let size = bytes.len() as u64;
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.call("objects.put", |store| {
            store.put_opts(&path, PutPayload::from(bytes), create)
        }) {
            Ok(_) => Ok(size),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let found = self.read_manifest(&path)?;
                if found == *manifest {
                    return Ok(size);
                }
                Err(PipelineError::Fenced(format!(
                    "{}: manifest {} was written by another pipeline running as instance {} (epoch {}, this one's {}); give each pipeline its own --instance",
                    self.place, manifest.sequence, found.instance, found.epoch, manifest.epoch
                )))
            }
            Err(e) => Err(self.error(format!("cannot write {path}"), e.into())),
        }
    }

    /// Folds the state objects together, reading one at a time.
    fn fold(&self, objects: &[StateObject]) -> Result<Folded, PipelineError> {
        let mut folded = Folded::default();
        for object in objects {
            let path = self.path(&object.name);
            let bytes = self.read(&path)?;
            let body = match bytes.split_first() {
                Some((&OBJECT_FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| {
                    PipelineError::Incompatible(format!(
                        "{}: {path} does not read: {e}",
                        self.place
                    ))
                })?,
                Some((format, _)) => {
                    return Err(unreadable_format(
                        &format!("{} ({path})", self.place),
                        i32::from(*format),
                        &format!("format {OBJECT_FORMAT}"),
                    ));
                }
                None => {
                    return Err(PipelineError::Incompatible(format!(
                        "{}: {path} is empty",
                        self.place
                    )));
                }
            };
            folded.add(body);
        }
        Ok(folded)
    }

    /// What an interrupted commit or clean-up left: manifests before the head, state
    /// objects it does not name.
    fn leftovers(&self) -> Result<Vec<ObjectPath>, PipelineError> {
        let mut stale = Vec::new();
        for folder in ["manifests", "state"] {
            let prefix = self.path(folder);
            let listed = self
                .call("objects.list", |store| {
                    store.list_with_delimiter(Some(&prefix))
                })
                .map_err(|e| self.error(format!("cannot list {prefix}"), e.into()))?;
            stale.extend(
                listed
                    .objects
                    .into_iter()
                    .map(|o| o.location)
                    .filter(|p| !self.in_force(p)),
            );
        }
        Ok(stale)
    }

    /// Deleting is tidying only: a failure leaves garbage, never a wrong checkpoint.
    fn delete(&self, stale: Vec<ObjectPath>) -> Result<(), PipelineError> {
        for path in stale {
            match self.call("objects.delete", |store| store.delete(&path)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(format!("cannot delete {path}"), e.into())),
            }
        }
        Ok(())
    }

    /// Whether the head names this object (its manifest or one of its state objects).
    fn in_force(&self, path: &ObjectPath) -> bool {
        *path == self.manifest_path(self.head.sequence)
            || self.head.state.iter().any(|o| self.path(&o.name) == *path)
    }

    /// Runs one request to the object store to its end, counted under `call` (the
    /// metric's name for it).
    fn call<'a, T, F>(
        &'a self,
        call: &'static str,
        request: impl FnOnce(&'a dyn ObjectStore) -> F,
    ) -> object_store::Result<T>
    where
        F: Future<Output = object_store::Result<T>>,
    {
        self.staging.count(call);
        self.staging
            .runtime()
            .block_on(request(self.staging.store().as_ref()))
    }

    fn error(&self, doing: String, error: Cause) -> PipelineError {
        PipelineError::Staging {
            location: self.place.clone(),
            doing,
            error,
        }
    }
}

/// `before` moved on by a checkpoint's offsets, in a stable order.
fn merge_offsets(before: &[PartitionOffset], moved: &[(String, i32, i64)]) -> Vec<PartitionOffset> {
    let mut offsets: std::collections::BTreeMap<(String, i32), i64> = before
        .iter()
        .map(|o| ((o.topic.clone(), o.partition), o.next))
        .collect();
    for (topic, partition, next) in moved {
        offsets.insert((topic.clone(), *partition), *next);
    }
    offsets
        .into_iter()
        .map(|((topic, partition), next)| PartitionOffset {
            topic,
            partition,
            next,
        })
        .collect()
}
