//! User history: the type-2 versions of each user's level.

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
                registration_ms: user.registration,
                versions: Vec::new(),
                trail: None,
            });
        // The details and the place come from this event, which starts a version: the
        // simulator, like eventsim, gives a user one name and one home.
        let emit = |state: &UserState, i: usize, out: &mut Output| {
            let (from, paid) = state.versions[i];
            let to = state.versions.get(i + 1).map(|(next, _)| *next);
            let user_key = keys::user_key(user_id, from);
            out.tables.user_dim.upsert(
                user_key,
                UserRow {
                    user_key,
                    user_id,
                    first_name: user.first_name.to_string(),
                    last_name: user.last_name.to_string(),
                    gender: user.gender.to_string(),
                    level: level_name(paid).to_owned(),
                    registration_ms: state.registration_ms,
                    registration_city: c.location.city.to_string(),
                    registration_zip: c.location.zip.to_string(),
                    registration_state: c.location.state.to_string(),
                    registration_lon: c.location.lon,
                    registration_lat: c.location.lat,
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
