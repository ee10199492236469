//! Kernel network devices over rtnetlink: pod veths, the sandbox side of a pod, `ovn0` addresses and routes.
