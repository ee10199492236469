//! Which Subnets are valid and which pods they take: pure checks over all Subnet objects.
