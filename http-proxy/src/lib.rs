//! Depot HTTP proxy: arrives with the HTTP proxy issue.
