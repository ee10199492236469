//! Teardown tied to scope, for tests: a lab is removed even when the test panics.

use super::daemon::ProcessRef;
use super::down;
use super::error::LabError;
use super::lab::Lab;
use super::names::LabName;
use super::spec::LabSpec;

/// Tears lab NAME down when dropped, whatever state it is in; for tests that build or break
/// labs by hand (e.g. simulating a crash).
#[derive(Debug)]
pub struct DownOnDrop {
    name: LabName,
    armed: bool,
}

impl DownOnDrop {
    /// Arms teardown of lab `name`.
    pub fn new(name: LabName) -> Self {
        DownOnDrop { name, armed: true }
    }

    /// Tears down now, reporting errors (a drop can only print them).
    pub fn down(mut self) -> Result<(), LabError> {
        self.armed = false;
        down::down(&self.name)
    }
}

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = down::down(&self.name)
        {
            eprintln!("rovn-lab: tearing down lab {} failed: {e}", self.name);
        }
    }
}

/// A running lab that is torn down when dropped, so a test that panics leaves nothing behind.
#[derive(Debug)]
pub struct LabGuard {
    lab: Lab,
    teardown: DownOnDrop,
}

impl LabGuard {
    /// Brings a lab up, owned by this process (so `down --stale` removes it should this process
    /// die without running destructors); teardown is armed before the first step.
    pub fn up(spec: &LabSpec) -> Result<LabGuard, LabError> {
        let teardown = DownOnDrop::new(spec.name.clone());
        let mut spec = spec.clone();
        if spec.owner.is_none() {
            spec.owner = ProcessRef::of(std::process::id() as i32);
        }
        let lab = Lab::up(&spec)?;
        Ok(LabGuard { lab, teardown })
    }

    /// Tears down now and reports errors.
    pub fn down(self) -> Result<(), LabError> {
        self.teardown.down()
    }
}

impl std::ops::Deref for LabGuard {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        &self.lab
    }
}
