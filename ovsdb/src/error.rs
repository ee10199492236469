//! Errors of the client, each naming what it was for.
