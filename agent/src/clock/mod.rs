//! The clock check: is this device's clock within the allowed skew of NTP
//! time? TOTP codes and Duo pushes fail when it is not.
//!
//! [`query_servers`] is the only I/O (one SNTP query per address, all at
//! once); [`estimate`], [`to_section`], [`KodBackoff`] and the raw-answer
//! check in `packet` are pure and take what they need, `now` included, as
//! arguments.

mod backoff;
pub mod http_date;
mod packet;
mod query;
mod report;
mod target;

pub use backoff::KodBackoff;
pub use query::{judge_answer, query_servers};
pub use report::{
    AddrResult, BACK_OFF, ClockReport, DISAGREE, Estimate, NoEstimate, QueryError, Sample,
    estimate, state_of, to_section,
};
pub use target::{NTP_PORT, Target, TargetError, parse_target};
