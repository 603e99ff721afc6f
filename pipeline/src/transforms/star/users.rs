//! User history: each user's details as first seen and the type-2 versions of their
//! level.

use warehouse::keys;
use warehouse::raw::{EventContext, Level};

use super::{Output, Transformer};
use crate::transforms::rows::UserRow;
use crate::transforms::rules::level_name;
use crate::transforms::state::UserState;

impl Transformer {
    /// Type-2 history of a user's level, from their page views, which reach us in order.
    /// The first version starts at registration, so that its key does not depend on
    /// which event came first.
    pub(super) fn user_level(
        &mut self,
        user_id: i64,
        c: &EventContext<'_>,
        user: &warehouse::raw::User<'_>,
        out: &mut Output,
    ) {
        let paid = c.level == Level::Paid;
        let state = self
            .state
            .users
            .entry(user_id)
            .or_insert_with(|| UserState {
                first_name: user.first_name.to_string(),
                last_name: user.last_name.to_string(),
                gender: user.gender.to_string(),
                registration_ms: user.registration,
                city: c.location.city.to_string(),
                zip: c.location.zip.to_string(),
                state: c.location.state.to_string(),
                lon: c.location.lon,
                lat: c.location.lat,
                versions: Vec::new(),
                trail: None,
            });
        let emit = |state: &UserState, i: usize, out: &mut Output| {
            let (from, paid) = state.versions[i];
            let to = state.versions.get(i + 1).map(|(next, _)| *next);
            let user_key = keys::user_key(user_id, from);
            out.tables.user_dim.upsert(
                user_key,
                UserRow {
                    user_key,
                    user_id,
                    first_name: state.first_name.clone(),
                    last_name: state.last_name.clone(),
                    gender: state.gender.clone(),
                    level: level_name(paid).to_owned(),
                    registration_ms: state.registration_ms,
                    registration_city: state.city.clone(),
                    registration_zip: state.zip.clone(),
                    registration_state: state.state.clone(),
                    registration_lon: state.lon,
                    registration_lat: state.lat,
                    valid_from_ms: from,
                    valid_to_ms: to,
                    is_current: to.is_none(),
                },
            );
        };
        match state.versions.last() {
            None => {
                let from = state.registration_ms.min(c.ts);
                state.versions.push((from, paid));
                emit(state, 0, out);
            }
            Some(&(from, current)) if current != paid && c.ts > from => {
                state.versions.push((c.ts, paid));
                let n = state.versions.len();
                emit(state, n - 2, out);
                emit(state, n - 1, out);
            }
            Some(_) => return,
        }
        self.changes.users.insert(user_id);
    }
}
