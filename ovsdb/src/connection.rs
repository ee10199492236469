//! One live session with a server: pipelined requests, echo, server-initiated requests.
