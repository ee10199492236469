//! The in-memory replica of monitored tables, its indexes and change events.
