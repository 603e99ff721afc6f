//! Who the simulated users are: home places from the US ZIP-code data of the `zipcodes`
//! crate, user agents, and names from the `fake` crate's word lists.

use fake::locales::{Data, EN};

use crate::clock::Zone;
use crate::random::Stream;

/// One home place: a ZIP code with its city, state, position and time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub city: String,
    pub zip: String,
    pub state: String,
    pub lon: f64,
    pub lat: f64,
    pub zone: Zone,
}

/// The places users live in, each weighted so that populous areas get more users.
///
/// The ZIP-code data has no population counts, so the weight is a proxy: the number of
/// telephone area codes that serve the ZIP code. Overlay codes are added where numbers
/// run out, which is where people are, so big metropolitan areas weigh several times a
/// rural ZIP code. Only active, standard (street-address) ZIP codes are used.
#[derive(Debug)]
pub struct Places {
    places: Vec<Place>,
    cumulative: Vec<u64>,
}

impl Places {
    pub fn us() -> Places {
        let mut places = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0;
        for zip in zipcodes::database() {
            if !zip.active || zip.zip_code_type != "STANDARD" {
                continue;
            }
            let (Ok(lat), Ok(lon)) = (zip.lat.parse::<f64>(), zip.long.parse::<f64>()) else {
                continue;
            };
            let zone = Zone::from_iana(&zip.timezone).unwrap_or(Zone::from_longitude(lon));
            total += zip.area_codes.len().max(1) as u64;
            cumulative.push(total);
            places.push(Place {
                city: zip.city.clone(),
                zip: zip.zip_code.clone(),
                state: zip.state.clone(),
                lon,
                lat,
                zone,
            });
        }
        Places { places, cumulative }
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    pub fn get(&self, index: u32) -> &Place {
        &self.places[index as usize]
    }

    /// A place's index, drawn by weight.
    pub fn draw(&self, rng: &mut Stream) -> u32 {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let target = rng.below(total);
        self.cumulative.partition_point(|&c| c <= target) as u32
    }
}

/// Browsers and devices of the simulated users, with weights in percent of users:
/// roughly the mix of a consumer music service (phones first, then desktops).
const USER_AGENTS: [(&str, u32); 10] = [
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        22,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
        14,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S921U) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
        10,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        20,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        9,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        8,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
        7,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
        5,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        3,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        2,
    ),
];

pub fn user_agent(index: u8) -> &'static str {
    USER_AGENTS[usize::from(index)].0
}

/// A user agent's index, drawn by weight.
pub fn draw_user_agent(rng: &mut Stream) -> u8 {
    let total: u32 = USER_AGENTS.iter().map(|(_, w)| w).sum();
    let mut target = rng.below(u64::from(total)) as u32;
    for (i, (_, weight)) in USER_AGENTS.iter().enumerate() {
        if target < *weight {
            return i as u8;
        }
        target -= weight;
    }
    (USER_AGENTS.len() - 1) as u8
}

/// A first name, last name and gender (`M` or `F`, evenly). The word lists are the `fake`
/// crate's English ones; drawing from them here, rather than through its API, keeps the
/// choice under this crate's portable random streams.
pub fn draw_name(rng: &mut Stream) -> (&'static str, &'static str, &'static str) {
    let first = EN::NAME_FIRST_NAME;
    let last = EN::NAME_LAST_NAME;
    let first = first[rng.below(first.len() as u64) as usize];
    let last = last[rng.below(last.len() as u64) as usize];
    let gender = if rng.below(2) == 0 { "M" } else { "F" };
    (first, last, gender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_cover_the_us_with_known_zones() {
        let places = Places::us();
        assert!(places.len() > 25_000, "{} places", places.len());
        let mut rng = Stream::new(7, 1);
        let mut states = std::collections::HashSet::new();
        for _ in 0..2_000 {
            let place = places.get(places.draw(&mut rng));
            assert!((-180.0..=180.0).contains(&place.lon) && (-90.0..=90.0).contains(&place.lat));
            assert_eq!(place.zip.len(), 5);
            states.insert(place.state.clone());
        }
        assert!(states.len() > 30, "{} states drawn", states.len());
    }

    #[test]
    fn user_agents_are_drawn_by_weight() {
        let mut rng = Stream::new(3, 9);
        let mut counts = [0u32; USER_AGENTS.len()];
        for _ in 0..100_000 {
            counts[usize::from(draw_user_agent(&mut rng))] += 1;
        }
        for (count, (_, weight)) in counts.iter().zip(USER_AGENTS) {
            let expected = f64::from(weight) * 1000.0;
            assert!((f64::from(*count) - expected).abs() < 5.0 * expected.sqrt() + 50.0);
        }
    }
}
