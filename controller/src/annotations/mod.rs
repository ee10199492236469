//! Pod and node annotations: parsing what users and the controller wrote, rendering what the controller writes.
