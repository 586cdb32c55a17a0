//! Load balancer.
