//! The domain model: users, incidents, audit entries, notifications and the
//! queries over them. Plain data with serde names matching the HTTP API; the rules
//! that change it live in [`crate::engine`], [`crate::sla`] and [`crate::escalation`].
//!
//! One file per entity (`user`, `incident`, `audit`, `notification`,
//! `service`, `integration`, `alert`, `rotation`, `schedule`,
//! `escalation_policy`), the formats sources post alerts in
//! (`events_v2`, `alertmanager`),
//! plus `ids`, `time`, `paging`, `filter` and `search`; everything is
//! re-exported here, so `imas_core::model::Incident` and the like are the paths to use.

/// Implements `as_str`, `Display`, `FromStr` (with a validation error naming
/// `$field`) and an `ALL` list for a fieldless enum with fixed spellings.
macro_rules! string_enum {
    ($name:ident, $field:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in JSON and in stores.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::error::Error::validation(
                        $field,
                        concat!("expected one of: ", $crate::model::join_literals!($($text),+)),
                    )),
                }
            }
        }
    };
}

macro_rules! join_literals {
    ($first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}
pub(crate) use join_literals;

mod alert;
mod alertmanager;
mod audit;
mod escalation_policy;
mod events_v2;
mod filter;
mod ids;
mod incident;
mod integration;
mod notification;
mod paging;
mod rotation;
mod schedule;
mod search;
mod service;
mod time;
mod user;

pub use alert::*;
pub use alertmanager::*;
pub use audit::*;
pub use escalation_policy::*;
pub use events_v2::*;
pub use filter::*;
pub use ids::*;
pub use incident::*;
pub use integration::*;
pub use notification::*;
pub use paging::*;
pub use rotation::*;
pub use schedule::*;
pub use search::*;
pub use service::*;
pub use time::*;
pub use user::*;

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`: clear
/// it) or a value (`Some(Some(v))`), for PATCH bodies; use with
/// `#[serde(default, deserialize_with = "crate::model::nullable")]`.
pub fn nullable<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
