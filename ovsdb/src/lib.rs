//! An RFC 7047 OVSDB client for rovn, on tokio.
//!
//! rovn talks to three databases: OVN Northbound (the controller writes it), and the local
//! Open_vSwitch database on each node (the agent writes it), with OVN Southbound read in tests.
//! This crate is everything between a typed row and the socket.

mod abbreviate;
pub mod client;
pub mod connection;
pub mod error;
pub mod framing;
pub mod jsonrpc;
pub mod model;
pub mod monitor;
pub mod operation;
pub mod replica;
pub mod schema;
pub mod transport;
pub mod value;

pub use client::{Backoff, Client, ClientConfig, ClientStats, Event, TransactError};
pub use connection::{ConnectOptions, Connection, ConnectionStats, Notification};
pub use error::Error;
pub use model::{DatabaseModel, Model, ModelError};
pub use monitor::{MonitorCondition, MonitorSelect, TableMonitor};
pub use operation::{
    Condition, Function, Mutation, Mutator, Operation, OperationResult, WaitUntil,
};
pub use replica::{Change, IndexSpec, Replica, ReplicaError};
pub use schema::{
    AtomicType, BaseType, ColumnSchema, ColumnType, DatabaseSchema, RefType, SchemaError,
    TableSchema,
};
pub use transport::{IncompleteTls, Remote, TlsConfig};
pub use value::{Atom, Datum, Row, Uuid, ValueError};
