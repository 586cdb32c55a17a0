//! Local DigitalOcean-compatible cloud.
