//! Which Subnets are valid and which pods they take: pure checks over all Subnet objects.
//!
//! The controller re-runs [`validate_subnets`] over the whole list on every Subnet change. The
//! outcome depends only on the objects (oldest first), so every replica and every restart
//! agrees on it, and a newer object can never displace an older one that pods already use.

mod choice;
mod config;
mod default;
mod lifecycle;
mod reject;
mod status;
mod validate;

pub use choice::SubnetChoiceError;
pub use config::SubnetConfig;
pub use default::default_subnet;
pub use lifecycle::{
    Addressing, Facts, Field, RefusedEdit, finalizers_with, has_finalizer, is_terminating,
    spec_in_effect,
};
pub use reject::{RejectReason, SubnetRejection};
pub use status::{
    SPEC_CHANGE_REFUSED, SubnetOutcome, TERMINATING, accepted_condition, status_needs_write,
    subnet_status,
};
pub use validate::{Reserved, SubnetSet, validate_subnets, validate_subnets_with};

#[cfg(test)]
mod tests;
