//! Monitor requests (monitor, monitor_cond, monitor_cond_since) and the table updates they deliver.
