//! Splits the byte stream from the server into JSON messages, in time linear in the bytes received.
