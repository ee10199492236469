//! The `Subnet` custom resource (group `rovn.io`, v1) and its status.
