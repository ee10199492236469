//! Pod-network scenarios written against a small `Cluster` interface, so they can run on the lab or on a real cluster.
